"""Driver errors become the memex error tree by SQLite's result code: only real
corruption says "corrupt"; a full device says "no space left"."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from memex.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
)
from memex.storage.sqlite.connection import translate


def driver_error(code: int | None, text: str) -> sqlite3.Error:
    """An error as the driver raises it: a message and SQLite's extended result code."""
    exc = sqlite3.OperationalError(text)
    if code is not None:
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("code", "text", "kind", "message"),
    [
        (5, "database is locked", StoreLockedError, "is locked by another process"),
        (517, "database is locked", StoreLockedError, "is locked by another process"),
        (6, "database table is locked", StoreLockedError, "is locked by another process"),
        (13, "database or disk is full", StoreFullError, "no space left on the device"),
        (11, "database disk image is malformed", StoreCorruptError, "is corrupt"),
        (26, "file is not a database", StoreCorruptError, "is corrupt"),
        (8, "attempt to write a readonly database", StoreReadOnlyError, "cannot be written"),
        (14, "unable to open database file", StoreError, "cannot open store"),
        (1, "no such table: memories", StoreError, "no such table"),
        # Without a code (raised by the driver itself): what the text says.
        (None, "database is locked", StoreLockedError, "is locked by another process"),
        (None, "database disk image is malformed", StoreCorruptError, "is corrupt"),
    ],
)
def test_errors_map_by_result_code(
    tmp_path: Path, code: int | None, text: str, kind: type[StoreError], message: str
) -> None:
    found = translate(driver_error(code, text), str(tmp_path / "memex.db"))
    assert type(found) is kind
    assert message in str(found) and str(tmp_path / "memex.db") in str(found)
    assert "\n" not in str(found)


@pytest.mark.parametrize("code", [10, 266, 778, 4874])  # IOERR, _READ, _WRITE, _SHMSIZE
def test_an_io_error_is_never_called_corruption(tmp_path: Path, code: int) -> None:
    found = translate(driver_error(code, "disk I/O error"), str(tmp_path / "memex.db"))
    # tmp_path has room: a plain I/O error, never "corrupt", never "full".
    assert type(found) is StoreError
    assert str(found) == (
        f"I/O error on store {tmp_path / 'memex.db'} (disk I/O error); check the device it is on"
    )


def test_real_driver_errors_carry_their_codes(tmp_path: Path) -> None:
    """The mapping reads codes the driver really sets (Python 3.11's sqlite_errorcode)."""
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a database file, just some text " * 200)
    conn = sqlite3.connect(bogus)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        conn.execute("SELECT * FROM sqlite_schema").fetchall()
    conn.close()
    assert type(translate(caught.value, str(bogus))) is StoreCorruptError

"""SQLite connections: pragmas, one-writer transactions and driver-error translation."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from memex.errors import StoreCorruptError, StoreError, StoreLockedError


def translate(exc: sqlite3.Error, path: str) -> StoreError:
    """Map a driver error to the memex error tree, with a one-line message."""
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return StoreLockedError(f"store {path} is locked by another process (gave up waiting)")
    if (
        "not a database" in lowered
        or "malformed" in lowered
        or "corrupt" in lowered
        or (isinstance(exc, sqlite3.DatabaseError) and "disk i/o" in lowered)
    ):
        return StoreCorruptError(f"store {path} is corrupt or not a memex store ({text})")
    if "readonly" in lowered or "unable to open" in lowered:
        return StoreError(f"cannot open store {path} for writing ({text})")
    return StoreError(f"store {path}: {text}")


def connect(path: Path, *, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    """Open a connection in autocommit mode with WAL and the settings memex relies on.

    The file is checked to be empty or a memex store before anything is changed in it.
    """
    try:
        conn = sqlite3.connect(
            str(path),
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
    except sqlite3.Error as exc:
        raise translate(exc, str(path)) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        check_is_memex(conn, str(path))
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"store {path} cannot use write-ahead logging (journal mode {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted rows and freed pages are overwritten with zeros: a purged memory's text
        # must not stay readable in the file's free space.
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -65536")
        conn.execute("PRAGMA mmap_size = 268435456")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, str(path)) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def check_is_memex(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a SQLite file that holds tables but is not a memex store (reads only)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
        raise StoreCorruptError(f"{path} is a SQLite database but not a memex store")


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: str) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: one writer at a time, all or nothing."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise translate(exc, path) from exc


class Holder:
    """One thread's connection; closed when the thread's locals go away."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            self.close()

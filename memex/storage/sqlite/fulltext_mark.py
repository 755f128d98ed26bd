"""The watermark of the tantivy index (``watermark.json`` in its folder): which store
it was built from and what it holds, and the store's state it is compared with.

The file is written atomically, and only after a tantivy commit, so the index is never
behind its watermark (see ``fulltext.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

FORMAT = 2  # 1: the tenant only, as a ``tenant`` field
MARK_FILE = "watermark.json"


@dataclass(frozen=True, slots=True)
class Mark:
    """What the index holds: rows up to ``max_seq`` and changes up to ``change_pos``;
    no terms of the first ``purges`` memories purged from the store (its files were
    last rewritten from scratch after them)."""

    max_seq: int
    change_pos: int
    purges: int = 0


def read_mark(folder: Path, store_id: str) -> tuple[Mark, tuple[int, int]] | None:
    """The folder's watermark and the file's stamp (modification time, inode); None if it
    is missing, unreadable, of another ``FORMAT`` or of another store."""
    try:
        path = folder / MARK_FILE
        stat = path.stat()
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("store_id") != store_id:
            return None
        mark = Mark(int(data["max_seq"]), int(data["change_pos"]), int(data.get("purges", 0)))
        return mark, (stat.st_mtime_ns, stat.st_ino)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_mark(folder: Path, store_id: str, mark: Mark) -> None:
    """Replace the folder's watermark atomically."""
    data = {"format": FORMAT, "store_id": store_id, "max_seq": mark.max_seq}
    data["change_pos"] = mark.change_pos
    data["purges"] = mark.purges
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / MARK_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def store_meta(conn: sqlite3.Connection) -> tuple[str, int]:
    """The store's id (a restore gives the store a new one) and how many purges it has
    seen, in one read."""
    found = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('store_id', 'purges')"))
    return str(found.get("store_id", "")), int(found.get("purges", 0))


def store_id_of(conn: sqlite3.Connection) -> str:
    """The store's id (a restore gives the store a new one)."""
    return store_meta(conn)[0]


_STATE = (
    "SELECT (SELECT value FROM meta WHERE key = 'store_id'), "
    "(SELECT seq FROM sqlite_sequence WHERE name = 'memories'), "
    "(SELECT max(pos) FROM index_changes), "
    "(SELECT value FROM meta WHERE key = 'purges')"
)


def store_state(conn: sqlite3.Connection) -> tuple[str, int, int, int]:
    """The store's id, highest key ever assigned, last change logged and purge count,
    in one statement."""
    store_id, high, pos, purges = conn.execute(_STATE).fetchone()
    return str(store_id or ""), int(high or 0), int(pos or 0), int(purges or 0)


def lag(state: tuple[str, int, int, int], mark: Mark) -> tuple[int, int]:
    """Keys assigned and changes logged after ``mark`` (keys of memories purged since
    count too: an upper bound on the rows to add)."""
    _, high, pos, _ = state
    return max(high - mark.max_seq, 0), max(pos - mark.change_pos, 0)

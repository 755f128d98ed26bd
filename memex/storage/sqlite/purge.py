"""Purging memories for good: their rows, and the copies of their text SQLite keeps.

A purged memory's text can linger in four places besides its row and its history:
saved session contexts that showed it (dropped here, in the purge's transaction), the
FTS5 index (a delete only adds a marker; the old segment keeps the terms until it is
merged, so the index is merged into one segment here, in the same transaction), free
space in the database file (``PRAGMA secure_delete`` on every connection overwrites
deleted cells and freed pages with zeros), and old page images in the write-ahead log
(``truncate_wal`` after the commit). The tantivy index beside the store is rewritten by
``FullTextIndex.scrub``, here or, if this process dies first, by the next catch-up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from memex.errors import ConflictError
from memex.storage.sqlite import contexts
from memex.storage.sqlite.changes import log_changes, log_memory_changes
from memex.storage.sqlite.connection import without_waiting


def purge_memories(
    conn: sqlite3.Connection, where: str, params: Sequence[Any], purges: Sequence[tuple[str, int]]
) -> None:
    """Delete each (id, expected version) within ``where`` (a scope clause on ``m``),
    inside the caller's transaction."""
    keys: dict[str, list[int]] = {}
    for memory_id, expected in purges:
        row = conn.execute(
            f"SELECT m.seq, m.tenant, m.version FROM memories m WHERE {where} AND m.id = ?",
            [*params, memory_id],
        ).fetchone()
        if row is None or row[2] != expected:
            raise ConflictError(
                f"memory {memory_id} changed or vanished since it was read; try again"
            )
        seq, tenant, _ = row
        conn.execute("DELETE FROM vectors WHERE seq = ?", (seq,))
        conn.execute("DELETE FROM memories WHERE seq = ?", (seq,))
        conn.execute("DELETE FROM memory_history WHERE tenant = ? AND id = ?", (tenant, memory_id))
        contexts.drop_showing(conn, tenant, memory_id)
        keys.setdefault(tenant, []).append(seq)
    for tenant, purged in keys.items():
        log_changes(conn, tenant, purged)
        log_memory_changes(conn, tenant, purged)
    if keys:
        # One segment holds the whole index afterwards, without the purged terms. SQLite
        # 3.42's FTS5 'secure-delete' option would remove them in place, more cheaply.
        merge_fulltext(conn)
        # Derived indexes compare this count with the one they were rewritten at.
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('purges', 1) ON CONFLICT (key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )


def merge_fulltext(conn: sqlite3.Connection) -> None:
    """Merge the FTS5 index into one segment: entries deleted or rewritten leave it, and
    so do the terms of deleted rows."""
    conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")


def truncate_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> bool:
    """Copy the write-ahead log into the database and truncate it to nothing, without
    waiting; False if a reader of an older snapshot (or a writer) prevents it now."""
    with without_waiting(conn, busy_timeout_ms / 1000):
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error:
            return False
    return not busy

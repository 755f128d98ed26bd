"""SQL for swapping in a new set of vectors after a reindex.

Staged rows carry the hash of the content that was embedded, so the swap can tell a
memory written or changed during the reindex from one that is ready, and refuse.
"""

from __future__ import annotations

import sqlite3

from memex.errors import ConflictError


def create_staging(conn: sqlite3.Connection, staging: str) -> None:
    """A table for the new vectors, private to this reindex."""
    conn.execute(
        f"CREATE TABLE {staging} (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, "
        "content_hash TEXT NOT NULL, vector BLOB NOT NULL)"
    )


def stage(conn: sqlite3.Connection, staging: str, rows: list[tuple[int, str, bytes]]) -> None:
    """Stage (key, content hash, vector blob) rows; memories purged meanwhile are skipped."""
    conn.executemany(
        f"INSERT INTO {staging} (seq, tenant, content_hash, vector) "
        "SELECT seq, tenant, ?, ? FROM memories WHERE seq = ?",
        [(chash, blob, key) for key, chash, blob in rows],
    )


def swap(conn: sqlite3.Connection, staging: str) -> None:
    """Replace every vector with the staged ones (inside the caller's transaction)."""
    stale = conn.execute(
        f"SELECT count(*) FROM memories m LEFT JOIN {staging} s ON s.seq = m.seq "
        "WHERE s.seq IS NULL OR s.content_hash <> m.content_hash"
    ).fetchone()[0]
    if stale:
        raise ConflictError(
            f"{stale} memories were written or changed during the reindex; run it again"
        )
    conn.execute("DELETE FROM vectors")
    conn.execute(
        f"INSERT INTO vectors (seq, tenant, vector) SELECT s.seq, s.tenant, s.vector "
        f"FROM {staging} s JOIN memories m ON m.seq = s.seq"
    )

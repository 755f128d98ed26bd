"""The change log that derived vector indexes replay, and the epoch that retires them.

Kept apart from the indexes themselves (``vectors``, ``ann``), so that a write path
records its changes without loading numpy or faiss.
"""

from __future__ import annotations

import sqlite3

EPOCH_KEY = "vectors_generation"


def bump_epoch(conn: sqlite3.Connection) -> None:
    """Mark every loaded index stale; call inside the transaction that swaps all vectors."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
        "SET value = CAST(value AS INTEGER) + 1",
        (EPOCH_KEY,),
    )


def log_changes(conn: sqlite3.Connection, tenant: str, keys: list[int]) -> None:
    """Record that these keys' vectors were removed or replaced (in the write transaction)."""
    conn.executemany(
        "INSERT INTO index_changes (tenant, seq) VALUES (?, ?)", [(tenant, k) for k in keys]
    )

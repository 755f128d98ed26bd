"""The change logs that derived state replays, and the epoch that retires vector indexes.

``index_changes`` names the memories whose vector or indexed text was replaced or
removed (the vector and full-text indexes replay it); ``memory_changes`` those whose row
was changed or removed at all (what a process knows of visibility replays it). Kept
apart from what reads them, so that a write path records its changes without loading
numpy or faiss.
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


def log_memory_changes(conn: sqlite3.Connection, tenant: str, keys: list[int]) -> None:
    """Record that these keys' rows were changed or removed (in the write transaction)."""
    conn.executemany(
        "INSERT INTO memory_changes (tenant, seq) VALUES (?, ?)", [(tenant, k) for k in keys]
    )

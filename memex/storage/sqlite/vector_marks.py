"""Where a store's vectors stand, as the vector index reads it: model, store id, reindex
epoch, the newest vector and the newest change of a tenant."""

from __future__ import annotations

import sqlite3

from memex.storage.sqlite.ann import Watermark
from memex.storage.sqlite.changes import EPOCH_KEY


def generation(conn: sqlite3.Connection) -> tuple[str | None, str, int]:
    """The vectors' model, the store's id and the reindex epoch, in one read."""
    found = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('vectors_model', 'store_id', ?)",
            (EPOCH_KEY,),
        ).fetchall()
    )
    return found.get("vectors_model"), str(found.get("store_id", "")), int(found.get(EPOCH_KEY, 0))


PROBE = (
    "SELECT (SELECT value FROM meta WHERE key = 'vectors_model'), "
    "(SELECT value FROM meta WHERE key = 'store_id'), "
    "(SELECT value FROM meta WHERE key = ?), "
    "(SELECT max(seq) FROM vectors WHERE tenant = ?), "
    "(SELECT max(pos) FROM index_changes WHERE tenant = ?)"
)
"""What ``_generation`` and ``_watermark`` read, in one statement."""


def watermark(conn: sqlite3.Connection, tenant: str) -> Watermark:
    top = conn.execute("SELECT max(seq) FROM vectors WHERE tenant = ?", (tenant,)).fetchone()[0]
    pos = conn.execute("SELECT max(pos) FROM index_changes WHERE tenant = ?", (tenant,)).fetchone()[
        0
    ]
    return Watermark(int(top or 0), int(pos or 0))


def count_after(
    conn: sqlite3.Connection, table: str, key: str, tenant: str, after: int, limit: int = -1
) -> int:
    """The tenant's rows of ``table`` with ``key`` above ``after``; counting stops at
    ``limit`` (-1: never)."""
    return int(
        conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE tenant = ? AND {key} > ? LIMIT ?)",
            (tenant, after, limit),
        ).fetchone()[0]
    )

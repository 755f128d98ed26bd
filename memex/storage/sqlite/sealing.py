"""Sealing a plain tenant's stored text in place (``memex admin encrypt``): memories,
past versions and saved session contexts, a batch per transaction."""

from __future__ import annotations

import sqlite3

from memex.core.encryption import context_data
from memex.storage.encryption import TenantCipher

TABLES = ("memories", "memory_history", "context_sessions")
"""The tables holding a tenant's text, in the order they are sealed."""


def plain_count(conn: sqlite3.Connection, tenant: str) -> int:
    """How many of the tenant's rows still hold plain text."""
    return sum(
        int(
            conn.execute(
                f"SELECT count(*) FROM {table} WHERE tenant = ? AND typeof({column}) = 'text'",
                (tenant,),
            ).fetchone()[0]
        )
        for table, column in zip(TABLES, ("content", "content", "text"), strict=True)
    )


def seal_batch(conn: sqlite3.Connection, cipher: TenantCipher, table: str, limit: int) -> int:
    """Seal up to ``limit`` plain rows of the tenant in ``table``; how many were sealed
    (0 when none is left)."""
    tenant = cipher.tenant
    if table == "context_sessions":
        found = conn.execute(
            "SELECT session, text FROM context_sessions WHERE tenant = ? "
            "AND typeof(text) = 'text' LIMIT ?",
            (tenant, limit),
        ).fetchall()
        conn.executemany(
            "UPDATE context_sessions SET text = ? WHERE tenant = ? AND session = ?",
            [(cipher.seal(text, context_data(tenant, s)), tenant, s) for s, text in found],
        )
        return len(found)
    key = "seq" if table == "memories" else "version"
    rows = conn.execute(
        f"SELECT {key}, id, version, content, metadata, content_hash FROM {table} "
        "WHERE tenant = ? AND typeof(content) = 'text' LIMIT ?",
        (tenant, limit),
    ).fetchall()
    where = "seq = ?" if table == "memories" else "tenant = ? AND id = ? AND version = ?"
    conn.executemany(
        f"UPDATE {table} SET content = ?, metadata = ?, content_hash = ? WHERE {where}",
        [
            (
                cipher.seal_memory(mid, version, "content", content),
                cipher.seal_memory(mid, version, "metadata", metadata),
                cipher.digest(chash),
                *((k,) if table == "memories" else (tenant, mid, version)),
            )
            for k, mid, version, content, metadata, chash in rows
        ],
    )
    return len(rows)

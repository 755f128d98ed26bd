"""SQL for context assembly: change counters and sessions' last contexts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from memex.core.models import Scope, to_micros, utcnow


def change_versions(conn: sqlite3.Connection, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
    """Summed change counters for ``keys`` in the scope's tenant (and project, if set)."""
    out = dict.fromkeys(keys, 0)
    if not keys:
        return out
    marks = ",".join("?" * len(keys))
    query = f"SELECT key, sum(version) FROM change_counters WHERE tenant = ? AND key IN ({marks})"
    params: list[Any] = [scope.tenant, *keys]
    if scope.project is not None:
        query += " AND project = ?"
        params.append(scope.project)
    for key, version in conn.execute(query + " GROUP BY key", params):
        out[str(key)] = int(version)
    return out


def last_context(
    conn: sqlite3.Connection, tenant: str, session: str, prefix_hash: str
) -> tuple[str | None, int]:
    """A session's previous context, and how many other sessions last had this prefix."""
    row = conn.execute(
        "SELECT text FROM context_sessions WHERE tenant = ? AND session = ?", (tenant, session)
    ).fetchone()
    others = conn.execute(
        "SELECT count(*) FROM context_sessions WHERE tenant = ? AND prefix_hash = ? "
        "AND session != ?",
        (tenant, prefix_hash, session),
    ).fetchone()[0]
    return (None if row is None else str(row[0])), int(others)


def save_context(
    conn: sqlite3.Connection, tenant: str, session: str, text: str, prefix_hash: str
) -> None:
    """Store a session's latest context."""
    conn.execute(
        "INSERT INTO context_sessions (tenant, session, prefix_hash, text, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, session) DO UPDATE SET "
        "prefix_hash = excluded.prefix_hash, text = excluded.text, "
        "updated_at = excluded.updated_at",
        (tenant, session, prefix_hash, text, to_micros(utcnow())),
    )

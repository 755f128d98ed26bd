"""SQL for what reads leave behind and context assembly reads: read statistics, change
counters and sessions' last contexts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from memex.core.encryption import context_data
from memex.core.models import Scope, to_micros, utcnow
from memex.storage.encryption import KeyNeededError, Keyring, TenantCipher
from memex.storage.sqlite import reads


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


def record_reads(conn: sqlite3.Connection, counts: Sequence[tuple[int, int, str, str]]) -> None:
    """Add read counts and last-read times: rows of (count, time in µs, tenant, id)."""
    conn.executemany(
        "UPDATE memories SET access_count = access_count + ?, "
        "last_accessed_at = max(coalesce(last_accessed_at, 0), ?) "
        "WHERE tenant = ? AND id = ?",
        counts,
    )


def last_context(
    conn: sqlite3.Connection, tenant: str, session: str, prefix_hash: str, keyring: Keyring
) -> tuple[str | None, int]:
    """A session's previous context (opened with ``keyring`` where sealed), and how many
    other sessions last had this prefix."""
    row = conn.execute(
        "SELECT text FROM context_sessions WHERE tenant = ? AND session = ?", (tenant, session)
    ).fetchone()
    others = conn.execute(
        "SELECT count(*) FROM context_sessions WHERE tenant = ? AND prefix_hash = ? "
        "AND session != ?",
        (tenant, prefix_hash, session),
    ).fetchone()[0]
    if row is None:
        return None, int(others)
    text = row[0]
    if isinstance(text, bytes):
        cipher = keyring.cipher(tenant)
        if cipher is None:
            raise KeyNeededError(tenant)
        text = cipher.open(text, context_data(tenant, session), f"session {session!r}'s context")
    return str(text), int(others)


def save_context(
    conn: sqlite3.Connection,
    tenant: str,
    session: str,
    text: str,
    prefix_hash: str,
    ids: Sequence[str],
    cipher: TenantCipher | None = None,
) -> None:
    """Store a session's latest context (sealed with ``cipher``'s key) and the memories
    it shows.

    A context showing a memory purged while it was assembled (or while it waited to be
    written) is not stored, and the session's previous one is dropped too: its text
    must not outlive the purge.
    """
    conn.execute(
        "DELETE FROM context_session_memories WHERE tenant = ? AND session = ?",
        (tenant, session),
    )
    wanted = sorted(set(ids))
    found = reads.in_chunks(
        conn,
        "SELECT count(*) FROM memories WHERE id IN ({marks}) AND tenant = ?",
        wanted,
        [tenant],
        convert=str,
    )
    stored = text if cipher is None else cipher.seal(text, context_data(tenant, session))
    if sum(int(row[0]) for row in found) < len(wanted):
        conn.execute(
            "DELETE FROM context_sessions WHERE tenant = ? AND session = ?", (tenant, session)
        )
    else:
        conn.execute(
            "INSERT INTO context_sessions (tenant, session, prefix_hash, text, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, session) DO UPDATE SET "
            "prefix_hash = excluded.prefix_hash, text = excluded.text, "
            "updated_at = excluded.updated_at",
            (tenant, session, prefix_hash, stored, to_micros(utcnow())),
        )
        conn.executemany(
            "INSERT INTO context_session_memories (tenant, id, session) VALUES (?, ?, ?)",
            [(tenant, memory_id, session) for memory_id in wanted],
        )


def drop_showing(conn: sqlite3.Connection, tenant: str, memory_id: str) -> None:
    """Delete every saved context that shows the memory (its text is in them)."""
    sessions = [
        (tenant, str(r[0]))
        for r in conn.execute(
            "SELECT session FROM context_session_memories WHERE tenant = ? AND id = ?",
            (tenant, memory_id),
        )
    ]
    conn.executemany("DELETE FROM context_sessions WHERE tenant = ? AND session = ?", sessions)
    conn.executemany(
        "DELETE FROM context_session_memories WHERE tenant = ? AND session = ?", sessions
    )

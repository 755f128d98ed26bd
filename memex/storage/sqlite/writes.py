"""Applying a write batch inside the store's write transaction: inserts, past versions,
versioned updates and purges."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from memex.core.models import Memory, Scope
from memex.errors import ConflictError
from memex.storage.base import Vector, WriteBatch
from memex.storage.checks import check_audit, check_history, float32_vector
from memex.storage.checks import check_scope as check_scope
from memex.storage.sqlite import audit, sql
from memex.storage.sqlite.changes import log_changes, log_memory_changes
from memex.storage.sqlite.purge import purge_memories

if TYPE_CHECKING:
    from memex.storage.encryption import TenantCipher

_HISTORY_SQL = (
    "INSERT INTO memory_history (tenant, id, version, project, user_id, agent, session, "
    "kind, content, tags, metadata, importance, source, content_hash, created_at, "
    "updated_at, expires_at, deleted_at, valid_from, valid_until, superseded_by) VALUES "
    "(:tenant, :id, :version, :project, :user_id, :agent, :session, :kind, :content, :tags, "
    ":metadata, :importance, :source, :content_hash, :created_at, :updated_at, :expires_at, "
    ":deleted_at, :valid_from, :valid_until, :superseded_by)"
)


def apply_batch(
    conn: sqlite3.Connection,
    scope: Scope,
    batch: WriteBatch,
    dims: int,
    cipher: TenantCipher | None = None,
    audited: bool = True,
) -> None:
    """Insert, archive, update and purge as the batch says (the caller holds the
    transaction); ``dims``: the store's vector size; ``cipher``: the key the scope's
    tenant's memories are sealed with (None: stored plain). Its audit event goes last
    (none with ``audited`` False: a store with the audit trail turned off)."""
    check_audit(scope, batch)
    _insert(conn, scope, batch, dims, cipher)
    _archive(conn, scope, batch, cipher)
    replaced: dict[str, list[int]] = {}
    updated: dict[str, list[int]] = {}
    for memory, maybe_vector, expected in batch.updates:
        check_scope(scope, memory)
        params = sql.memory_params(memory, cipher)
        params["expected_version"] = expected
        found = conn.execute(sql.UPDATE_SQL + " RETURNING seq", params).fetchall()
        if len(found) != 1:
            raise ConflictError(
                f"memory {memory.id} changed or vanished since it was read; try again"
            )
        tenant, seq = memory.scope.tenant or "", found[0][0]
        updated.setdefault(tenant, []).append(seq)
        if maybe_vector is not None:
            conn.execute(
                "UPDATE vectors SET vector = ? WHERE seq = ?", (blob(maybe_vector, dims), seq)
            )
            replaced.setdefault(tenant, []).append(seq)
    for tenant, keys in replaced.items():
        log_changes(conn, tenant, keys)
    for tenant, keys in updated.items():
        log_memory_changes(conn, tenant, keys)
    if batch.purges:
        where, values = sql.scope_clause(scope)
        purge_memories(conn, where, values, batch.purges)
    if batch.audit is not None and audited:
        audit.append(conn, batch.audit)


def _insert(
    conn: sqlite3.Connection,
    scope: Scope,
    batch: WriteBatch,
    dims: int,
    cipher: TenantCipher | None,
) -> None:
    if not batch.inserts:
        return
    for memory, _ in batch.inserts:
        check_scope(scope, memory)
    # Keys are given, not left to SQLite, so the vectors can go in one batch too; they
    # follow the largest key ever used, as AUTOINCREMENT would.
    first = conn.execute(sql.NEXT_SEQ_SQL).fetchone()[0]
    conn.executemany(
        sql.INSERT_SQL,
        [sql.memory_row(k, m, cipher) for k, (m, _) in enumerate(batch.inserts, first)],
    )
    conn.executemany(
        "INSERT INTO vectors (seq, tenant, vector) VALUES (?, ?, ?)",
        [(k, m.scope.tenant, blob(v, dims)) for k, (m, v) in enumerate(batch.inserts, first)],
    )


def _archive(
    conn: sqlite3.Connection, scope: Scope, batch: WriteBatch, cipher: TenantCipher | None
) -> None:
    """Store past versions of inserted memories as given.

    They go straight into ``memory_history``: the trigger that archives a version on
    update only fires for updates, and replaying the versions as updates would stamp
    them with new times and bump the change counters once per version.
    """
    if not batch.history:
        return
    check_history(scope, batch)
    try:
        conn.executemany(_HISTORY_SQL, [_history_params(m, cipher) for m in batch.history])
    except sqlite3.IntegrityError as exc:
        raise ConflictError("the batch holds the same version of a memory twice") from exc


def _history_params(memory: Memory, cipher: TenantCipher | None) -> dict[str, object]:
    params = sql.memory_params(memory, cipher)
    del params["last_accessed_at"], params["access_count"]
    return params


def blob(vector: Vector, dims: int) -> bytes:
    """A vector as stored: ``dims`` float32 values."""
    return float32_vector(vector, dims).tobytes()

"""SQL for applying a write batch: inserts, versioned updates and purges, in one transaction."""

from __future__ import annotations

import sqlite3

import numpy as np

from memex.core.models import Memory, Scope
from memex.errors import ConflictError, EmbedderError, ScopeError
from memex.storage.base import Vector, WriteBatch
from memex.storage.sqlite import sql
from memex.storage.sqlite.purge import purge_memories
from memex.storage.sqlite.vectors import log_changes


def apply_batch(conn: sqlite3.Connection, scope: Scope, batch: WriteBatch, dims: int) -> None:
    """Write the batch inside the caller's transaction; ``dims``: the store's vector size."""
    replaced: dict[str, list[int]] = {}
    if batch.inserts:
        for memory, _ in batch.inserts:
            check_scope(scope, memory)
        # Keys are given, not left to SQLite, so the vectors can go in one batch too;
        # they follow the largest key ever used, as AUTOINCREMENT would.
        first = conn.execute(sql.NEXT_SEQ_SQL).fetchone()[0]
        conn.executemany(
            sql.INSERT_SQL,
            [sql.memory_row(k, m) for k, (m, _) in enumerate(batch.inserts, first)],
        )
        conn.executemany(
            "INSERT INTO vectors (seq, tenant, vector) VALUES (?, ?, ?)",
            [(k, m.scope.tenant, blob(v, dims)) for k, (m, v) in enumerate(batch.inserts, first)],
        )
    for memory, maybe_vector, expected in batch.updates:
        check_scope(scope, memory)
        params = sql.memory_params(memory)
        params["expected_version"] = expected
        cur = conn.execute(sql.UPDATE_SQL, params)
        if cur.rowcount != 1:
            raise ConflictError(
                f"memory {memory.id} changed or vanished since it was read; try again"
            )
        if maybe_vector is not None:
            tenant = memory.scope.tenant or ""
            seq = conn.execute(
                "SELECT seq FROM memories WHERE tenant = ? AND id = ?", (tenant, memory.id)
            ).fetchone()[0]
            conn.execute(
                "UPDATE vectors SET vector = ? WHERE seq = ?", (blob(maybe_vector, dims), seq)
            )
            replaced.setdefault(tenant, []).append(seq)
    for tenant, keys in replaced.items():
        log_changes(conn, tenant, keys)
    if batch.purges:
        where, params_ = sql.scope_clause(scope)
        purge_memories(conn, where, params_, batch.purges)


def check_scope(scope: Scope, memory: Memory) -> None:
    """Refuse a memory outside the scope of the handle that writes it."""
    if not scope.contains(memory.scope):
        raise ScopeError(f"memory {memory.id} is outside the scope of this handle")


def blob(vector: Vector, dims: int) -> bytes:
    """A vector as stored: ``dims`` float32s."""
    array = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    if array.shape[0] != dims:
        raise EmbedderError(f"vector has {array.shape[0]} dimensions, the store uses {dims}")
    return array.tobytes()

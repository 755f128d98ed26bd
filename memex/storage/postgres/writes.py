"""Applying a write batch in one transaction of the PostgreSQL store: inserts, past
versions, versioned updates (the replaced version archived), purges, and the change
counters of every write, and the lexical index (``postings``). No trigger does any of it:
this module is the write contract."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from memex.core.models import Scope, to_micros
from memex.errors import ConflictError
from memex.storage.base import Vector, WriteBatch
from memex.storage.checks import check_audit, check_history, check_scope, float32_vector
from memex.storage.postgres import audit, reads, sql
from memex.storage.postgres.postings import Totals

if TYPE_CHECKING:
    import psycopg

    from memex.storage.encryption import TenantCipher

_MARKS = ", ".join(["%s"] * len(sql.WRITTEN.split(", ")))
_INSERT = f"INSERT INTO memories ({sql.WRITTEN}, embedding) VALUES ({_MARKS}, %s)"
_HISTORY = f"INSERT INTO memory_history ({sql.WRITTEN}) VALUES ({_MARKS})"
_ARCHIVE = (
    f"INSERT INTO memory_history ({sql.WRITTEN}) SELECT {sql.WRITTEN} FROM memories "
    "WHERE tenant = %s AND id = %s AND version = %s"
)
_UPDATE = (
    "UPDATE memories SET project = %s, user_id = %s, agent = %s, session = %s, kind = %s, "
    "content = %s, tags = %s, metadata = %s, importance = %s, source = %s, "
    "content_hash = %s, version = %s, updated_at = %s, expires_at = %s, deleted_at = %s, "
    "valid_from = %s, valid_until = %s, superseded_by = %s, sealed_content = %s, "
    "sealed_metadata = %s{vector} "
    "WHERE tenant = %s AND id = %s AND version = %s RETURNING kind, tags, project"
)
_OLD = (
    "SELECT kind, tags, project, content, sealed_content FROM memories "
    "WHERE tenant = %s AND id = %s AND version = %s"
)


class Counts:
    """The change counters a batch moves: (tenant, project, key) -> how many changes."""

    def __init__(self) -> None:
        self.by_key: Counter[tuple[str, str, str]] = Counter()

    def add(self, tenant: str, project: str | None, kind: str, tags: Any) -> None:
        for key in {f"kind:{kind}", *(f"tag:{tag}" for tag in tags)}:
            self.by_key[(tenant, project or "", key)] += 1

    def write(self, conn: psycopg.Connection[Any]) -> None:
        """Add the counts, in key order: writers lock counter rows in one order, so two
        of them never wait for each other in a circle."""
        if not self.by_key:
            return
        rows = sorted(self.by_key.items())
        conn.execute(
            "INSERT INTO change_counters (tenant, project, key, version) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) "
            "ON CONFLICT (tenant, project, key) DO UPDATE "
            "SET version = change_counters.version + excluded.version",
            (
                [t for (t, _, _), _ in rows],
                [p for (_, p, _), _ in rows],
                [k for (_, _, k), _ in rows],
                [n for _, n in rows],
            ),
        )


def apply_batch(
    conn: psycopg.Connection[Any],
    scope: Scope,
    batch: WriteBatch,
    dims: int,
    cipher: TenantCipher | None = None,
    audited: bool = True,
) -> None:
    """Insert, archive, update and purge as the batch says (in the caller's transaction);
    ``cipher``: the key the scope's tenant's memories are sealed with (None: plain).
    Its audit event goes last, so the chain head's lock is the last one taken (none
    with ``audited`` False: a store with the audit trail turned off)."""
    check_audit(scope, batch)
    counts = Counts()
    totals = Totals()
    _insert(conn, scope, batch, dims, counts, totals, cipher)
    _archive(conn, scope, batch, cipher)
    for memory, maybe_vector, expected in batch.updates:
        check_scope(scope, memory)
        tenant = str(memory.scope.tenant)
        old = conn.execute(_OLD, (tenant, memory.id, expected)).fetchone()
        if old is None:
            raise _changed(memory.id)
        if memory.version != expected:
            conn.execute(_ARCHIVE, (tenant, memory.id, expected))
        reindexed = _old_content(old, memory.id, expected, cipher) != memory.content
        reindexed = reindexed or old[2] != memory.scope.project
        if reindexed:
            totals.remove(conn, tenant, [memory.id])
        values = sql.written(memory, cipher)
        params = [*values[2:14], *values[15:]]  # every column but id, tenant and created_at
        vector_sql = ""
        if maybe_vector is not None:
            vector_sql = ", embedding = %s"
            params.append(checked(maybe_vector, dims))
        params.extend([tenant, memory.id, expected])
        row = conn.execute(_UPDATE.format(vector=vector_sql), params).fetchone()
        if row is None:
            raise _changed(memory.id)
        if reindexed:
            totals.add(conn, tenant, [memory.id], _texts([memory], cipher))
        if memory.version != expected:
            counts.add(tenant, old[2], old[0], old[1])
            counts.add(tenant, row[2], row[0], row[1])
    if batch.purges:
        _purge(conn, scope, batch.purges, counts, totals)
    totals.write(conn)
    counts.write(conn)
    if batch.audit is not None and audited:
        audit.append(conn, batch.audit, bound=True)


def _old_content(old: Any, memory_id: str, version: int, cipher: TenantCipher | None) -> str | None:
    """The replaced version's content (None when it is sealed and cannot be opened: its
    postings are then written again)."""
    if old[4] is None:
        return str(old[3])
    if cipher is None:
        return None
    return cipher.open_memory(memory_id, version, "content", old[4])


def _texts(memories: Any, cipher: TenantCipher | None) -> list[str] | None:
    """The contents the postings of sealed memories are made from (None: plain ones,
    whose postings are made from their stored content)."""
    return None if cipher is None else [m.content for m in memories]


def _changed(memory_id: str) -> ConflictError:
    return ConflictError(f"memory {memory_id} changed or vanished since it was read; try again")


def _insert(
    conn: psycopg.Connection[Any],
    scope: Scope,
    batch: WriteBatch,
    dims: int,
    counts: Counts,
    totals: Totals,
    cipher: TenantCipher | None,
) -> None:
    if not batch.inserts:
        return
    rows = []
    read: list[tuple[int, int | None, str, str]] = []
    for memory, vector in batch.inserts:
        check_scope(scope, memory)
        rows.append([*sql.written(memory, cipher), checked(vector, dims)])
        if memory.access_count or memory.last_accessed_at is not None:
            at = None if memory.last_accessed_at is None else to_micros(memory.last_accessed_at)
            read.append((memory.access_count, at, str(memory.scope.tenant), memory.id))
        counts.add(str(memory.scope.tenant), memory.scope.project, memory.kind, memory.tags)
    with conn.cursor() as cur:
        cur.executemany(_INSERT, rows)
        if read:
            cur.executemany(reads.RECORD_READS, read)
    inserted = [m for m, _ in batch.inserts]
    totals.add(conn, str(scope.tenant), [m.id for m in inserted], _texts(inserted, cipher))


def _archive(
    conn: psycopg.Connection[Any], scope: Scope, batch: WriteBatch, cipher: TenantCipher | None
) -> None:
    """Store past versions of inserted memories as given."""
    if not batch.history:
        return
    check_history(scope, batch)
    seen: set[tuple[str | None, str, int]] = set()
    for past in batch.history:
        key = (past.scope.tenant, past.id, past.version)
        if key in seen:
            raise ConflictError("the batch holds the same version of a memory twice")
        seen.add(key)
    with conn.cursor() as cur:
        cur.executemany(_HISTORY, [sql.written(m, cipher) for m in batch.history])


def _purge(
    conn: psycopg.Connection[Any],
    scope: Scope,
    purges: list[tuple[str, int]],
    counts: Counts,
    totals: Totals,
) -> None:
    """Delete each (id, expected version) within the scope: the memory, its vector (in its
    row), its history and every saved context that showed it."""
    where, params = sql.scope_clause(scope)
    for memory_id, expected in purges:
        totals.remove(conn, str(scope.tenant), [memory_id])
        row = conn.execute(
            f"DELETE FROM memories m WHERE {where} AND m.id = %s AND m.version = %s "
            "RETURNING m.tenant, m.project, m.kind, m.tags, m.seq",
            [*params, memory_id, expected],
        ).fetchone()
        if row is None:
            raise _changed(memory_id)
        tenant, project, kind, tags, seq = row
        counts.add(tenant, project, kind, tags)
        conn.execute("DELETE FROM memory_reads WHERE tenant = %s AND seq = %s", (tenant, seq))
        conn.execute(
            "DELETE FROM memory_history WHERE tenant = %s AND id = %s", (tenant, memory_id)
        )
        conn.execute(
            "DELETE FROM context_sessions c USING context_session_memories s "
            "WHERE s.tenant = %s AND s.id = %s AND c.tenant = s.tenant AND c.session = s.session",
            (tenant, memory_id),
        )
        conn.execute(
            "DELETE FROM context_session_memories s USING context_session_memories x "
            "WHERE x.tenant = %s AND x.id = %s AND s.tenant = x.tenant AND s.session = x.session",
            (tenant, memory_id),
        )


def checked(vector: Vector, dims: int) -> Vector:
    """A vector as stored: ``dims`` float32 values."""
    return float32_vector(vector, dims)

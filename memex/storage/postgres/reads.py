"""Read queries of the PostgreSQL store, and what reads leave behind (read statistics,
saved session contexts). Each runs inside a transaction bound to the scope's tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memex.core.encryption import context_data
from memex.core.models import Scope, to_micros, utcnow
from memex.core.query import Filters
from memex.core.visibility import content_bytes, count_states
from memex.storage.encryption import SEALED_OVERHEAD
from memex.storage.postgres import sql

if TYPE_CHECKING:
    import psycopg

    from memex.storage.encryption import TenantCipher

    Conn = psycopg.Connection[Any]


Statement = tuple[str, list[Any]]


def by_ids(filters: Filters, ids: Sequence[str], sealed: Sequence[int] | None = None) -> Statement:
    """Rows (``sql.COLUMNS``) of the memories with these ids that pass ``filters``
    (``sealed``: as ``sql.filter_clause`` takes it)."""
    where, params = sql.filter_clause(filters, utcnow(), sealed=sealed)
    return (
        f"SELECT {sql.COLUMNS} FROM {sql.ROWS} WHERE m.id = ANY(%s) AND {where}",
        [list(dict.fromkeys(ids)), *params],
    )


def history(scope: Scope, memory_id: str) -> Statement:
    """Rows of every version of a memory, oldest first: past versions, then the current."""
    where, params = sql.scope_clause(scope, "h")
    return (
        f"SELECT {sql.HISTORY_COLUMNS} FROM memory_history h WHERE {where} AND h.id = %s "
        f"UNION ALL SELECT {sql.HISTORY_COLUMNS} FROM memories h "
        f"WHERE {where} AND h.id = %s ORDER BY 15",
        [*params, memory_id, *params, memory_id],
    )


def vectors_by_hash(tenant: str, model: str, hashes: Sequence[str]) -> Statement:
    """Stored vectors of the tenant's memories with these content hashes (content hash,
    vector), if they come from ``model``."""
    return (
        "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM memories "
        "WHERE tenant = %s AND content_hash = ANY(%s) AND embedding IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM memex_meta WHERE key = 'vectors_model' AND value = %s)",
        [tenant, list(dict.fromkeys(hashes)), model],
    )


def stats(conn: Conn, scope: Scope, at: int) -> dict[str, Any]:
    """Counts within the scope at ``at`` (microseconds), and the size of the whole store."""
    where, params = sql.scope_clause(scope)
    found = conn.execute(
        f"SELECT m.kind, {sql.state_sql()} AS state, count(*), count(m.embedding), "
        "coalesce(sum(octet_length(m.content) "
        f"+ coalesce(octet_length(m.sealed_content) - {SEALED_OVERHEAD}, 0)), 0) "
        f"FROM memories m WHERE {where} GROUP BY 1, 2 ORDER BY 1",
        [at, at, at, *params],
    ).fetchall()
    counts, by_kind = count_states((kind, state, count) for kind, state, count, _, _ in found)
    current = sum(row[2] for row in found)
    vectors = sum(row[3] for row in found)
    hwhere, hparams = sql.scope_clause(scope, "h")
    row = conn.execute(
        f"SELECT (SELECT count(*) FROM memory_history h WHERE {hwhere}), "
        "(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'm'))",
        hparams,
    ).fetchone()
    assert row is not None
    return {
        **counts,
        "versions": int(row[0]) + current,
        "by_kind": by_kind,
        "vectors": vectors,
        "size_bytes": int(row[1]),
        "content_bytes": content_bytes((kind, state, size) for kind, state, _, _, size in found),
    }


def change_versions(scope: Scope, keys: Sequence[str]) -> Statement:
    """Summed change counters for ``keys`` in the scope's tenant (and project, if set):
    rows of key and count (absent keys count 0)."""
    query = "SELECT key, sum(version) FROM change_counters WHERE tenant = %s AND key = ANY(%s)"
    params: list[Any] = [scope.tenant, list(keys)]
    if scope.project is not None:
        query += " AND project = %s"
        params.append(scope.project)
    return query + " GROUP BY key", params


RECORD_READS = (
    "INSERT INTO memory_reads (tenant, seq, access_count, last_accessed_at) "
    "SELECT m.tenant, m.seq, %s, %s FROM memories m WHERE m.tenant = %s AND m.id = %s "
    "ON CONFLICT (tenant, seq) DO UPDATE "
    "SET access_count = memory_reads.access_count + excluded.access_count, "
    "last_accessed_at = greatest(coalesce(memory_reads.last_accessed_at, 0), "
    "excluded.last_accessed_at)"
)
"""Add a read count and a last-read time (count, time in µs, tenant, id) to a memory's
row of ``memory_reads``; its ``memories`` row is not rewritten."""


def record_reads(conn: Conn, counts: Sequence[tuple[int, int, str, str]]) -> None:
    """Add read counts and last-read times: rows of (count, time in µs, tenant, id)."""
    with conn.cursor() as cur:
        cur.executemany(
            RECORD_READS,
            counts,
        )


def last_context(tenant: str, session: str, prefix_hash: str) -> Statement:
    """A session's previous context (its text and, if sealed, its sealed text), and how
    many other sessions last had this prefix (one row)."""
    return (
        "SELECT c.text, c.sealed_text, (SELECT count(*) FROM context_sessions "
        "WHERE tenant = %s AND prefix_hash = %s AND session <> %s) "
        "FROM (SELECT) o LEFT JOIN context_sessions c ON c.tenant = %s AND c.session = %s",
        [tenant, prefix_hash, session, tenant, session],
    )


def save_context(
    conn: Conn,
    tenant: str,
    session: str,
    text: str,
    prefix_hash: str,
    ids: Sequence[str],
    cipher: TenantCipher | None = None,
) -> None:
    """Store a session's latest context (sealed with ``cipher``'s key) and the memories it
    shows; a context showing a memory purged meanwhile is not stored, and the session's
    previous one is dropped."""
    conn.execute(
        "DELETE FROM context_session_memories WHERE tenant = %s AND session = %s",
        (tenant, session),
    )
    wanted = sorted(set(ids))
    row = conn.execute(
        "SELECT count(*) FROM memories WHERE tenant = %s AND id = ANY(%s)", (tenant, wanted)
    ).fetchone()
    if row is None or int(row[0]) < len(wanted):
        conn.execute(
            "DELETE FROM context_sessions WHERE tenant = %s AND session = %s", (tenant, session)
        )
        return
    sealed = None if cipher is None else cipher.seal(text, context_data(tenant, session))
    conn.execute(
        "INSERT INTO context_sessions (tenant, session, prefix_hash, text, sealed_text, "
        "updated_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant, session) DO UPDATE "
        "SET prefix_hash = excluded.prefix_hash, text = excluded.text, "
        "sealed_text = excluded.sealed_text, updated_at = excluded.updated_at",
        (tenant, session, prefix_hash, "" if sealed else text, sealed, to_micros(utcnow())),
    )
    conn.execute(
        "INSERT INTO context_session_memories (tenant, id, session) "
        "SELECT %s, unnest(%s::text[]), %s",
        (tenant, wanted, session),
    )

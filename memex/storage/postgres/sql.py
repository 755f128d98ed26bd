"""SQL fragments of the PostgreSQL store: filters to WHERE clauses, memories to rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memex.core.models import Memory, Scope, to_micros
from memex.core.query import Filters, Order
from memex.errors import ValidationError
from memex.storage import visibility_sql
from memex.storage.postgres.rows import decode_cursor
from memex.storage.visibility_sql import forgotten_sql as forgotten_sql

if TYPE_CHECKING:
    from memex.storage.encryption import TenantCipher

# Both lists follow rows.STORED_COLUMNS (history rows have no key and no read statistics).
COLUMNS = (
    "m.seq, m.id, m.tenant, m.project, m.user_id, m.agent, m.session, m.kind, m.content, "
    "m.tags, m.metadata, m.importance, m.source, m.content_hash, m.version, m.created_at, "
    "m.updated_at, m.expires_at, m.deleted_at, r.last_accessed_at, coalesce(r.access_count, 0), "
    "m.valid_from, m.valid_until, m.superseded_by, m.sealed_content, m.sealed_metadata"
)
ROWS = "memories m LEFT JOIN memory_reads r ON r.tenant = m.tenant AND r.seq = m.seq"
"""What ``COLUMNS`` reads from: a memory's row and its read statistics (``memory_reads``)."""
HISTORY_COLUMNS = (
    "0::bigint, h.id, h.tenant, h.project, h.user_id, h.agent, h.session, h.kind, h.content, "
    "h.tags, h.metadata, h.importance, h.source, h.content_hash, h.version, h.created_at, "
    "h.updated_at, h.expires_at, h.deleted_at, NULL::bigint, 0::bigint, h.valid_from, "
    "h.valid_until, h.superseded_by, h.sealed_content, h.sealed_metadata"
)
_SCOPE_COLUMNS = {"project": "project", "user": "user_id", "agent": "agent", "session": "session"}
SCOPE_COLUMNS = {"tenant": "tenant", **_SCOPE_COLUMNS}
"""Every scope field and its column, in the order of memex.core.models.SCOPE_FIELDS."""

WRITTEN = (
    "id, tenant, project, user_id, agent, session, kind, content, tags, metadata, "
    "importance, source, content_hash, version, created_at, updated_at, expires_at, "
    "deleted_at, valid_from, valid_until, superseded_by, sealed_content, sealed_metadata"
)
"""The columns every version of a memory has (``memories`` and ``memory_history``); an
encrypted tenant's content and metadata are in the last two, sealed."""


def _opt(value: datetime | None) -> int | None:
    return None if value is None else to_micros(value)


def written(memory: Memory, cipher: TenantCipher | None = None) -> list[Any]:
    """Values of the ``WRITTEN`` columns for a memory (metadata as JSON text), its
    content and metadata sealed with ``cipher``'s key when given."""
    scope = memory.scope
    content, chash = memory.content, memory.content_hash
    metadata = json.dumps(memory.metadata, ensure_ascii=False, sort_keys=True)
    sealed_content = sealed_metadata = None
    if cipher is not None:
        mid, version = memory.id, memory.version
        sealed_content = cipher.seal_memory(mid, version, "content", content)
        sealed_metadata = cipher.seal_memory(mid, version, "metadata", metadata)
        content, metadata, chash = "", "{}", cipher.digest(chash)
    return [
        memory.id, scope.tenant, scope.project, scope.user, scope.agent, scope.session,
        memory.kind, content, list(memory.tags), metadata, memory.importance, memory.source,
        chash, memory.version, to_micros(memory.created_at), to_micros(memory.updated_at),
        _opt(memory.expires_at), _opt(memory.deleted_at), to_micros(memory.valid_from),
        _opt(memory.valid_until), memory.superseded_by, sealed_content, sealed_metadata,
    ]  # fmt: skip


def scope_clause(scope: Scope, alias: str = "m") -> tuple[str, list[Any]]:
    """``tenant = %s AND ...`` for every field the scope sets. The tenant is mandatory."""
    if not scope.tenant:
        raise ValidationError("a store query needs a tenant")
    parts = [f"{alias}.tenant = %s"]
    params: list[Any] = [scope.tenant]
    for name, column in _SCOPE_COLUMNS.items():
        value = getattr(scope, name)
        if value is not None:
            parts.append(f"{alias}.{column} = %s")
            params.append(value)
    return " AND ".join(parts), params


def state_sql(alias: str = "m") -> str:
    """``visibility_sql.state_sql`` with this backend's parameter marks."""
    return visibility_sql.state_sql(alias, "%s")


def _metadata_equals(alias: str, key: str, value: Any) -> tuple[str, list[Any]]:
    """A metadata value equal to ``value`` as SQLite's ``json_extract`` compares it: true
    and false are 1 and 0, and numbers compare by value."""
    field = f"{alias}.metadata -> %s"
    if value is None:
        return f"{field} = 'null'::jsonb", [key]
    if isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1)):
        number = int(value)
        spelled = ["true" if number else "false", str(number)]
        if not isinstance(value, bool) and value != number:
            spelled.append(json.dumps(value))
        return f"{field} = ANY(%s::jsonb[])", [key, spelled]
    return f"{field} = %s::jsonb", [key, json.dumps(value, ensure_ascii=False)]


def filter_clause(
    filters: Filters, now: datetime, alias: str = "m", sealed: Sequence[int] | None = None
) -> tuple[str, list[Any]]:
    """A WHERE clause (without the keyword) selecting what ``filters`` allows, as
    ``memex.storage.sqlite.sql.filter_clause`` does (``memex.core.visibility``).

    The server cannot read sealed metadata: a metadata filter passes a plain row by its
    metadata and a sealed row only if its key is in ``sealed``, the keys of the sealed
    rows whose opened metadata matched (``keys.sealed_matches``)."""
    sql, params = scope_clause(filters.scope, alias)
    parts = [sql]
    if filters.kinds:
        parts.append(f"{alias}.kind = ANY(%s)")
        params.append(list(filters.kinds))
    if filters.tags:
        parts.append(f"{alias}.tags @> %s::text[]")
        params.append(list(filters.tags))
    if filters.metadata:
        plain = []  # a sealed row's metadata column is '{}': it never matches here
        for key, value in filters.metadata.items():
            clause, values = _metadata_equals(alias, key, value)
            plain.append(clause)
            params.extend(values)
        if sealed:
            parts.append(f"(({' AND '.join(plain)}) OR {alias}.seq = ANY(%s))")
            params.append(list(sealed))
        else:
            parts.append(" AND ".join(plain))
    more, values = visibility_sql.time_and_state_clauses(filters, now, alias, "%s")
    parts.extend(more)
    params.extend(values)
    return " AND ".join(parts), params


def list_query(
    filters: Filters,
    now: datetime,
    order: Order,
    limit: int | None,
    cursor: str | None,
    sealed: Sequence[int] | None = None,
) -> tuple[str, list[Any]]:
    """A page in creation order after ``cursor``, one row more than ``limit``."""
    where, params = filter_clause(filters, now, sealed=sealed)
    op, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
    if cursor is not None:
        created, seq = decode_cursor(cursor)
        where += f" AND (m.created_at, m.seq) {op} (%s, %s)"
        params.extend([created, seq])
    query = (
        f"SELECT {COLUMNS} FROM {ROWS} WHERE {where} "
        f"ORDER BY m.created_at {direction}, m.seq {direction}"
    )
    if limit is not None:
        query += " LIMIT %s"
        params.append(limit + 1)
    return query, params

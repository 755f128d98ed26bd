"""SQL fragments: filters to WHERE clauses, memories to row parameters."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memex.core.models import Memory, Scope, to_micros
from memex.core.query import Filters, Order
from memex.errors import ValidationError
from memex.storage import visibility_sql
from memex.storage.sqlite.rows import decode_cursor
from memex.storage.visibility_sql import forgotten_sql as forgotten_sql

if TYPE_CHECKING:
    from memex.storage.encryption import TenantCipher


def plain(column: str, alias: str = "") -> str:
    """A memory column's text in SQL, opened where it is sealed (an encrypted tenant's
    content and metadata are BLOBs; ``memex_plain`` is defined on every connection).
    ``content_hash`` is the SHA-256 of the opened content, as for a plain row."""
    at = f"{alias}." if alias else ""
    sealed = "content" if column == "content_hash" else column
    return (
        f"CASE WHEN typeof({at}{sealed}) = 'blob' THEN memex_plain({at}tenant, {at}id, "
        f"{at}version, '{column}', {at}{sealed}) ELSE {at}{column} END"
    )


# Both lists follow rows.STORED_COLUMNS, so rows become memories with rows.memories
# (history rows have no key and no access statistics). An encrypted tenant's sealed
# content and metadata come as they are stored, and rows.memories opens them in Python:
# a function called from SQL costs a hand-over of the interpreter lock per value.
COLUMNS = (
    "seq, id, tenant, project, user_id, agent, session, kind, content, tags, "
    "metadata, importance, source, content_hash, version, created_at, "
    "updated_at, expires_at, deleted_at, last_accessed_at, access_count, valid_from, "
    "valid_until, superseded_by"
)
HISTORY_COLUMNS = (
    "0, id, tenant, project, user_id, agent, session, kind, content, tags, "
    "metadata, importance, source, content_hash, version, created_at, "
    "updated_at, expires_at, deleted_at, NULL, 0, valid_from, valid_until, superseded_by"
)
_SCOPE_COLUMNS = {"project": "project", "user": "user_id", "agent": "agent", "session": "session"}
# Every scope field and its column, in the order of memex.core.models.SCOPE_FIELDS.
SCOPE_COLUMNS = {"tenant": "tenant", **_SCOPE_COLUMNS}


def _opt(value: datetime | None) -> int | None:
    return None if value is None else to_micros(value)


def memory_params(memory: Memory, cipher: TenantCipher | None = None) -> dict[str, Any]:
    """Named parameters for writing a memory's columns (sealed with ``cipher``'s key)."""
    scope = memory.scope
    params: dict[str, Any] = {
        "id": memory.id,
        "tenant": scope.tenant,
        "project": scope.project,
        "user_id": scope.user,
        "agent": scope.agent,
        "session": scope.session,
        "kind": memory.kind,
        "content": memory.content,
        "tags": json.dumps(list(memory.tags), ensure_ascii=False),
        "metadata": json.dumps(memory.metadata, ensure_ascii=False, sort_keys=True),
        "importance": memory.importance,
        "source": memory.source,
        "content_hash": memory.content_hash,
        "version": memory.version,
        "created_at": to_micros(memory.created_at),
        "updated_at": to_micros(memory.updated_at),
        "expires_at": _opt(memory.expires_at),
        "deleted_at": _opt(memory.deleted_at),
        "last_accessed_at": _opt(memory.last_accessed_at),
        "access_count": memory.access_count,
        "valid_from": to_micros(memory.valid_from),
        "valid_until": _opt(memory.valid_until),
        "superseded_by": memory.superseded_by,
    }
    if cipher is not None:
        params.update(zip(SEALED, sealed(cipher, memory), strict=True))
    return params


SEALED = ("content", "metadata", "content_hash")
"""The columns an encrypted tenant's memory has sealed (or, the hash, keyed)."""


def sealed(cipher: TenantCipher, memory: Memory) -> tuple[bytes, bytes, str]:
    """A memory's content and metadata sealed, and its keyed content hash."""
    mid, version = memory.id, memory.version
    metadata = _encode_metadata(memory.metadata) if memory.metadata else "{}"
    return (
        cipher.seal_memory(mid, version, "content", memory.content),
        cipher.seal_memory(mid, version, "metadata", metadata),
        cipher.digest(memory.content_hash),
    )


INSERT_SQL = (
    "INSERT INTO memories (seq, id, tenant, project, user_id, agent, session, kind, content, "
    "tags, metadata, importance, source, content_hash, version, created_at, updated_at, "
    "expires_at, deleted_at, last_accessed_at, access_count, valid_from, valid_until, "
    "superseded_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
NEXT_SEQ_SQL = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'memories'), 0), "
    "coalesce((SELECT max(seq) FROM memories), 0)) + 1"
)
_encode_tags = json.JSONEncoder(ensure_ascii=False).encode
_encode_metadata = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def memory_row(seq: int, memory: Memory, cipher: TenantCipher | None = None) -> tuple[Any, ...]:
    """Parameters of ``INSERT_SQL`` for a new memory stored under key ``seq`` (sealed
    with ``cipher``'s key)."""
    scope = memory.scope
    created = to_micros(memory.created_at)
    updated = memory.updated_at
    valid_from = memory.valid_from
    content: str | bytes
    metadata: str | bytes
    if cipher is not None:
        content, metadata, chash = sealed(cipher, memory)
    else:
        content = memory.content
        metadata = _encode_metadata(memory.metadata) if memory.metadata else "{}"
        chash = memory.content_hash
    return (
        seq,
        memory.id,
        scope.tenant,
        scope.project,
        scope.user,
        scope.agent,
        scope.session,
        memory.kind,
        content,
        _encode_tags(list(memory.tags)) if memory.tags else "[]",
        metadata,
        memory.importance,
        memory.source,
        chash,
        memory.version,
        created,
        created if updated == memory.created_at else to_micros(updated),
        _opt(memory.expires_at),
        _opt(memory.deleted_at),
        _opt(memory.last_accessed_at),
        memory.access_count,
        created if valid_from == memory.created_at else to_micros(valid_from),
        _opt(memory.valid_until),
        memory.superseded_by,
    )


UPDATE_SQL = (
    "UPDATE memories SET project = :project, user_id = :user_id, agent = :agent, "
    "session = :session, kind = :kind, content = :content, tags = :tags, metadata = :metadata, "
    "importance = :importance, source = :source, content_hash = :content_hash, "
    "version = :version, updated_at = :updated_at, expires_at = :expires_at, "
    "deleted_at = :deleted_at, valid_from = :valid_from, valid_until = :valid_until, "
    "superseded_by = :superseded_by "
    "WHERE tenant = :tenant AND id = :id AND version = :expected_version"
)


def scope_clause(scope: Scope, alias: str = "m") -> tuple[str, list[Any]]:
    """``tenant = ? AND ...`` for every field the scope sets. The tenant is mandatory."""
    if not scope.tenant:
        raise ValidationError("a store query needs a tenant")
    parts = [f"{alias}.tenant = ?"]
    params: list[Any] = [scope.tenant]
    for name, column in _SCOPE_COLUMNS.items():
        value = getattr(scope, name)
        if value is not None:
            parts.append(f"{alias}.{column} = ?")
            params.append(value)
    return " AND ".join(parts), params


def state_sql(alias: str = "m") -> str:
    """``visibility_sql.state_sql`` with this backend's parameter marks."""
    return visibility_sql.state_sql(alias, "?")


def filter_clause(filters: Filters, now: datetime, alias: str = "m") -> tuple[str, list[Any]]:
    """A WHERE clause (without the keyword) selecting what ``filters`` allows.

    Visibility follows ``memex.core.visibility`` at ``filters.as_of`` or ``now``:
    forgotten and expired rows are left out unless ``include_deleted``; superseded and
    pending ones unless ``include_superseded`` without ``as_of``.
    """
    sql, params = scope_clause(filters.scope, alias)
    parts = [sql]
    if filters.kinds:
        parts.append(f"{alias}.kind IN ({','.join('?' * len(filters.kinds))})")
        params.extend(filters.kinds)
    for tag in filters.tags:
        if tag.isascii() and tag.isprintable() and '"' not in tag and "\\" not in tag:
            # A cheap test on the row first: the tag's JSON text in the tags column.
            # Only for tags every JSON writer spells alike; the index lookup decides.
            parts.append(f"instr({alias}.tags, ?) > 0")
            params.append(json.dumps(tag))
        parts.append(
            f"EXISTS (SELECT 1 FROM memory_tags t WHERE t.tenant = {alias}.tenant "
            f"AND t.tag = ? AND t.seq = {alias}.seq)"
        )
        params.append(tag)
    for key, value in filters.metadata.items():
        path = '$."' + key + '"'
        if value is None:
            parts.append(f"json_type({plain('metadata', alias)}, ?) = 'null'")
            params.append(path)
        else:
            parts.append(f"json_extract({plain('metadata', alias)}, ?) = ?")
            params.extend([path, int(value) if isinstance(value, bool) else value])
    more, values = visibility_sql.time_and_state_clauses(filters, now, alias, "?")
    parts.extend(more)
    params.extend(values)
    return " AND ".join(parts), params


def list_query(
    filters: Filters, now: datetime, order: Order, limit: int | None, cursor: str | None
) -> tuple[str, list[Any]]:
    """A page in creation order after ``cursor``, one row more than ``limit`` (every row
    without a limit)."""
    where, params = filter_clause(filters, now)
    op, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
    if cursor is not None:
        created, seq = decode_cursor(cursor)
        where += f" AND (m.created_at, m.seq) {op} (?, ?)"
        params.extend([created, seq])
    query = (
        f"SELECT {COLUMNS} FROM memories m WHERE {where} "
        f"ORDER BY m.created_at {direction}, m.seq {direction}"
    )
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit + 1)
    return query, params

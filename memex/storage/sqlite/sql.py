"""SQL fragments: filters to WHERE clauses, rows to Memory values and back."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from memex.core.models import Memory, Scope, from_micros, to_micros, utcnow
from memex.core.query import Filters
from memex.errors import ValidationError

COLUMNS = (
    "seq, id, tenant, project, user_id, agent, session, kind, content, tags, metadata, "
    "importance, source, content_hash, version, created_at, updated_at, expires_at, "
    "deleted_at, last_accessed_at, access_count, valid_from, valid_until, superseded_by"
)
HISTORY_COLUMNS = (
    "0, id, tenant, project, user_id, agent, session, kind, content, tags, metadata, "
    "importance, source, content_hash, version, created_at, updated_at, expires_at, "
    "deleted_at, NULL, 0, valid_from, valid_until, superseded_by"
)
_SCOPE_COLUMNS = {"project": "project", "user": "user_id", "agent": "agent", "session": "session"}


def _t(value: int | None) -> datetime | None:
    return None if value is None else from_micros(value)


def row_to_memory(row: sqlite3.Row | tuple[Any, ...]) -> tuple[int, Memory]:
    """A row selected with ``COLUMNS`` as (key, Memory)."""
    (
        seq, mid, tenant, project, user_id, agent, session, kind, content, tags, metadata,
        importance, source, chash, version, created, updated, expires, deleted, accessed,
        count, valid_from, valid_until, superseded_by,
    ) = row  # fmt: skip
    memory = Memory(
        id=mid,
        content=content,
        kind=kind,
        scope=Scope(tenant=tenant, project=project, user=user_id, agent=agent, session=session),
        tags=tuple(json.loads(tags)),
        metadata=json.loads(metadata),
        importance=importance,
        created_at=from_micros(created),
        updated_at=from_micros(updated),
        expires_at=_t(expires),
        last_accessed_at=_t(accessed),
        access_count=count,
        source=source,
        content_hash=chash,
        version=version,
        valid_from=from_micros(valid_from if valid_from is not None else created),
        valid_until=_t(valid_until),
        superseded_by=superseded_by,
        deleted_at=_t(deleted),
    )
    return seq, memory


def _opt(value: datetime | None) -> int | None:
    return None if value is None else to_micros(value)


def memory_params(memory: Memory) -> dict[str, Any]:
    """Named parameters for writing a memory's columns."""
    scope = memory.scope
    return {
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


INSERT_SQL = (
    "INSERT INTO memories (id, tenant, project, user_id, agent, session, kind, content, tags, "
    "metadata, importance, source, content_hash, version, created_at, updated_at, expires_at, "
    "deleted_at, last_accessed_at, access_count, valid_from, valid_until, superseded_by) VALUES "
    "(:id, :tenant, :project, :user_id, :agent, :session, :kind, :content, :tags, :metadata, "
    ":importance, :source, :content_hash, :version, :created_at, :updated_at, :expires_at, "
    ":deleted_at, :last_accessed_at, :access_count, :valid_from, :valid_until, :superseded_by)"
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


def filter_clause(filters: Filters, now: datetime, alias: str = "m") -> tuple[str, list[Any]]:
    """A WHERE clause (without the keyword) selecting what ``filters`` allows."""
    sql, params = scope_clause(filters.scope, alias)
    parts = [sql]
    if filters.kinds:
        parts.append(f"{alias}.kind IN ({','.join('?' * len(filters.kinds))})")
        params.extend(filters.kinds)
    for tag in filters.tags:
        parts.append(
            f"EXISTS (SELECT 1 FROM memory_tags t WHERE t.tenant = {alias}.tenant "
            f"AND t.tag = ? AND t.seq = {alias}.seq)"
        )
        params.append(tag)
    for key, value in filters.metadata.items():
        path = '$."' + key + '"'
        if value is None:
            parts.append(f"json_type({alias}.metadata, ?) = 'null'")
            params.append(path)
        else:
            parts.append(f"json_extract({alias}.metadata, ?) = ?")
            params.extend([path, int(value) if isinstance(value, bool) else value])
    if filters.since is not None:
        parts.append(f"{alias}.created_at >= ?")
        params.append(to_micros(filters.since))
    if filters.until is not None:
        parts.append(f"{alias}.created_at < ?")
        params.append(to_micros(filters.until))
    at = to_micros(filters.as_of or now)
    if not filters.include_deleted:
        parts.append(f"{alias}.deleted_at IS NULL")
        parts.append(f"({alias}.expires_at IS NULL OR {alias}.expires_at > ?)")
        params.append(at)
    if filters.as_of is not None or not filters.include_superseded:
        parts.append(f"{alias}.valid_from <= ?")
        parts.append(f"({alias}.valid_until IS NULL OR {alias}.valid_until > ?)")
        params.extend([at, at])
    return " AND ".join(parts), params


def passing(conn: sqlite3.Connection, filters: Filters, keys: list[int]) -> set[int]:
    """Which of ``keys`` the filters let through (looked up by key, a chunk at a time)."""
    where, params = filter_clause(filters, utcnow())
    found: set[int] = set()
    for start in range(0, len(keys), 900):
        chunk = keys[start : start + 900]
        marks = ",".join("?" * len(chunk))
        # NOT INDEXED: without statistics SQLite could walk a tenant index instead.
        found.update(
            r[0]
            for r in conn.execute(
                f"SELECT m.seq FROM memories m NOT INDEXED WHERE m.seq IN ({marks}) AND {where}",
                [*chunk, *params],
            )
        )
    return found

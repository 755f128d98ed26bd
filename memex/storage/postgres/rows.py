"""The PostgreSQL store's rows: their layout, how they decode into memories, list cursors.

A row holds the store's key, then a memory as stored: tags as a text array, metadata as
jsonb (psycopg hands it over decoded), times as bigint microseconds since the epoch.
``sql.COLUMNS`` and ``sql.HISTORY_COLUMNS`` select rows in this layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from memex.core.models import Memory, Scope, stored_memories
from memex.storage.cursors import decode_cursor as decode_cursor
from memex.storage.cursors import encode_cursor as encode_cursor

STORED_COLUMNS: tuple[str, ...] = (
    "key", "id", "tenant", "project", "user", "agent", "session", "kind", "content",
    "tags", "metadata", "importance", "source", "content_hash", "version", "created_at",
    "updated_at", "expires_at", "deleted_at", "last_accessed_at", "access_count",
    "valid_from", "valid_until", "superseded_by", "sealed_content", "sealed_metadata",
)  # fmt: skip
"""A stored row's fields, in order (``user`` is the column ``user_id``). A sealed row
(an encrypted tenant's) is opened (``sealing.opened``) before it is decoded."""

CREATED = STORED_COLUMNS.index("created_at")
_METADATA = STORED_COLUMNS.index("metadata")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _fields(row: Sequence[Any]) -> tuple[Any, ...]:
    """The memory's fields but metadata, in ``memex.core.models.BUILT_FIELDS`` order."""
    (
        _, mid, tenant, project, user, agent, session, kind, content, tags, _,
        importance, source, chash, version, created, updated, expires, deleted, accessed,
        count, valid_from, valid_until, superseded_by, _, _,
    ) = row  # fmt: skip
    created_at = _EPOCH + timedelta(microseconds=created)
    return (
        content, kind, Scope(tenant, project, user, agent, session), tuple(tags), importance,
        created_at, created_at if updated == created else _time(updated), _time(expires),
        _time(accessed), int(count), source, chash, version,
        created_at if valid_from == created else _time(valid_from), _time(valid_until),
        superseded_by, _time(deleted), mid,
    )  # fmt: skip


def _metadata(row: Sequence[Any]) -> dict[str, Any]:
    value: dict[str, Any] = row[_METADATA]
    return value


class _Rows:
    """The decoder ``memex.core.models.stored_memories`` calls."""

    fields = staticmethod(_fields)
    metadata = staticmethod(_metadata)


DECODER = _Rows()


def memories(rows: Sequence[Sequence[Any]]) -> list[Memory]:
    """Memories for stored rows, each decoded on first use."""
    return stored_memories(rows, DECODER)

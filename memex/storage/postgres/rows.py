"""The PostgreSQL store's rows: their layout, how they decode into memories, list cursors.

A row holds the store's key, then a memory as stored: tags as a text array, metadata as
jsonb (psycopg hands it over decoded), times as bigint microseconds since the epoch.
``sql.COLUMNS`` and ``sql.HISTORY_COLUMNS`` select rows in this layout.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from memex.core.models import Memory, Scope, stored_memories
from memex.core.validate import INT64_MAX, INT64_MIN, loads_json, shown
from memex.errors import ValidationError

STORED_COLUMNS: tuple[str, ...] = (
    "key", "id", "tenant", "project", "user", "agent", "session", "kind", "content",
    "tags", "metadata", "importance", "source", "content_hash", "version", "created_at",
    "updated_at", "expires_at", "deleted_at", "last_accessed_at", "access_count",
    "valid_from", "valid_until", "superseded_by",
)  # fmt: skip
"""A stored row's fields, in order (``user`` is the column ``user_id``)."""

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
        count, valid_from, valid_until, superseded_by,
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


def encode_cursor(created_at_micros: int, key: int) -> str:
    """An opaque keyset cursor for the position after a listed memory."""
    raw = json.dumps([created_at_micros, key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_MAX_CURSOR_CHARS = 256


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The keyset position inside a cursor; a malformed cursor is a ValidationError."""
    bad = ValidationError(f"malformed cursor {shown(cursor)}")
    if not isinstance(cursor, str) or not cursor.isascii() or len(cursor) > _MAX_CURSOR_CHARS:
        raise bad
    try:
        value = loads_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise bad from exc
    if not isinstance(value, list) or len(value) != 2:
        raise bad
    created, key = value
    for number in (created, key):
        if type(number) is not int or not INT64_MIN <= number <= INT64_MAX:
            raise bad
    return created, key

"""The SQLite store's rows: their layout, how they decode into memories, list cursors.

A row holds the store's key, then a memory as stored: tags and metadata as JSON text,
times as integer microseconds since the epoch (``valid_from`` may equal the creation
time). ``sql.COLUMNS`` and ``sql.HISTORY_COLUMNS`` select rows in this layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from memex.core.models import Memory, Scope, stored_memories
from memex.storage.cursors import decode_cursor as decode_cursor
from memex.storage.cursors import encode_cursor as encode_cursor

STORED_COLUMNS: tuple[str, ...] = (
    "key", "id", "tenant", "project", "user", "agent", "session", "kind", "content",
    "tags", "metadata", "importance", "source", "content_hash", "version", "created_at",
    "updated_at", "expires_at", "deleted_at", "last_accessed_at", "access_count",
    "valid_from", "valid_until", "superseded_by",
)  # fmt: skip
"""A stored row's fields, in order (``user`` is the column ``user_id``)."""

CREATED = STORED_COLUMNS.index("created_at")
_METADATA = STORED_COLUMNS.index("metadata")
_CONTENT = STORED_COLUMNS.index("content")
_HASH = STORED_COLUMNS.index("content_hash")
_VERSION = STORED_COLUMNS.index("version")

ContentsOpener = Callable[[str, Sequence[tuple[str, int, bytes]]], list[str]]
"""Opens sealed contents of one tenant: (tenant, [(id, version, sealed), ...]) -> their
texts (``memex.storage.encryption.Keyring.open_contents``)."""
RowOpener = Callable[[str, str, int, bytes, bytes], tuple[str, str, str]]
"""Opens a sealed row: (tenant, id, version, sealed content, sealed metadata) -> its
content, metadata and content hash (``memex.storage.encryption.Keyring.open_row``)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_LIMIT = 4096


# Scopes, tag tuples and times repeat across rows: each is made once (module globals: a
# memory read from a row is built on every get, and a lookup of a global is the cheapest).
_scopes: dict[tuple[str | None, ...], Scope] = {}
_tags: dict[str, tuple[str, ...]] = {}
_times: dict[int, datetime] = {}


def _time(value: int) -> datetime:
    found = _times.get(value)
    if found is None:
        if len(_times) >= _CACHE_LIMIT:
            _times.clear()
        found = _times[value] = _EPOCH + timedelta(microseconds=value)
    return found


def _fields(row: Sequence[Any]) -> tuple[Any, ...]:
    """The memory's fields but metadata, in ``memex.core.models.BUILT_FIELDS`` order."""
    (
        _, mid, tenant, project, user, agent, session, kind, content, tags, _,
        importance, source, chash, version, created, updated, expires, deleted, accessed,
        count, valid_from, valid_until, superseded_by,
    ) = row  # fmt: skip
    key = (tenant, project, user, agent, session)
    scope = _scopes.get(key)
    if scope is None:
        if len(_scopes) >= _CACHE_LIMIT:
            _scopes.clear()
        scope = _scopes[key] = Scope(tenant, project, user, agent, session)
    tag_tuple = _tags.get(tags)
    if tag_tuple is None:
        if len(_tags) >= _CACHE_LIMIT:
            _tags.clear()
        tag_tuple = _tags[tags] = tuple(json.loads(tags))
    created_at = _EPOCH + timedelta(microseconds=created)
    return (
        content, kind, scope, tag_tuple, importance, created_at,
        created_at if updated == created else _time(updated),
        None if expires is None else _time(expires),
        None if accessed is None else _time(accessed),
        count, source, chash, version,
        created_at if valid_from is None or valid_from == created else _time(valid_from),
        None if valid_until is None else _time(valid_until),
        superseded_by,
        None if deleted is None else _time(deleted),
        mid,
    )  # fmt: skip


def _metadata(row: Sequence[Any]) -> dict[str, Any]:
    """The memory's metadata, decoded from its JSON text."""
    text = row[_METADATA]
    value: dict[str, Any] = {} if text == "{}" else json.loads(text)
    return value


class _Rows:
    """The decoder ``memex.core.models.stored_memories`` calls (plain functions: no
    bound method is made per memory)."""

    fields = staticmethod(_fields)
    metadata = staticmethod(_metadata)


DECODER = _Rows()


def opened(rows: Sequence[Sequence[Any]], opener: RowOpener) -> Sequence[Sequence[Any]]:
    """Stored rows with an encrypted tenant's sealed content and metadata opened, and the
    content hash the SHA-256 of the content, as a plain row has them (the same rows
    when none is sealed)."""
    if all(type(row[_CONTENT]) is not bytes for row in rows):
        return rows
    out: list[Sequence[Any]] = []
    for row in rows:
        sealed = row[_CONTENT]
        if type(sealed) is not bytes:
            out.append(row)
            continue
        values = list(row)
        values[_CONTENT], values[_METADATA], values[_HASH] = opener(
            row[2], row[1], row[_VERSION], sealed, row[_METADATA]
        )
        out.append(values)
    return out


def memories(rows: Sequence[Sequence[Any]]) -> list[Memory]:
    """Memories for stored rows whose sealed values are opened already (``opened``),
    each decoded on first use."""
    return stored_memories(rows, DECODER)

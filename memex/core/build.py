"""Validation of raw memory records into Memory values. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from memex.core.ids import is_valid_id, new_id
from memex.core.models import (
    Memory,
    Scope,
    content_hash,
    parse_time,
    validate_content,
    validate_importance,
    validate_kind,
    validate_metadata,
    validate_tags,
)
from memex.errors import ValidationError

REMEMBER_FIELDS = frozenset(
    {
        "id",
        "content",
        "kind",
        "tags",
        "metadata",
        "scope",
        "importance",
        "created_at",
        "expires_at",
        "ttl",
        "source",
        "supersedes",
        "valid_from",
        "valid_until",
        "superseded_by",
        "deleted_at",
    }
)

_MAX_TTL_SECONDS = 100 * 365 * 86_400


def build_memory(
    item: Mapping[str, Any],
    *,
    within: Scope,
    now: datetime,
    max_content_bytes: int,
    position: int = 0,
) -> tuple[Memory, str | None]:
    """Validate one record into a new Memory inside ``within``; also return what it supersedes."""
    if not isinstance(item, Mapping):
        raise ValidationError(f"item {position}: each memory must be a mapping")
    unknown = set(item) - REMEMBER_FIELDS
    if unknown:
        raise ValidationError(f"unknown field {sorted(unknown)[0]!r}")
    content = validate_content(item.get("content"), max_content_bytes)  # type: ignore[arg-type]
    created = opt_time(item.get("created_at"), "created_at") or now
    expires = opt_time(item.get("expires_at"), "expires_at")
    ttl = item.get("ttl")
    if ttl is not None:
        if expires is not None:
            raise ValidationError("give expires_at or ttl, not both")
        expires = now + ttl_delta(ttl)
    valid_from = opt_time(item.get("valid_from"), "valid_from") or created
    valid_until = opt_time(item.get("valid_until"), "valid_until")
    if valid_until is not None and valid_until < valid_from:
        raise ValidationError("valid_until must not be earlier than valid_from")
    deleted_at = opt_time(item.get("deleted_at"), "deleted_at")
    if deleted_at is not None and deleted_at > now:
        # A deletion is a past event. One dated ahead leaves a row read as live that
        # carries a deletion, which a later write could turn from a recorded expiry into
        # a forget (see memex.core.visibility.is_forgotten).
        raise ValidationError("deleted_at must not be in the future")
    memory_id = item.get("id")
    if memory_id is None or memory_id == "":
        memory_id = new_id(int(created.timestamp() * 1000))
    elif not isinstance(memory_id, str) or not is_valid_id(memory_id):
        raise ValidationError(f"id must be a UUID string, not {memory_id!r}")
    source = item.get("source")
    if source is not None and (not isinstance(source, str) or len(source) > 512):
        raise ValidationError("source must be a string of at most 512 characters")
    supersedes = item.get("supersedes")
    if supersedes is not None and not isinstance(supersedes, str):
        raise ValidationError("supersedes must be a memory id")
    superseded_by = item.get("superseded_by")
    if superseded_by is not None and not is_valid_id(str(superseded_by)):
        raise ValidationError("superseded_by must be a memory id")
    memory = Memory(
        id=memory_id.lower(),
        content=content,
        kind=validate_kind(item.get("kind") or "note"),
        scope=within if (scope := item.get("scope")) is None else within.narrow(Scope.of(scope)),
        tags=validate_tags(item.get("tags")),
        metadata=validate_metadata(item.get("metadata")),
        importance=validate_importance(item.get("importance", 0.5)),
        created_at=created,
        updated_at=now,
        expires_at=expires,
        last_accessed_at=None,
        access_count=0,
        source=source,
        content_hash=content_hash(content),
        version=1,
        valid_from=valid_from,
        valid_until=valid_until,
        superseded_by=superseded_by,
        deleted_at=deleted_at,
    )
    return memory, supersedes


def opt_time(value: Any, what: str) -> datetime | None:
    """``None`` stays None; anything else is parsed as a time."""
    return None if value is None else parse_time(value, what)


def ttl_delta(value: Any) -> timedelta:
    """A time to live: seconds or a timedelta, positive."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 < value <= _MAX_TTL_SECONDS:
            raise ValidationError("ttl must be positive and at most 100 years")
        result = timedelta(seconds=value)
    else:
        raise ValidationError("ttl must be a number of seconds or a timedelta")
    if not 0 < result.total_seconds() <= _MAX_TTL_SECONDS:
        raise ValidationError("ttl must be positive and at most 100 years")
    return result

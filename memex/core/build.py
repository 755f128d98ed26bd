"""Validation of raw memory records into Memory values. Pure: no I/O.

``check_field`` is the one rule per field that every write path applies: ``remember``
and ``import`` through ``build_memory``, ``update`` through ``versions.updated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from memex.core.ids import is_valid_id, new_id
from memex.core.models import Memory, Scope, content_hash, parse_time
from memex.core.validate import (
    MAX_TTL_SECONDS,
    check_text,
    shown,
    validate_content,
    validate_importance,
    validate_kind,
    validate_metadata,
    validate_source,
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
UPDATE_FIELDS = ("content", "kind", "tags", "metadata", "importance", "expires_at", "source")
"""What ``update`` may change in place; the rest of a memory is fixed once written."""

SUPERSEDE_FIELDS = frozenset(
    {"kind", "tags", "metadata", "scope", "importance", "created_at", "expires_at", "ttl",
     "source", "valid_from"}
)  # fmt: skip
"""What ``supersede`` takes besides the new content: ``remember``'s keyword arguments."""

_TIMES = frozenset({"created_at", "expires_at", "valid_from", "valid_until", "deleted_at"})


def check_field(name: str, value: Any, *, max_content_bytes: int) -> Any:
    """One field of a memory, validated and normalised as every write path does it."""
    if name == "content":
        return validate_content(value, max_content_bytes)
    if name == "kind":
        return validate_kind(value)
    if name == "tags":
        return validate_tags(value)
    if name == "metadata":
        return validate_metadata(value)
    if name == "importance":
        return validate_importance(value)
    if name == "source":
        return validate_source(value)
    if name in _TIMES:
        return opt_time(value, name)
    raise ValidationError(f"unknown field {shown(name)}")


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
        raise ValidationError(f"unknown field {shown(min(unknown, key=str))}")

    def check(name: str, default: Any = None) -> Any:
        value = item.get(name)
        return check_field(
            name, default if value is None else value, max_content_bytes=max_content_bytes
        )

    content = check("content")
    created = check("created_at") or now
    expires = check("expires_at")
    ttl = item.get("ttl")
    if ttl is not None:
        if expires is not None:
            raise ValidationError("give expires_at or ttl, not both")
        expires = now + ttl_delta(ttl)
    valid_from = check("valid_from") or created
    valid_until = check("valid_until")
    if valid_until is not None and valid_until < valid_from:
        raise ValidationError("valid_until must not be earlier than valid_from")
    deleted_at = check("deleted_at")
    if deleted_at is not None and deleted_at > now:
        # A deletion is a past event. One dated ahead leaves a row read as live that
        # carries a deletion, which a later write could turn from a recorded expiry into
        # a forget (see memex.core.visibility.is_forgotten).
        raise ValidationError("deleted_at must not be in the future")
    memory_id = item.get("id")
    if memory_id is None or memory_id == "":
        memory_id = new_id(int(created.timestamp() * 1000))
    elif not isinstance(memory_id, str) or not is_valid_id(memory_id):
        raise ValidationError(f"id must be a UUID string, not {shown(memory_id)}")
    supersedes = item.get("supersedes")
    if supersedes is not None:
        if not isinstance(supersedes, str):
            raise ValidationError("supersedes must be a memory id")
        check_text(supersedes, "supersedes")
    superseded_by = item.get("superseded_by")
    if superseded_by is not None:
        if not isinstance(superseded_by, str) or not is_valid_id(superseded_by):
            raise ValidationError("superseded_by must be a memory id")
        superseded_by = superseded_by.lower()
    memory = Memory(
        id=memory_id.lower(),
        content=content,
        kind=check("kind", "note") if item.get("kind") != "" else "note",
        scope=within if (scope := item.get("scope")) is None else within.narrow(Scope.of(scope)),
        tags=check("tags"),
        metadata=check("metadata"),
        importance=check("importance", 0.5),
        created_at=created,
        updated_at=now,
        expires_at=expires,
        last_accessed_at=None,
        access_count=0,
        source=check("source"),
        content_hash=content_hash(content),
        version=1,
        valid_from=valid_from,
        valid_until=valid_until,
        superseded_by=superseded_by,
        deleted_at=deleted_at,
    )
    return memory, supersedes


def carried_over(old: Memory, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``remember``'s arguments for a memory that supersedes ``old``: ``fields``, with kind,
    tags, metadata, scope and importance carried over from ``old`` unless given."""
    unknown = set(fields) - SUPERSEDE_FIELDS
    if unknown:
        raise ValidationError(f"supersede cannot set {shown(min(unknown, key=str))}")
    return {
        "kind": old.kind,
        "tags": list(old.tags),
        "metadata": old.metadata,
        "scope": {k: v for k, v in old.scope.items() if k != "tenant"},
        "importance": old.importance,
        **fields,
    }


def opt_time(value: Any, what: str) -> datetime | None:
    """``None`` stays None; anything else is parsed as a time."""
    return None if value is None else parse_time(value, what)


def ttl_delta(value: Any) -> timedelta:
    """A time to live: seconds or a timedelta, positive and at most 100 years."""
    if isinstance(value, timedelta):
        seconds: float = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value  # compared before any conversion: a huge int cannot overflow
    else:
        raise ValidationError("ttl must be a number of seconds or a timedelta")
    if not 0 < seconds <= MAX_TTL_SECONDS:  # NaN fails too
        raise ValidationError("ttl must be positive and at most 100 years")
    return value if isinstance(value, timedelta) else timedelta(seconds=value)

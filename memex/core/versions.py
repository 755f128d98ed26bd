"""A memory's next version, for each write that makes one. Pure: no I/O.

Every change to a stored memory is a new version (the old one stays in ``history``):
``update`` changes fields, a supersede ends the old memory's validity, ``forget`` and
``expire`` record a deletion, and removing a supersede gives validity back (the rule of
what it gives back is ``core.supersede.restored_validity``). Each new version carries
the time of the write and the version number after the old one's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from memex.core.build import UPDATE_FIELDS, check_field
from memex.core.models import Memory, content_hash
from memex.core.supersede import Validity
from memex.core.validate import shown
from memex.errors import ValidationError

KEEP: Any = object()
"""An ``update`` argument left out: the field stays as it is (``None`` may clear one)."""
CLEARABLE = frozenset({"expires_at", "source"})
"""The fields ``update`` clears when given ``None``; any other keeps its value then."""


def update_changes(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The changes ``update``'s arguments ask for: every field given, except those left
    as ``KEEP`` and those given as ``None`` that ``None`` cannot clear."""
    return {
        name: value
        for name, value in fields.items()
        if value is not KEEP and (value is not None or name in CLEARABLE)
    }


def updated(
    old: Memory, changes: Mapping[str, Any], *, now: datetime, max_content_bytes: int
) -> Memory:
    """``old`` with ``changes`` (fields of ``UPDATE_FIELDS``) applied, each validated as
    ``remember`` validates it.

    Raises:
        ValidationError: a field ``update`` cannot change, no change at all, or a bad value.
    """
    unknown = set(changes) - set(UPDATE_FIELDS)
    if unknown:
        raise ValidationError(f"update cannot change {shown(min(unknown, key=str))}")
    if not changes:
        raise ValidationError("nothing to update: give at least one field to change")
    values = {
        name: check_field(name, value, max_content_bytes=max_content_bytes)
        for name, value in changes.items()
    }
    if "content" in values:
        values["content_hash"] = content_hash(values["content"])
    return old.with_changes(**values, updated_at=now, version=old.version + 1)


def superseded(old: Memory, by: Memory, now: datetime, *, named: str | None = None) -> Memory:
    """``old`` once ``by`` supersedes it: valid until ``by`` becomes valid, and marked as
    superseded by it. ``named`` is how the caller named ``old`` (for messages).

    Raises:
        ValidationError: ``old``'s validity has ended by ``now`` (it is superseded
            already), or ``by`` would become valid before ``old`` did.
    """
    name = old.id if named is None else named
    if old.valid_until is not None and old.valid_until <= now:
        raise ValidationError(f"memory {name} is already superseded")
    if by.valid_from < old.valid_from:
        raise ValidationError(
            f"the new memory's valid_from is earlier than that of {name}, which it supersedes"
        )
    return old.with_changes(
        valid_until=by.valid_from, superseded_by=by.id, updated_at=now, version=old.version + 1
    )


def deleted(memory: Memory, now: datetime) -> Memory:
    """``memory`` deleted at ``now``: forgotten, or its expiry recorded (which of the two
    follows from ``expires_at``, as ``core.visibility.is_forgotten`` has it)."""
    return memory.with_changes(deleted_at=now, updated_at=now, version=memory.version + 1)


def revalidated(memory: Memory, validity: Validity, now: datetime) -> Memory:
    """``memory`` with the validity a removed supersede gave back."""
    return memory.with_changes(
        valid_until=validity.valid_until,
        superseded_by=validity.superseded_by,
        updated_at=now,
        version=memory.version + 1,
    )

"""A memory's next version, as tables of cases: superseded, updated, deleted (forgotten or
expired) and revalidated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from memex.core.build import build_memory
from memex.core.models import Memory, Scope, content_hash
from memex.core.supersede import Validity
from memex.core.versions import KEEP, deleted, revalidated, superseded, update_changes, updated
from memex.core.visibility import is_forgotten
from memex.errors import ValidationError

NOW = datetime(2025, 1, 10, tzinfo=UTC)
OLD_ID = "00000000-0000-7000-8000-00000000000a"
NEW_ID = "00000000-0000-7000-8000-00000000000b"


def day(n: int) -> datetime:
    return datetime(2025, 1, n, tzinfo=UTC)


def mem(memory_id: str = OLD_ID, **fields: Any) -> Memory:
    """A memory written on day 1 (valid from then unless told), with ``fields`` replaced."""
    item = {"id": memory_id, "content": "Alice works at Initech", "kind": "fact",
            "created_at": day(1), "tags": ["work"]}  # fmt: skip
    memory = build_memory(item, within=Scope(tenant="t"), now=day(1), max_content_bytes=1000)[0]
    return memory.with_changes(**fields)


# -- superseded ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new_from", "named", "expected"),
    [
        # The usual supersede: the old memory is valid until the new one begins.
        (mem(), day(5), None, {"valid_until": day(5), "version": 2}),
        # Both valid from the same moment: allowed, the old one never was alone.
        (mem(valid_from=day(5)), day(5), None, {"valid_until": day(5), "version": 2}),
        # A later version of the old memory: the next number follows it.
        (mem(version=3), day(5), None, {"valid_until": day(5), "version": 4}),
        # The old memory's own end, still ahead, becomes the new one's start, earlier or later.
        (mem(valid_until=day(20)), day(15), None, {"valid_until": day(15), "version": 2}),
        (mem(valid_until=day(20)), day(25), None, {"valid_until": day(25), "version": 2}),
        # Its validity ended already (superseded, or imported with an end): refused.
        (mem(valid_until=NOW), day(11), None, f"memory {OLD_ID} is already superseded"),
        (mem(valid_until=day(3)), day(11), "A", "memory A is already superseded"),
        # The new memory would be valid before the one it replaces: refused.
        (
            mem(valid_from=day(5)),
            day(4),
            "Alice's job",
            "the new memory's valid_from is earlier than that of Alice's job, which it supersedes",
        ),
    ],
)
def test_superseded(
    old: Memory, new_from: datetime, named: str | None, expected: dict[str, Any] | str
) -> None:
    new = mem(NEW_ID, content="Alice works at Globex", valid_from=new_from)
    if isinstance(expected, str):
        with pytest.raises(ValidationError) as info:
            superseded(old, new, NOW, named=named)
        assert str(info.value) == expected
        return
    result = superseded(old, new, NOW, named=named)
    assert result == old.with_changes(superseded_by=NEW_ID, updated_at=NOW, **expected)


# -- updated -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # None leaves a field as it is ...
        ({"content": None, "kind": "decision", "tags": None}, {"kind": "decision"}),
        # ... except expires_at and source, which None clears; KEEP leaves those.
        ({"expires_at": None, "source": KEEP}, {"expires_at": None}),
        ({"content": None, "expires_at": KEEP, "source": None}, {"source": None}),
        ({"metadata": {}, "importance": 0.0}, {"metadata": {}, "importance": 0.0}),
        ({"content": None, "expires_at": KEEP, "source": KEEP}, {}),
    ],
)
def test_update_changes(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert update_changes(fields) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # New content gets its hash; the rest of the memory is as it was.
        (
            {"content": "Alice works at Globex"},
            {
                "content": "Alice works at Globex",
                "content_hash": content_hash("Alice works at Globex"),
            },
        ),
        # Values are normalised as remember does it.
        ({"tags": [" b ", "a", "b"]}, {"tags": ("b", "a")}),
        ({"kind": "decision", "importance": 1}, {"kind": "decision", "importance": 1.0}),
        ({"expires_at": "2025-02-01T00:00:00Z"}, {"expires_at": datetime(2025, 2, 1, tzinfo=UTC)}),
        ({"source": None}, {"source": None}),
        # Refused: nothing to change, a field update may not change, a bad value.
        ({}, "nothing to update: give at least one field to change"),
        ({"valid_from": day(2)}, "update cannot change 'valid_from'"),
        ({"importance": 2}, "importance must be from 0 to 1, not 2"),
    ],
)
def test_updated(changes: dict[str, Any], expected: dict[str, Any] | str) -> None:
    old = mem(source="chat", expires_at=day(20))
    if isinstance(expected, str):
        with pytest.raises(ValidationError) as info:
            updated(old, changes, now=NOW, max_content_bytes=1000)
        assert str(info.value) == expected
        return
    result = updated(old, changes, now=NOW, max_content_bytes=1000)
    assert result == old.with_changes(updated_at=NOW, version=2, **expected)


# -- deleted and revalidated ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_at", "forgotten"),
    [
        (None, True),  # no expiry: the deletion is a forget
        (day(20), True),  # deleted before its expiry: a forget
        (NOW, False),  # deleted when it expired: the expiry recorded
        (day(5), False),  # deleted after it expired: the expiry recorded
    ],
)
def test_deleted(expires_at: datetime | None, forgotten: bool) -> None:
    old = mem(expires_at=expires_at, version=2)
    result = deleted(old, NOW)
    assert result == old.with_changes(deleted_at=NOW, updated_at=NOW, version=3)
    assert is_forgotten(result.deleted_at, result.expires_at) is forgotten


@pytest.mark.parametrize(
    ("validity", "expected"),
    [
        (Validity(None, None), {"valid_until": None, "superseded_by": None}),
        (Validity(day(9), NEW_ID), {"valid_until": day(9), "superseded_by": NEW_ID}),
        (Validity(day(7), None), {"valid_until": day(7), "superseded_by": None}),
    ],
)
def test_revalidated(validity: Validity, expected: dict[str, Any]) -> None:
    old = mem(valid_until=day(5), superseded_by="00000000-0000-7000-8000-00000000000c")
    result = revalidated(old, validity, NOW)
    assert result == old.with_changes(updated_at=NOW, version=2, **expected)

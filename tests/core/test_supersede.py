"""The supersede-undo rule, as a table of cases: what a superseded memory's validity
becomes once the memory that superseded it is forgotten or purged, or the supersede is
undone outright."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from memex.core.models import Memory, Scope, content_hash
from memex.core.supersede import Validity, restored_validity


def day(n: int) -> datetime:
    return datetime(2025, 1, n, tzinfo=UTC)


def mem(name: str, start: int = 1, **fields: Any) -> Memory:
    """A memory named ``name`` (its id), valid from day ``start``."""
    values: dict[str, Any] = {
        "id": name,
        "content": name,
        "kind": "fact",
        "scope": Scope(tenant="t"),
        "tags": (),
        "metadata": {},
        "importance": 0.5,
        "created_at": day(start),
        "updated_at": day(start),
        "expires_at": None,
        "last_accessed_at": None,
        "access_count": 0,
        "source": None,
        "content_hash": content_hash(name),
        "version": 1,
        "valid_from": day(start),
    }
    values.update(fields)
    return Memory(**values)


def superseded(by: str, at: int, until: int | None = None) -> list[Memory]:
    """Versions of A: as written (with its own end ``until``, if any), then superseded."""
    own = day(until) if until is not None else None
    first = mem("A", valid_until=own)
    return [first, first.with_changes(version=2, valid_until=day(at), superseded_by=by)]


B, C, D = mem("B", 5), mem("C", 9), mem("D", 12)
GONE = {"deleted_at": day(20)}


@pytest.mark.parametrize(
    ("versions", "successors", "expected"),
    [
        # A superseded by B; B is forgotten and nothing replaced it: A is current again.
        (superseded("B", 5), [], Validity(None, None)),
        # A → B → C loses B: A is replaced by C, from C's start, not current beside it.
        (superseded("B", 5), [C], Validity(day(9), "C")),
        # A → B → C → D loses B, C forgotten before (a chain left by older memex):
        # the first live successor, D, replaces A.
        (superseded("B", 5), [mem("C", 9, **GONE), D], Validity(day(12), "D")),
        # Every successor forgotten: A is current again.
        (superseded("B", 5), [mem("C", 9, **GONE)], Validity(None, None)),
        # An expired successor is not a forgotten one, whether or not ``expire`` recorded
        # the expiry (``deleted_at`` at or after ``expires_at``): C still replaces A ...
        (superseded("B", 5), [mem("C", 9, expires_at=day(10))], Validity(day(9), "C")),
        (
            superseded("B", 5),
            [mem("C", 9, expires_at=day(10), deleted_at=day(11))],
            Validity(day(9), "C"),
        ),
        # ... but one forgotten before its expiry is gone.
        (
            superseded("B", 5),
            [mem("C", 9, expires_at=day(30), deleted_at=day(20))],
            Validity(None, None),
        ),
        # A had an end of its own (day 15) before B cut it short: it gets it back.
        (superseded("B", 5, until=15), [], Validity(day(15), None)),
        # ... and keeps C's start when C comes first ...
        (superseded("B", 5, until=15), [C], Validity(day(9), "C")),
        # ... but its own end when that comes first (or at the same time): C took over
        # from B, not from a fact that had ended already.
        (superseded("B", 5, until=7), [C], Validity(day(7), None)),
        (superseded("B", 5, until=9), [C], Validity(day(9), None)),
        # A successor in another project (or any scope) counts the same: a supersede
        # links memories of one tenant, whatever their scope.
        (
            superseded("B", 5),
            [mem("C", 9, scope=Scope(tenant="t", project="elsewhere"))],
            Validity(day(9), "C"),
        ),
        # A memory imported already superseded (no version of its own): no end.
        ([mem("A", valid_until=day(5), superseded_by="B")], [], Validity(None, None)),
        # Relinked before (A → B → C lost B, now C goes too): the end A had before its
        # first supersede is what counts, not the relinked one.
        (
            [
                *superseded("B", 5, until=15),
                mem("A", version=3, valid_until=day(9), superseded_by="C"),
            ],
            [],
            Validity(day(15), None),
        ),
        # Superseded, undone, then superseded again: the undone version is its own.
        (
            [
                *superseded("B", 5),
                mem("A", version=3),
                mem("A", version=4, valid_until=day(9), superseded_by="C"),
            ],
            [],
            Validity(None, None),
        ),
        # Content corrected while superseded: the corrections keep the mark, the end
        # of its own is still that of the version before the supersede.
        (
            [
                *superseded("B", 5, until=15),
                mem("A", version=3, content="A2", valid_until=day(5), superseded_by="B"),
            ],
            [D],
            Validity(day(12), "D"),
        ),
    ],
)
def test_restored_validity(
    versions: list[Memory], successors: list[Memory], expected: Validity
) -> None:
    assert restored_validity(versions, successors) == expected


def test_successors_after_the_first_live_one_do_not_matter() -> None:
    versions = superseded("B", 5)
    assert restored_validity(versions, [C, D]) == restored_validity(versions, [C])
    assert restored_validity(versions, [B, C]) == Validity(day(5), "B")

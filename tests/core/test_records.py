"""JSON Lines records with versions and history: building, id reassignment, writing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memex.core.ids import new_id
from memex.core.models import Memory, Scope
from memex.core.records import Record, build_record, parse_lines, reassign_ids, to_line
from memex.errors import ScopeError, ValidationError

NOW = datetime(2025, 6, 1, tzinfo=UTC)
TENANT = Scope(tenant="t")
ID = "0190a000-0000-7000-8000-000000000001"
OTHER = "0190a000-0000-7000-8000-000000000002"


def build(record: dict[str, Any], within: Scope = TENANT) -> Record:
    return build_record(record, within=within, now=NOW, max_content_bytes=1000)


def full(**extra: Any) -> dict[str, Any]:
    return {
        "id": ID,
        "content": "v3 text",
        "created_at": "2025-01-01T00:00:00+00:00",
        "version": 3,
        "updated_at": "2025-03-01T00:00:00+00:00",
        "history": [
            {"version": 2, "content": "v2 text", "updated_at": "2025-02-01T00:00:00+00:00"},
            {"version": 1, "content": "v1 text", "updated_at": "2025-01-01T00:00:00+00:00"},
        ],
        **extra,
    }


def test_versions_times_and_statistics_are_kept() -> None:
    record = build(
        full(access_count=7, last_accessed_at="2025-04-01T00:00:00Z", deleted_at="2025-05-01")
    )
    m = record.memory
    assert (m.id, m.version, m.access_count) == (ID, 3, 7)
    assert m.updated_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert m.last_accessed_at == datetime(2025, 4, 1, tzinfo=UTC)
    assert m.deleted_at == datetime(2025, 5, 1, tzinfo=UTC)
    assert [(p.version, p.content, p.id) for p in record.past] == [
        (1, "v1 text", ID),
        (2, "v2 text", ID),
    ]
    assert all(p.scope == m.scope and p.created_at == m.created_at for p in record.past)
    assert record.past[1].updated_at == datetime(2025, 2, 1, tzinfo=UTC)


def test_an_old_record_is_a_first_version_updated_now() -> None:
    record = build({"content": "plain", "created_at": "2024-01-01"})
    assert (record.memory.version, record.memory.updated_at, record.past) == (1, NOW, ())
    assert record.memory.access_count == 0 and record.memory.last_accessed_at is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 0}, "version must be"),
        ({"version": True}, "version must be"),
        ({"version": "3"}, "version must be"),
        ({"access_count": -1}, "access_count"),
        ({"updated_at": "yesterday"}, "updated_at is not an ISO 8601"),
        ({"last_accessed_at": "soon"}, "last_accessed_at"),
        ({"history": {"version": 1}}, "history must be a list"),
        ({"history": ["v1"]}, "history entry 1 must be an object"),
        ({"history": [{"content": "x"}]}, "history entry 1: missing field 'version'"),
        ({"history": [{"content": "x", "version": 3}]}, "not below the memory's version 3"),
        ({"history": [{"content": "x", "version": 4}]}, "not below"),
        (
            {"history": [{"content": "a", "version": 1}, {"content": "b", "version": 1}]},
            "version 1 twice",
        ),
        ({"history": [{"content": "x", "version": 1, "id": OTHER}]}, "another memory"),
        ({"history": [{"content": "x", "version": 1, "ttl": 5}]}, "unknown field 'ttl'"),
        ({"history": [{"content": " ", "version": 1}]}, "history entry 1: content"),
        (
            {"history": [{"content": "x", "version": 1, "valid_until": "2020-01-01"}]},
            "history entry 1: valid_until",
        ),
        (
            {"history": [{"content": "x", "version": 1, "scope": {"project": "p"}}]},
            "scope differs",
        ),
    ],
)
def test_bad_versions_are_refused(change: dict[str, Any], message: str) -> None:
    record = {"id": ID, "content": "current", "version": 3, **change}
    with pytest.raises(ValidationError, match=message):
        build(record)


def test_a_past_version_may_repeat_its_memory_id_and_scope() -> None:
    entry = {
        "version": 1,
        "content": "x",
        "id": ID.upper(),
        "scope": {"tenant": "a", "project": "p"},
    }
    record = build({"id": ID, "content": "y", "version": 2, "scope": {"project": "p"},
                    "history": [entry]})  # fmt: skip
    assert record.past[0].scope == Scope(tenant="t", project="p")


def test_a_past_version_outside_the_handle_is_refused() -> None:
    with pytest.raises(ScopeError):
        build({"content": "y", "scope": {"project": "other"}}, within=Scope("t", project="p"))


def memory_with(id_: str, superseded_by: str | None = None, version: int = 1) -> Memory:
    record = build({"id": id_, "content": f"memory {id_[-1]}", "superseded_by": superseded_by,
                    "version": version})  # fmt: skip
    return record.memory


OUTSIDE = "0190a000-0000-7000-8000-00000000000f"


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        ({ID: None}, {"n1": None}),
        ({ID: OTHER, OTHER: None}, {"n1": "n2", "n2": None}),  # a link inside the file follows
        ({ID: OUTSIDE}, {"n1": OUTSIDE}),  # a link out of the file stays as it was
        ({ID: ID}, {"n1": "n1"}),
    ],
)
def test_reassigned_ids_carry_links(links: dict[str, str | None], expected: dict[str, Any]) -> None:
    records = [
        Record(
            memory_with(mid, link, version=2),
            (memory_with(mid, link).with_changes(version=1),),
        )
        for mid, link in links.items()
    ]
    names = iter(["n1", "n2"])
    moved = reassign_ids(records, lambda m: next(names))
    got = {r.memory.id: r.memory.superseded_by for r in moved}
    assert got == expected
    for record in moved:  # past versions follow their memory
        assert [(p.id, p.superseded_by) for p in record.past] == [
            (record.memory.id, record.memory.superseded_by)
        ]


def test_reassigning_refuses_an_id_twice() -> None:
    records = [Record(memory_with(ID)), Record(memory_with(ID))]
    with pytest.raises(ValidationError, match="appears twice"):
        reassign_ids(records, lambda m: new_id())


def test_a_line_with_history_leaves_out_what_past_versions_share() -> None:
    record = build(full(access_count=2))
    line = json.loads(to_line(record.memory, record.past))
    assert line["access_count"] == 2 and line["version"] == 3
    assert [set(p) for p in line["history"]] == [set(line) - {
        "history", "id", "scope", "access_count", "last_accessed_at"}] * 2  # fmt: skip
    assert "history" not in json.loads(to_line(record.memory))


@given(
    st.lists(st.integers(min_value=1, max_value=50), unique=True, max_size=6),
    st.integers(min_value=0, max_value=10**6),
)
def test_lines_round_trip(past_versions: list[int], count: int) -> None:
    current = max(past_versions, default=0) + 1
    history = [{"version": v, "content": f"text {v}"} for v in past_versions]
    first = build({"id": ID, "content": "now", "version": current, "access_count": count,
                   "history": history})  # fmt: skip
    [(_, parsed)] = parse_lines([to_line(first.memory, first.past)])
    assert build(parsed) == first

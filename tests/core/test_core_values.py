"""Ids, query terms, scopes, validation and JSON Lines records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memex.core.ids import is_valid_id, new_id
from memex.core.models import (
    Scope,
    from_micros,
    parse_time,
    to_micros,
    validate_content,
    validate_metadata,
    validate_tags,
)
from memex.core.query import Filters
from memex.core.records import parse_lines
from memex.core.text import query_terms
from memex.errors import ImportFormatError, ScopeError, ValidationError


def test_ids_are_uuid7_and_monotonic() -> None:
    ids = [new_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids[:10])
    assert is_valid_id(ids[0]) and not is_valid_id("nope")


def test_id_prefix_orders_by_time() -> None:
    early, late = new_id(1_000_000), new_id(2_000_000)
    assert early < late


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        (
            "When did Caroline go to the LGBTQ support group?",
            ["caroline", "go", "lgbtq", "support", "group"],
        ),
        ("what is it", ["what", "is", "it"]),  # only stop words: keep them
        ("Melanie's pottery, pottery!", ["melanie", "pottery"]),
        ("", []),
    ],
)
def test_query_terms(text: str, terms: list[str]) -> None:
    assert query_terms(text) == terms


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1)))
def test_micros_round_trip(value: datetime) -> None:
    aware = value.replace(tzinfo=UTC)
    assert from_micros(to_micros(aware)) == aware


def test_parse_time_accepts_iso_z_and_rejects_garbage() -> None:
    assert parse_time("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValidationError):
        parse_time("yesterday-ish")
    with pytest.raises(ValidationError):
        parse_time(True)


def test_scope_narrowing() -> None:
    base = Scope(tenant="t", project="p")
    assert base.narrow(Scope(user="u")) == Scope(tenant="t", project="p", user="u")
    with pytest.raises(ScopeError):
        base.narrow(Scope(project="other"))
    assert base.contains(Scope(tenant="t", project="p", user="u"))
    assert not base.contains(Scope(tenant="t", project="q"))
    with pytest.raises(ValidationError):
        Scope.of({"team": "x"})
    with pytest.raises(ValidationError):
        Scope(project="has space")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: validate_content("", 10), "empty"),
        (lambda: validate_content("x" * 11, 10), "over the limit"),
        (lambda: validate_content(5, 10), "must be a string"),  # type: ignore[arg-type]
        (lambda: validate_tags("a"), "list"),  # type: ignore[arg-type]
        (lambda: validate_tags(["a,b"]), "commas"),
        (lambda: validate_metadata({"bad key": 1}), "metadata key"),
        (lambda: validate_metadata({"k": float("nan")}), "JSON"),
        (lambda: validate_metadata([1]), "JSON object"),  # type: ignore[arg-type]
    ],
)
def test_validation_messages(call: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        call()  # type: ignore[operator]


def test_parse_lines_reports_line_numbers() -> None:
    lines = ['{"content": "a"}', "", '{"content": "b"}', "{oops"]
    records = parse_lines(lines)
    assert next(records) == (1, {"content": "a"})
    assert next(records) == (3, {"content": "b"})
    with pytest.raises(ImportFormatError, match="line 4"):
        next(records)
    with pytest.raises(ImportFormatError, match="unknown field 'colour'"):
        list(parse_lines(['{"content": "a", "colour": 1}']))
    with pytest.raises(ImportFormatError, match="missing field 'content'"):
        list(parse_lines(['{"kind": "fact"}']))


def test_metadata_comes_back_as_its_json_round_trip() -> None:
    import json

    cases = [
        {"n": 1, "s": "x", "f": 0.5, "b": True, "none": None},
        {"nested": {"a": (1, 2)}, "list": [1, {"b": None}]},
        {"big": 2**63 - 1, "small": -(2**63), "neg": -0.0},
    ]
    for metadata in cases:
        got = validate_metadata(metadata)
        assert got == json.loads(json.dumps(metadata)) and got is not metadata
    assert validate_metadata({"t": (1, 2)}) == {"t": [1, 2]}
    for bad in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(ValidationError, match="JSON"):
            validate_metadata({"k": bad})


def test_an_index_overfetches_only_for_filters_it_cannot_apply() -> None:
    indexed = ("tenant", "project")
    scoped = Filters.build(scope=Scope(tenant="t", project="p"))
    assert scoped.pool(100, indexed) == 120
    assert Filters.build(scope=Scope(tenant="t")).pool(10, indexed) == 19
    narrow = [
        Filters.build(scope=Scope(tenant="t", user="u")),
        Filters.build(scope=Scope(tenant="t"), kinds=["fact"]),
        Filters.build(scope=Scope(tenant="t"), tags=["x"]),
        Filters.build(scope=Scope(tenant="t"), metadata={"a": 1}),
        Filters.build(scope=Scope(tenant="t"), since="2024-01-01T00:00:00Z"),
        Filters.build(scope=Scope(tenant="t"), as_of="2024-01-01T00:00:00Z"),
    ]
    assert [f.pool(100, indexed) for f in narrow] == [400] * len(narrow)
    assert narrow[0].pool(100, ("tenant", "project", "user")) == 120


def test_an_id_dated_ahead_of_the_clock_does_not_move_later_ids() -> None:
    import time

    def millis(memory_id: str) -> int:
        return int(memory_id.replace("-", "")[:12], 16)

    far = 253_402_300_799_000  # 9999-12-31
    assert millis(new_id(far)) == far
    now = int(time.time() * 1000)
    later = [new_id() for _ in range(3)]
    assert all(now - 1000 <= millis(i) <= now + 60_000 for i in later)
    assert later == sorted(later) and len(set(later)) == 3

"""What the inspector shows of a memory's history: field changes and content diffs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memex.core.build import build_memory
from memex.core.changes import FieldChange, content_diff, field_changes, shown, version_changes
from memex.core.models import Memory, Scope

T = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def memory(**changes: object) -> Memory:
    base, *_ = build_memory(
        {"content": "one\ntwo\nthree"}, within=Scope(tenant="t"), now=T, max_content_bytes=10_000
    )
    return base.with_changes(**changes)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (T, "2024-05-01T12:00:00+00:00"),
        (("a", "b"), "a, b"),
        ((), "-"),
        ({"k": [1, "é"]}, '{"k": [1, "é"]}'),
        (Scope(tenant="t", project="p"), '{"project": "p", "tenant": "t"}'),
        (0.5, "0.5"),
        ("[bold]x[/bold]", "[bold]x[/bold]"),
    ],
)
def test_shown(value: object, text: str) -> None:
    assert shown(value) == text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"content": "other", "version": 2, "updated_at": T.replace(hour=13)}, []),
        ({"kind": "fact"}, [FieldChange("kind", "note", "fact")]),
        ({"tags": ("x",)}, [FieldChange("tags", "-", "x")]),
        (
            {"importance": 0.9, "deleted_at": T},
            [
                FieldChange("importance", "0.5", "0.9"),
                FieldChange("deleted_at", "-", "2024-05-01T12:00:00+00:00"),
            ],
        ),
        ({"metadata": {"a": 1}}, [FieldChange("metadata", "{}", '{"a": 1}')]),
    ],
)
def test_field_changes(changes: dict[str, object], expected: list[FieldChange]) -> None:
    assert field_changes(memory(), memory(**changes)) == expected


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("same", "same", []),
        ("a", "b", ["@@ -1 +1 @@", "-a", "+b"]),
        ("one\ntwo\nthree", "one\n2\nthree", ["@@ -1,3 +1,3 @@", " one", "-two", "+2", " three"]),
        ("x", "x\n-- y", ["@@ -1 +1,2 @@", " x", "+-- y"]),
        ("--- a", "+++ b", ["@@ -1 +1 @@", "---- a", "++++ b"]),
    ],
)
def test_content_diff(before: str, after: str, expected: list[str]) -> None:
    assert content_diff(before, after) == expected


def test_version_changes_compare_each_version_with_the_one_before() -> None:
    v1 = memory()
    v2 = memory(version=2, kind="fact")
    v3 = memory(version=3, kind="fact", content="one\ntwo")
    [first, second, third] = version_changes([v1, v2, v3])
    assert first == ([], [])
    assert second == ([FieldChange("kind", "note", "fact")], [])
    assert third == ([], ["@@ -1,3 +1,2 @@", " one", " two", "-three"])

"""``metadata_matches``: a metadata filter decided in Python (an encrypted tenant's
metadata on PostgreSQL) as the stores decide it in SQL."""

from __future__ import annotations

from typing import Any

import pytest

from memex.core.query import metadata_matches


@pytest.mark.parametrize(
    ("metadata", "wanted", "expected"),
    [
        ({"a": "x"}, {}, True),
        ({"a": "x"}, {"a": "x"}, True),
        ({"a": "x"}, {"a": "y"}, False),
        ({}, {"a": "x"}, False),
        ({"a": "x", "b": 2}, {"a": "x", "b": 2}, True),
        ({"a": "x", "b": 2}, {"a": "x", "b": 3}, False),
        ({"a": None}, {"a": None}, True),  # JSON null only
        ({}, {"a": None}, False),
        ({"a": 0}, {"a": None}, False),
        ({"a": None}, {"a": 0}, False),
        ({"a": True}, {"a": 1}, True),  # true and false are 1 and 0
        ({"a": 1}, {"a": True}, True),
        ({"a": False}, {"a": 0}, True),
        ({"a": False}, {"a": True}, False),
        ({"a": 2}, {"a": True}, False),
        ({"a": 2.0}, {"a": 2}, True),  # numbers by value
        ({"a": 2.5}, {"a": 2}, False),
        ({"a": "1"}, {"a": 1}, False),  # text is not a number
        ({"a": 1}, {"a": "1"}, False),
        ({"a": [1]}, {"a": 1}, False),
        ({"a": {"b": 1}}, {"a": "x"}, False),
    ],
)
def test_metadata_matches(metadata: dict[str, Any], wanted: dict[str, Any], expected: bool) -> None:
    assert metadata_matches(metadata, wanted) is expected

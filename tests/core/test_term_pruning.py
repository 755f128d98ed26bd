"""The one rule every lexical path prunes query terms by, as a table of cases: which
terms a full-text query walks in a store of a given size."""

from __future__ import annotations

import pytest

from memex.core.text import common_threshold, prune_common


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, None),
        (19_999, None),  # a store that small keeps every term
        (20_000, 2_000),  # at least 2,000 memories ...
        (100_000, 2_000),
        (100_050, 2_001),  # ... else 2% of the store
        (1_000_000, 20_000),
    ],
)
def test_common_threshold(size: int, expected: int | None) -> None:
    assert common_threshold(size) == expected


@pytest.mark.parametrize(
    ("size", "frequencies", "expected"),
    [
        # A small store keeps every term, however common.
        (19_999, {"the": 19_999, "oscar": 1}, ["the", "oscar"]),
        # A query of one term keeps it.
        (50_000, {"caroline": 50_000}, ["caroline"]),
        (50_000, {}, []),
        # Common from the threshold on (2,000 memories at 20,000).
        (20_000, {"caroline": 2_000, "oscar": 1_999}, ["oscar"]),
        (20_000, {"caroline": 1_999, "oscar": 1_999}, ["caroline", "oscar"]),
        (1_000_000, {"said": 19_999, "pig": 20_000, "oscar": 3}, ["said", "oscar"]),
        # Every term common: the rarest two, in query order.
        (1_000_000, {"a": 90_000, "b": 30_000, "c": 20_000}, ["b", "c"]),
        (1_000_000, {"a": 20_000, "b": 90_000, "c": 30_000}, ["a", "c"]),
        (1_000_000, {"a": 90_000, "b": 30_000}, ["a", "b"]),
        # Counts that stop at the threshold are equal: the first ones are kept.
        (20_000, {"a": 2_000, "b": 2_000, "c": 2_000}, ["a", "b"]),
    ],
)
def test_prune_common(size: int, frequencies: dict[str, int], expected: list[str]) -> None:
    asked: list[tuple[str, int]] = []

    def frequency(term: str, threshold: int) -> int:
        asked.append((term, threshold))
        return frequencies[term]

    assert prune_common(list(frequencies), size, frequency) == expected
    threshold = common_threshold(size)
    if threshold is None or len(frequencies) < 2:
        assert asked == []  # nothing counted when nothing can be pruned
    else:
        assert asked == [(term, threshold) for term in frequencies]

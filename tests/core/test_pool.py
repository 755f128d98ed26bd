"""How many hits a backend asks an index for, as tables of cases: the first pool, and the
next one when too few hits passed the filters."""

from __future__ import annotations

import pytest

from memex.core.pool import first_pool, next_pool


@pytest.mark.parametrize(
    ("limit", "narrow", "expected"),
    [
        (100, True, 400),  # kinds, tags, metadata, times, a scope field not indexed
        (100, False, 120),  # only forgotten, expired or superseded memories can go
        (10, False, 19),
        (1, False, 9),
        (1, True, 4),
    ],
)
def test_first_pool(limit: int, narrow: bool, expected: int) -> None:
    assert first_pool(limit, narrow=narrow) == expected


@pytest.mark.parametrize(
    ("limit", "found", "kept", "total", "expected"),
    [
        # 9 of 19 passed: 10 / (9/19) * 1.5 = 31.7, and one more.
        (10, 19, 9, 1_000, 32),
        # A quarter passed: four times the limit, half again, and one more.
        (100, 400, 100, 100_000, 601),
        # None passed: counted as one, so the pool grows by the whole ratio.
        (10, 19, 0, 1_000, 286),
        (10, 0, 0, 1_000, 16),  # the index returned nothing
        # Never more than the index holds.
        (10, 19, 9, 25, 25),
        # Given up beyond 64 times the limit when that is more than an eighth of the
        # index (640 here) ...
        (10, 100, 0, 5_000, None),
        (10, 100, 4, 5_000, 376),
        # ... and beyond an eighth of the index when that is more (125,000 here).
        (10, 1_000, 1, 1_000_000, 15_001),
        (10, 10_000, 1, 1_000_000, None),
    ],
)
def test_next_pool(limit: int, found: int, kept: int, total: int, expected: int | None) -> None:
    assert next_pool(limit, found, kept, total) == expected

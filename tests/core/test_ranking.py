"""Fusion and boosts: pure functions, checked against tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memex.core.models import to_micros
from memex.core.ranking import (
    Candidate,
    Facts,
    Fused,
    FusionWeights,
    _fused,
    boost,
    fuse,
    rank,
    spread_to_neighbours,
)


def c(*pairs: tuple[int, float]) -> list[Candidate]:
    return [Candidate(k, s) for k, s in pairs]


@pytest.mark.parametrize(
    ("lexical", "vector", "weight", "expected"),
    [
        # both legs agree
        (c((1, 9.0), (2, 3.0)), c((1, 0.9), (2, 0.1)), 0.4, [1, 2]),
        # lexical only
        (c((3, 2.0), (4, 1.0)), [], 0.4, [3, 4]),
        # vector only
        ([], c((5, 0.3), (6, 0.8)), 0.4, [6, 5]),
        # a document found by both beats one found strongly by one leg alone
        (c((1, 10.0), (2, 9.0)), c((2, 0.9), (3, 0.8), (1, 0.1)), 0.4, [2, 1, 3]),
        # weight 1 ignores lexical, weight 0 ignores vector
        (c((1, 10.0)), c((2, 0.9), (1, 0.1)), 1.0, [2, 1]),
        (c((1, 10.0)), c((2, 0.9), (1, 0.1)), 0.0, [1, 2]),
    ],
)
def test_fuse_orders(
    lexical: list[Candidate], vector: list[Candidate], weight: float, expected: list[int]
) -> None:
    fused = fuse(lexical, vector, FusionWeights(vector_weight=weight))
    assert [f.key for f in fused] == expected


def test_fuse_records_ranks_and_components() -> None:
    fused = fuse(c((7, 4.0), (8, 2.0)), c((8, 0.5), (9, 0.2)), FusionWeights(vector_weight=0.5))
    by_key = {f.key: f for f in fused}
    assert by_key[7].lexical_rank == 1 and by_key[7].vector_rank is None
    assert by_key[8].lexical_rank == 2 and by_key[8].vector_rank == 1
    assert by_key[8].lexical == pytest.approx(0.5)
    assert by_key[8].vector == pytest.approx(1.0)
    assert by_key[8].score == pytest.approx(0.75)


def test_fuse_ties_break_on_key_deterministically() -> None:
    fused = fuse(c((5, 1.0), (3, 1.0), (4, 1.0)), [], FusionWeights())
    assert [f.key for f in fused] == [3, 4, 5]


def test_boosts() -> None:
    now = datetime(2026, 1, 31, tzinfo=UTC)
    weights = FusionWeights(importance_weight=0.2, recency_weight=0.4, recency_half_life_days=10)
    score, parts = boost(
        1.0,
        importance=0.5,
        created_us=to_micros(now - timedelta(days=10)),
        now_us=to_micros(now),
        weights=weights,
    )
    assert parts["importance"] == pytest.approx(0.1)
    assert parts["recency"] == pytest.approx(0.2)
    assert score == pytest.approx(1.3)
    at = to_micros(now)
    plain, none = boost(1.0, importance=1.0, created_us=at, now_us=at, weights=FusionWeights())
    assert plain == 1.0 and none == {}


def f(key: int, score: float) -> Fused:
    return Fused(key, score, None, None, score, 0.0)


@pytest.mark.parametrize(
    ("fused", "neighbours", "share", "expected"),
    [
        # no neighbours or no share: order unchanged
        ([f(1, 1.0), f(2, 0.5)], {}, 0.5, [(1, 1.0), (2, 0.5)]),
        ([f(1, 1.0), f(2, 0.5)], {1: [2]}, 0.0, [(1, 1.0), (2, 0.5)]),
        # a candidate next to the top hit overtakes a stronger isolated one
        ([f(1, 1.0), f(3, 0.6), f(2, 0.55)], {1: [2]}, 0.5, [(2, 1.05), (1, 1.0), (3, 0.6)]),
        # a neighbour that was no candidate enters with the share alone
        ([f(1, 1.0), f(2, 0.3)], {1: [9]}, 0.5, [(1, 1.0), (9, 0.5), (2, 0.3)]),
        # two hits offering to one memory: the larger offer counts, not the sum
        ([f(1, 1.0), f(2, 0.8)], {1: [5], 2: [5]}, 0.5, [(1, 1.0), (2, 0.8), (5, 0.5)]),
        # neighbours of each other both gain
        ([f(1, 1.0), f(2, 0.8)], {1: [2], 2: [1]}, 0.5, [(1, 1.4), (2, 1.3)]),
        # a hit never offers to itself
        ([f(1, 1.0)], {1: [1]}, 0.5, [(1, 1.0)]),
    ],
)
def test_spread_to_neighbours(
    fused: list[Fused],
    neighbours: dict[int, list[int]],
    share: float,
    expected: list[tuple[int, float]],
) -> None:
    out = spread_to_neighbours(fused, neighbours, share)
    assert [(x.key, round(x.score, 6)) for x in out] == expected
    for x in out:
        assert x.neighbours == pytest.approx(
            x.score - next((y.score for y in fused if y.key == x.key), 0.0)
        )


def test_fusion_builds_the_same_values_as_the_constructor() -> None:
    """fuse and spread_to_neighbours build Fused by tuple.__new__; the result is a Fused."""
    built = _fused(7, 0.5, 1, None, 0.25, 0.0, 0.125)
    assert built == Fused(7, 0.5, 1, None, 0.25, 0.0, 0.125)
    assert type(built) is Fused
    assert hash(built) == hash(Fused(7, 0.5, 1, None, 0.25, 0.0, 0.125))
    assert built.episode == 0.0 and built._asdict()["neighbours"] == 0.125
    with pytest.raises(AttributeError):
        built.score = 1.0  # type: ignore[misc]


def test_rank_boosts_drops_the_missing_and_sorts() -> None:
    now = datetime(2026, 1, 31, tzinfo=UTC)
    fused = fuse(c((1, 4.0), (2, 3.0), (3, 2.0), (4, 1.0)), [], FusionWeights())
    weights = FusionWeights(importance_weight=0.5)
    facts = {  # 2 did not pass the filters
        key: Facts("thread", to_micros(now), importance, "")
        for key, importance in ((1, 0.5), (3, 0.2), (4, 1.0))
    }
    ranked = rank(fused, facts, now=now, weights=weights)
    assert [(f.key, round(score, 6)) for score, f, _ in ranked] == [(1, 1.25), (4, 0.75), (3, 0.6)]
    assert ranked[1][2] == {"importance": 0.5}


def test_rank_without_boosts_keeps_the_fused_order() -> None:
    fused = fuse(c((5, 1.0), (3, 1.0), (4, 2.0)), [], FusionWeights())
    ranked = rank(fused, {}, now=datetime(2026, 1, 1, tzinfo=UTC), weights=FusionWeights())
    assert [(score, f, parts) for score, f, parts in ranked] == [(f.score, f, {}) for f in fused]

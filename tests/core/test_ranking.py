"""Fusion and boosts: pure functions, checked against tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memex.core.ranking import Candidate, FusionWeights, boost, fuse, rank


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
        1.0, importance=0.5, created_at=now - timedelta(days=10), now=now, weights=weights
    )
    assert parts["importance"] == pytest.approx(0.1)
    assert parts["recency"] == pytest.approx(0.2)
    assert score == pytest.approx(1.3)
    plain, none = boost(1.0, importance=1.0, created_at=now, now=now, weights=FusionWeights())
    assert plain == 1.0 and none == {}


def test_rank_boosts_drops_the_missing_and_sorts() -> None:
    now = datetime(2026, 1, 31, tzinfo=UTC)
    fused = fuse(c((1, 4.0), (2, 3.0), (3, 2.0), (4, 1.0)), [], FusionWeights())
    weights = FusionWeights(importance_weight=0.5)
    inputs = {1: (0.5, now), 3: (0.2, now), 4: (1.0, now)}  # 2 did not pass the filters
    ranked = rank(fused, inputs, now=now, weights=weights)
    assert [(f.key, round(score, 6)) for score, f, _ in ranked] == [(1, 1.25), (4, 0.75), (3, 0.6)]
    assert ranked[1][2] == {"importance": 0.5}


def test_rank_without_boosts_keeps_the_fused_order() -> None:
    fused = fuse(c((5, 1.0), (3, 1.0), (4, 2.0)), [], FusionWeights())
    ranked = rank(fused, None, now=datetime(2026, 1, 1, tzinfo=UTC), weights=FusionWeights())
    assert [(score, f, parts) for score, f, parts in ranked] == [(f.score, f, {}) for f in fused]

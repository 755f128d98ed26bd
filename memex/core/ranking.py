"""Fusion of lexical and vector candidates into one ranking. Pure functions only."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from memex.core.models import to_micros
from memex.core.validate import validate_finite, validate_fraction, validate_positive
from memex.errors import ValidationError


class Candidate(NamedTuple):
    """A memory a search leg found: the store's key for it and the leg's raw score
    (higher is better). Keys ascend in the order memories were written. A named tuple:
    recall makes a few hundred, and ``Candidate._make`` builds one in a fifth of a
    dataclass's time."""

    key: int
    score: float


class Facts(NamedTuple):
    """What ranking needs to know about a candidate besides its leg scores."""

    thread: Hashable
    """Which thread the candidate is in: memories sharing a whole scope and kind, in
    creation order (a conversation, a work session); equal values, same thread."""
    created_us: int
    """Creation time, in microseconds since the Unix epoch."""
    importance: float
    text: str


@dataclass(frozen=True, slots=True)
class FusionWeights:
    """How the legs are mixed.

    ``vector_weight`` is the share of the semantic leg (0: lexical only, 1: vector only).
    The boosts add ``importance_weight * importance`` and
    ``recency_weight * 0.5 ** (age / recency_half_life_days)``.
    """

    vector_weight: float = 0.4
    importance_weight: float = 0.0
    recency_weight: float = 0.0
    recency_half_life_days: float = 30.0


def validate_weights(weights: object) -> FusionWeights:
    """Check weights given to a recall: finite numbers, a vector share from 0 to 1 and a
    positive half-life."""
    if not isinstance(weights, FusionWeights):
        raise ValidationError("weights must be a FusionWeights")
    validate_fraction(weights.vector_weight, "vector_weight")
    validate_finite(weights.importance_weight, "importance_weight")
    validate_finite(weights.recency_weight, "recency_weight")
    validate_positive(weights.recency_half_life_days, "recency_half_life_days")
    return weights


class Fused(NamedTuple):
    """A fused result before hydration."""

    key: int
    score: float
    lexical_rank: int | None
    vector_rank: int | None
    lexical: float
    vector: float
    neighbours: float = 0.0
    """What the memory's neighbouring hits added to its score (see ``spread_to_neighbours``)."""
    episode: float = 0.0
    """What the memory's episode added to its score (see ``memex.core.episodes``)."""


# Recall builds a few hundred of these per query: a named tuple made by tuple.__new__
# costs a quarter of a frozen dataclass's __init__.
_new_tuple = tuple.__new__


def _fused(
    key: int,
    score: float,
    lexical_rank: int | None,
    vector_rank: int | None,
    lexical: float,
    vector: float,
    neighbours: float,
    episode: float = 0.0,
) -> Fused:
    """``Fused(key, score, ...)``, built without its __new__'s argument handling."""
    return _new_tuple(
        Fused, (key, score, lexical_rank, vector_rank, lexical, vector, neighbours, episode)
    )


def with_extra(f: Fused, *, neighbours: float = 0.0, episode: float = 0.0) -> Fused:
    """``f`` with ``neighbours`` and ``episode`` added to its score and to those parts."""
    return _fused(
        f.key,
        f.score + neighbours + episode,
        f.lexical_rank,
        f.vector_rank,
        f.lexical,
        f.vector,
        f.neighbours + neighbours,
        f.episode + episode,
    )


def fuse(
    lexical: Sequence[Candidate],
    vector: Sequence[Candidate],
    weights: FusionWeights,
) -> list[Fused]:
    """Score-normalised linear fusion of two ranked candidate lists, best first.

    Lexical (BM25) scores are divided by the best one, so a query whose words match
    nothing well does not look like a perfect match; vector similarities are min-max
    scaled over the candidates, which spreads the narrow band cosine scores fall in.
    Ties break on the key, so the order is deterministic.
    """
    w = min(max(weights.vector_weight, 0.0), 1.0)
    if not lexical:
        w = 1.0
    elif not vector:
        w = 0.0
    # key -> [lexical share, vector share, lexical rank, vector rank], one pass per leg.
    parts: dict[int, list[Any]] = {}
    top = max((c.score for c in lexical), default=0.0)
    for rank, (key, score) in enumerate(lexical, 1):
        parts[key] = [max(score, 0.0) / top if top > 0 else 0.0, 0.0, rank, None]
    if vector:
        lo = min(c.score for c in vector)
        span = max(c.score for c in vector) - lo
        flat = span <= 1e-12
        for rank, (key, score) in enumerate(vector, 1):
            vx = 1.0 if flat else (score - lo) / span
            found = parts.get(key)
            if found is None:
                parts[key] = [0.0, vx, None, rank]
            else:
                found[1], found[3] = vx, rank
    order = [
        (-((1.0 - w) * lx + w * vx), key, lx, vx, lr, vr) for key, (lx, vx, lr, vr) in parts.items()
    ]
    order.sort()  # keys are unique: tuples compare on score, then key, nothing further
    return [_fused(key, -negated, lr, vr, lx, vx, 0.0) for negated, key, lx, vx, lr, vr in order]


def spread_to_neighbours(
    fused: Sequence[Fused], neighbours: Mapping[int, Sequence[int]], share: float
) -> list[Fused]:
    """Give each hit's neighbours ``share`` of its score; return the list re-ranked.

    ``neighbours`` maps a hit's key to the keys of the memories next to it in its thread
    (the turns just before and after it in the same conversation). Memories are written
    in sequence, and what a query asks for is often one turn away from what it matches:
    the answer after a matching question, the details after a matching topic. A memory
    takes the largest share any neighbouring hit offers, on top of its own score;
    neighbours that were not candidates enter with that share alone. Ties break on the
    key, as in ``fuse``.
    """
    if share <= 0 or not neighbours:
        return list(fused)
    score = {f.key: f.score for f in fused}
    gift: dict[int, float] = {}
    for key, around in neighbours.items():
        offer = share * score.get(key, 0.0)
        if offer <= 0:
            continue
        for other in around:
            if other != key and offer > gift.get(other, 0.0):
                gift[other] = offer
    out: list[Fused] = []
    for f in fused:
        extra = gift.get(f.key)
        out.append(f if extra is None else with_extra(f, neighbours=extra))
    known = score.keys()
    out.extend(
        _fused(key, extra, None, None, 0.0, 0.0, extra)
        for key, extra in gift.items()
        if key not in known
    )
    out.sort(key=lambda f: (-f.score, f.key))
    return out


def boost(
    base: float,
    *,
    importance: float,
    created_us: int,
    now_us: int,
    weights: FusionWeights,
) -> tuple[float, dict[str, float]]:
    """Add the importance and recency boosts to a fused score; return it and its parts.

    Times are microseconds since the Unix epoch.
    """
    parts: dict[str, float] = {}
    score = base
    if weights.importance_weight:
        parts["importance"] = weights.importance_weight * importance
        score += parts["importance"]
    if weights.recency_weight:
        age_days = max(now_us - created_us, 0) / 1_000_000 / 86_400  # as timedelta does
        half_life = max(weights.recency_half_life_days, 1e-6)
        parts["recency"] = weights.recency_weight * math.pow(0.5, age_days / half_life)
        score += parts["recency"]
    return score, parts


Ranked = tuple[float, Fused, dict[str, float]]
"""A shortlisted candidate's final score, the candidate and its boost parts."""


def rank(
    shortlist: Sequence[Fused],
    facts: Mapping[int, Facts],
    *,
    now: datetime,
    weights: FusionWeights,
) -> list[Ranked]:
    """Add the boosts to shortlisted candidates and sort them, best first (ties: key).

    Without boosts every candidate keeps its fused score and place; with them,
    candidates missing from ``facts`` (gone, or filtered out) are dropped.
    """
    if not (weights.importance_weight or weights.recency_weight):
        return [(f.score, f, {}) for f in shortlist]
    now_us = to_micros(now)
    ranked: list[Ranked] = []
    for f in shortlist:
        found = facts.get(f.key)
        if found is not None:
            score, parts = boost(
                f.score,
                importance=found.importance,
                created_us=found.created_us,
                now_us=now_us,
                weights=weights,
            )
            ranked.append((score, f, parts))
    ranked.sort(key=lambda r: (-r[0], r[1].key))
    return ranked

"""The recall pipeline: search both legs, fuse, spread to neighbours, lift by episode,
boost, build the top k.

``Memex.recall`` validates its arguments and builds the filters; this module runs the
search. The decisions (fusion, neighbour spreading, boosts, episode lifts) are pure
functions in ``memex.core.ranking`` and ``memex.core.episodes``; this is where they meet
the store and the embedder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from memex.core.episodes import EpisodeWeights, lift_episodes
from memex.core.models import Hit, utcnow
from memex.core.query import Filters
from memex.core.ranking import (
    Candidate,
    Fused,
    FusionWeights,
    fuse,
    rank,
    spread_to_neighbours,
)
from memex.core.text import query_terms
from memex.embedders.base import vector_weight_for
from memex.engine import Engine
from memex.errors import ValidationError
from memex.storage.base import CandidateQuery

if TYPE_CHECKING:
    import numpy as np

NEIGHBOUR_HITS = 20
"""How many of the best fused hits offer a share of their score to their neighbours.

Enough to reach past the first page of a k=10 recall; each costs two short index scans
(about 70 µs), and the result does not depend on ``k``."""


EPISODE_CANDIDATES = 50
"""How many of the best candidates (after neighbour spreading) are read as episodes.

Lifts only raise scores, so the candidates below keep their order under the lifted
ones. On LoCoMo, 50 gives recall@10 0.723 against 0.727 for 100 or for every candidate
(about 180); at a million memories reading 50 costs about 1.3 ms a recall, 100 about 2.2."""


def default_weights(engine: Engine) -> FusionWeights:
    """Fusion weights from the settings (the embedder's own vector share by default)."""
    settings = engine.settings
    return FusionWeights(
        vector_weight=settings.vector_weight
        if settings.vector_weight is not None
        else vector_weight_for(engine.embedding.embedder),
        importance_weight=settings.importance_weight,
        recency_weight=settings.recency_weight,
        recency_half_life_days=settings.recency_half_life_days,
    )


def episode_weights(engine: Engine) -> EpisodeWeights | None:
    """Episode weights from the settings; None when episodes are turned off."""
    s = engine.settings
    if s.episode_minutes <= 0 or (s.episode_best_share <= 0 and s.episode_coverage_share <= 0):
        return None
    return EpisodeWeights(
        window_us=round(s.episode_minutes * 60_000_000),
        best=s.episode_best_share,
        coverage=s.episode_coverage_share,
    )


def query_vector_of(value: object) -> np.ndarray:
    """A query vector given to recall, as float32; anything but finite numbers is bad input."""
    try:
        import numpy as np

        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf below
            vector = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError("query_vector must be an array of numbers") from exc
    if not np.all(np.isfinite(vector)):
        raise ValidationError("query_vector must hold finite numbers only")
    return vector


class _Ranking:
    """The ranking steps a recall's single candidates call needs inside it, each done
    once: fusion (to pick the neighbour seeds) and neighbour spreading (to pick the
    candidates whose facts episodes read)."""

    def __init__(self, weights: FusionWeights, share: float, episodes: bool, k: int) -> None:
        self._weights = weights
        self._share = share
        # The page comes from the best 2k (lifts reorder only the best EPISODE_CANDIDATES).
        self._wanted = max(EPISODE_CANDIDATES if episodes else 0, 2 * k)
        self._fused: tuple[Sequence[Candidate], Sequence[Candidate], list[Fused]] | None = None
        self._spread: tuple[list[Fused], Mapping[int, Sequence[int]], list[Fused]] | None = None

    def seeds(self, lexical: Sequence[Candidate], vector: Sequence[Candidate]) -> list[int]:
        """The keys whose neighbours to read: the best ``NEIGHBOUR_HITS`` fused."""
        return [f.key for f in self.fused(lexical, vector)[:NEIGHBOUR_HITS]]

    def wanted(
        self,
        lexical: Sequence[Candidate],
        vector: Sequence[Candidate],
        neighbours: Mapping[int, Sequence[int]],
    ) -> list[int]:
        """The candidates whose facts and ids ranking reads, when no boost asks for every
        one's: those the page may come from, and the ``EPISODE_CANDIDATES`` that
        episodes lift."""
        spread = self.spread(self.fused(lexical, vector), neighbours)
        return [f.key for f in spread[: self._wanted]]

    def fused(self, lexical: Sequence[Candidate], vector: Sequence[Candidate]) -> list[Fused]:
        """``fuse(lexical, vector)``, computed once for the same two lists."""
        done = self._fused
        if done is not None and done[0] is lexical and done[1] is vector:
            return done[2]
        fused = fuse(lexical, vector, self._weights)
        self._fused = (lexical, vector, fused)
        return fused

    def spread(self, fused: list[Fused], neighbours: Mapping[int, Sequence[int]]) -> list[Fused]:
        """``spread_to_neighbours(fused, neighbours)``, computed once for the same two."""
        done = self._spread
        if done is not None and done[0] is fused and done[1] is neighbours:
            return done[2]
        spread = spread_to_neighbours(fused, neighbours, self._share) if neighbours else fused
        self._spread = (fused, neighbours, spread)
        return spread


def search(
    engine: Engine,
    filters: Filters,
    query: str,
    k: int,
    *,
    mode: Literal["hybrid", "lexical", "vector"],
    query_vector: np.ndarray | None,
    weights: FusionWeights | None,
    tenant: str,
) -> list[Hit]:
    """The ``k`` best hits for ``query`` within ``filters``; records their access.

    Two store calls, whatever is turned on: the candidates with everything ranking needs
    about each, then the page of memories to return (and another page only for memories
    removed between the two).
    """
    settings = engine.settings
    w = weights or default_weights(engine)
    terms = query_terms(query)
    vector = None
    if mode != "lexical":
        qv = query_vector if query_vector is not None else engine.embedding.embed_query(query)
        import numpy as np

        vector = np.asarray(qv, dtype=np.float32)
    # Hybrid only: a single-leg mode promises that leg's matches and nothing else.
    spread = mode == "hybrid" and settings.neighbour_share > 0 and settings.neighbour_radius > 0
    episodes = episode_weights(engine) if mode == "hybrid" else None
    boosted = bool(w.importance_weight or w.recency_weight)  # boosts may lift any candidate
    ranking = _Ranking(w, settings.neighbour_share, episodes is not None, k)
    found = engine.store.candidates(
        filters,
        CandidateQuery(
            terms=tuple(terms) if mode != "vector" else (),
            vector=vector,
            limit=max(settings.candidates, k),
            radius=settings.neighbour_radius if spread else 0,
            seeds=ranking.seeds,
            wanted=None if boosted else ranking.wanted,  # boosts read every candidate's
        ),
    )
    fused = ranking.fused(found.lexical, found.vector)
    if spread and fused:
        fused = ranking.spread(fused, found.neighbours)
    if episodes is not None and fused:
        head, tail = fused[:EPISODE_CANDIDATES], fused[EPISODE_CANDIDATES:]
        fused = lift_episodes(head, found.facts, terms, episodes) + tail
    now = utcnow()
    ranked = rank(fused if boosted else fused[: k * 2], found.facts, now=now, weights=w)
    hits: list[Hit] = []
    while ranked and len(hits) < k:  # build the best k; skip any gone meanwhile
        batch, ranked = ranked[: k - len(hits)], ranked[k - len(hits) :]
        named = [(r, memory_id) for r in batch if (memory_id := found.ids.get(r[1].key))]
        page = engine.store.fetch(filters, [memory_id for _, memory_id in named])
        for (score, f, parts), memory_id in named:  # a key without an id is gone
            if (memory := page.get(memory_id)) is not None:
                explain = {"lexical": f.lexical, "vector": f.vector, **parts}
                if f.neighbours:
                    explain["neighbours"] = f.neighbours
                if f.episode:
                    explain["episode"] = f.episode
                hits.append(Hit(memory, score, f.lexical_rank, f.vector_rank, explain))
    engine.access.add(tenant, [hit.memory.id for hit in hits], now)
    return hits

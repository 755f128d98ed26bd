"""Recall ranks the shortlist on two columns and builds only the final k memories: it must
return exactly what building every shortlisted memory returned."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memex import Hit, Memex
from memex.core.episodes import EpisodeWeights, lift_episodes
from memex.core.models import to_micros, utcnow
from memex.core.ranking import Facts, FusionWeights, boost, fuse, spread_to_neighbours
from memex.core.text import query_terms
from memex.embedders.base import vector_weight_for
from memex.retrieval import EPISODE_CANDIDATES
from memex.storage.base import CandidateQuery

WORDS = [
    "deploy",
    "friday",
    "tabs",
    "editor",
    "alice",
    "coffee",
    "trip",
    "beach",
    "pottery",
    "dog",
    "review",
    "budget",
]
QUERIES = ["deploy on friday", "alice editor tabs", "beach trip with the dog", "coffee budget"]


def reference_recall(mx: Memex, query: str, k: int, **filters: Any) -> list[Hit]:
    """The former recall: build every shortlisted memory, boost, sort, keep k."""
    engine = mx._engine
    settings = engine.settings
    flt = mx._filters(**filters)
    w = FusionWeights(
        vector_weight=vector_weight_for(engine.embedding.embedder),
        importance_weight=settings.importance_weight,
        recency_weight=settings.recency_weight,
        recency_half_life_days=settings.recency_half_life_days,
    )
    pool = max(settings.candidates, k)
    qv = np.asarray(engine.embedding.embed_query(query), dtype=np.float32)
    spread = settings.neighbour_share > 0 and settings.neighbour_radius > 0
    found = engine.store.candidates(
        flt,
        CandidateQuery(
            terms=tuple(query_terms(query)),
            vector=qv,
            limit=pool,
            radius=settings.neighbour_radius if spread else 0,
            seeds=lambda lexical, vector: [f.key for f in fuse(lexical, vector, w)[:20]],
        ),
    )
    # Every candidate built as a whole memory: facts must agree with the memories.
    memories = engine.store.fetch(flt, list(found.ids.values()))
    built = {key: memories[i] for key, i in found.ids.items() if i in memories}
    fused = fuse(found.lexical, found.vector, w)
    if fused and spread:
        fused = spread_to_neighbours(fused, found.neighbours, settings.neighbour_share)
    if fused and settings.episode_minutes > 0:
        head, tail = fused[:EPISODE_CANDIDATES], fused[EPISODE_CANDIDATES:]
        placed = {
            key: Facts((m.scope, m.kind), to_micros(m.created_at), m.importance, m.content)
            for key, m in built.items()
        }
        episodes = EpisodeWeights(
            window_us=round(settings.episode_minutes * 60_000_000),
            best=settings.episode_best_share,
            coverage=settings.episode_coverage_share,
        )
        fused = lift_episodes(head, placed, query_terms(query), episodes) + tail
    now = to_micros(utcnow())
    hits = []
    for f in fused:
        m = built.get(f.key)
        if m is None:
            continue
        score, parts = boost(
            f.score,
            importance=m.importance,
            created_us=to_micros(m.created_at),
            now_us=now,
            weights=w,
        )
        explain = {"lexical": f.lexical, "vector": f.vector, **parts}
        if f.neighbours:
            explain["neighbours"] = f.neighbours
        if f.episode:
            explain["episode"] = f.episode
        hits.append((score, f.key, Hit(m, score, f.lexical_rank, f.vector_rank, explain)))
    hits.sort(key=lambda h: (-h[0], h[1]))
    return [h for _, _, h in hits[:k]]


def fill(mx: Memex, count: int) -> None:
    rng = random.Random(5)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    mx.remember_many(
        {
            "content": " ".join(rng.choices(WORDS, k=rng.randint(3, 8))) + f" item {i}",
            "kind": rng.choice(["fact", "note", "event"]),
            "tags": rng.sample(["a", "b", "c"], rng.randint(0, 2)),
            "scope": {"project": rng.choice(["web", "ops"])},
            "importance": round(rng.random(), 3),
            "created_at": start + timedelta(hours=rng.randint(0, 24 * 300)),
        }
        for i in range(count)
    )


def same(got: list[Hit], expected: list[Hit]) -> None:
    assert [h.memory.id for h in got] == [h.memory.id for h in expected]
    for a, b in zip(got, expected, strict=True):
        assert (a.lexical_rank, a.vector_rank) == (b.lexical_rank, b.vector_rank)
        assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12)
        assert a.explain.keys() == b.explain.keys()
        for key in a.explain:
            # Recency is reckoned from each call's own clock: the two calls are moments
            # apart (seconds on a loaded machine), and an old memory's recency moves by
            # about 3e-7 of itself a second (a 30-day half-life).
            rel = 1e-4 if key == "recency" else 1e-9
            assert a.explain[key] == pytest.approx(b.explain[key], rel=rel, abs=1e-12)
        skip = {"last_accessed_at", "access_count"}
        assert {x: y for x, y in a.memory.to_dict().items() if x not in skip} == {
            x: y for x, y in b.memory.to_dict().items() if x not in skip
        }


@pytest.mark.parametrize(
    ("boosts", "candidates"),
    [({}, 100), ({"importance_weight": 0.3, "recency_weight": 0.2}, 100),
     ({"importance_weight": 0.5}, 30), ({"recency_weight": 0.4}, 200),
     ({"episode_minutes": 30 * 24 * 60.0}, 100), ({"episode_minutes": 0.0}, 100)],
)  # fmt: skip
def test_recall_equals_building_every_candidate(
    tmp_path: Path, boosts: dict[str, float], candidates: int
) -> None:
    """Including the episode lift, computed here from fully built memories."""
    with Memex.open(tmp_path / "m.db", candidates=candidates, **boosts) as mx:
        fill(mx, 400)
        for query in QUERIES:
            for k in (1, 5, 10, 50):
                same(mx.recall(query, k=k), reference_recall(mx, query, k))
            lifted = ["episode" in h.explain for h in mx.recall(query, k=50)]
            assert any(lifted) == (mx._engine.settings.episode_minutes > 0)
            same(
                mx.recall(query, k=7, kinds=["fact", "note"], tags=["a"], scope={"project": "web"}),
                reference_recall(
                    mx, query, 7, kinds=["fact", "note"], tags=["a"], scope={"project": "web"}
                ),
            )

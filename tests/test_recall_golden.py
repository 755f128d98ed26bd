"""Recall ranks exactly as it did before the storage seam was narrowed.

``tests/data/recall_golden.json`` holds what recall returned (contents in order, scores
and leg ranks) on the store ``fill`` makes, under several settings, recorded from the
code before recall asked its store for candidates in one call
(``python tests/test_recall_golden.py > tests/data/recall_golden.json``). A change that
moves a single hit or changes a score in the ninth decimal fails here; a deliberate
ranking change records the file anew and says why in its commit.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memex import Memex

GOLDEN = Path(__file__).parent / "data" / "recall_golden.json"
WORDS = ["deploy", "friday", "tabs", "editor", "alice", "coffee", "trip", "beach", "pottery",
         "dog", "review", "budget", "camping", "oscar", "guinea", "pig"]  # fmt: skip
QUERIES = [
    "deploy on friday",
    "alice editor tabs",
    "beach trip with the dog",
    "coffee budget review",
    "what did oscar the guinea pig do",
    "camping",
]
# Recency boosts are left out: they depend on the time a test runs.
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "importance": {"importance_weight": 0.4},
    "no-episodes": {"episode_minutes": 0.0},
    "no-neighbours": {"neighbour_share": 0.0},
    "small-pool": {"candidates": 20},
    # The full-text index (tantivy) instead of FTS5, as in any store of 1,000 memories
    # or more.
    "full-text-index": {"lexical_index_min": 100},
}
MODES = ["hybrid", "lexical", "vector"]


def fill(mx: Memex) -> None:
    """Conversations in a few sessions and projects, with kinds, tags and importance."""
    rng = random.Random(11)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    mx.remember_many(
        {
            "content": " ".join(rng.choices(WORDS, k=rng.randint(3, 9))) + f" note {i}",
            "kind": rng.choice(["message", "fact", "event"]),
            "tags": rng.sample(["a", "b", "c"], rng.randint(0, 2)),
            "importance": round(rng.random(), 2),
            "scope": {"project": rng.choice(["web", "app"]), "session": f"s{i // 12}"},
            "created_at": start + timedelta(minutes=7 * i + rng.randint(0, 5)),
        }
        for i in range(360)
    )


def recorded(folder: Path) -> dict[str, Any]:
    """What recall returns under every setting, mode and query, as JSON-ready values."""
    out: dict[str, Any] = {}
    for name, settings in SETTINGS.items():
        # Filled and asked through one handle, as a program that remembers then recalls.
        with Memex.open(folder / f"{name}.db", **settings) as mx:
            fill(mx)
            for mode in MODES:
                for query in QUERIES:
                    hits = mx.recall(query, k=12, mode=mode)  # type: ignore[arg-type]
                    out[f"{name}|{mode}|{query}"] = [
                        [h.memory.content, round(h.score, 9), h.lexical_rank, h.vector_rank]
                        for h in hits
                    ]
    return out


def test_recall_ranks_as_recorded(tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text())
    got = recorded(tmp_path)
    assert got.keys() == expected.keys()
    for key, hits in expected.items():
        assert got[key] == hits, key


if __name__ == "__main__":  # record the file: python tests/test_recall_golden.py > FILE
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        json.dump(recorded(Path(folder)), sys.stdout, indent=0, sort_keys=True)
        sys.stdout.write("\n")

"""One recall makes two store calls, whatever ranking features are on: the candidates
with everything ranking needs, then the page (a third only if a memory of the page is
removed between the two). Each call costs a backend behind a network its round trips,
so this is a property of the seam, checked through a counting wrapper."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from memex import Memex
from memex.storage.base import Store


class Counting:
    """A store that records the protocol calls made on the thread that created it."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self._thread = threading.get_ident()
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:  # not the access log's own thread
                self.calls.append(name)
            return attribute(*args, **kwargs)

        return call


def fill(mx: Memex) -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    turns = [
        "we should plan the beach trip",
        "the dog can come along",
        "pack sunscreen and towels",
        "what about the pottery class",
        "it moved to thursday evening",
        "the editor uses tabs",
    ]
    mx.remember_many(
        {
            "content": f"{text} (day {day})",
            "kind": "message",
            "scope": {"session": f"chat-{day}"},
            "importance": 0.2 + 0.1 * i,
            "created_at": start + timedelta(days=day, minutes=i),
        }
        for day in range(20)
        for i, text in enumerate(turns)
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"importance_weight": 0.3, "recency_weight": 0.2},  # every feature on
        {},  # the defaults
        {"neighbour_share": 0.0, "episode_minutes": 0.0},  # every feature off
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "lexical", "vector"])
def test_a_recall_makes_two_store_calls(
    tmp_path: Path, settings: dict[str, float], mode: str
) -> None:
    with Memex.open(tmp_path / "m.db", **settings) as mx:
        fill(mx)
        counting = Counting(mx._engine.store)
        # Everything that holds the store holds the wrapper: no call goes around it.
        mx._engine.store = counting  # type: ignore[assignment]
        mx._engine.embedding.store = counting  # type: ignore[assignment]
        mx._engine.access._store = counting  # type: ignore[assignment]
        hits = mx.recall("beach trip with the dog", k=10, mode=mode)  # type: ignore[arg-type]
        assert counting.calls == ["candidates", "fetch"]
        assert len(hits) == 10
        if mode == "hybrid" and settings.get("importance_weight"):
            parts = set().union(*(hit.explain for hit in hits))
            assert {"neighbours", "episode", "importance", "recency"} <= parts
        counting.calls.clear()
        assert mx.recall("nothing like this at all zzz", k=5, mode="lexical") == []
        assert counting.calls == ["candidates"]  # nothing found: no page to fetch

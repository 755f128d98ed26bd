"""SQLite-specific: the lexical leg drops terms that are everywhere in a large store."""

from __future__ import annotations

from pathlib import Path

import pytest

from memex import Memex
from memex.core import text


def test_common_terms_are_pruned_in_large_stores(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text, "PRUNE_MIN_MEMORIES", 50)
    monkeypatch.setattr(text, "PRUNE_MIN_POSTINGS", 20)
    with Memex.open(store_path) as mx:
        rows = [{"content": f"caroline said item {i} was fine"} for i in range(80)]
        rows.append({"content": "caroline adopted a guinea pig named oscar"})
        mx.remember_many(rows)
        backend = mx._engine.store
        assert list(backend._prune_common(["caroline", "oscar"])) == ["oscar"]
        assert list(backend._prune_common(["caroline", "item"])) == ["caroline", "item"]
        # Every term common: the first two are kept (counts stop at the threshold, so
        # the common terms are all as common as each other).
        assert list(backend._prune_common(["fine", "caroline", "item"])) == ["fine", "caroline"]
        hits = mx.recall("what did caroline name the guinea pig oscar", k=3, mode="lexical")
        assert hits[0].memory.content.endswith("named oscar")
        assert mx.recall("caroline", k=3, mode="lexical")  # a lone common term still matches
    monkeypatch.setattr(text, "PRUNE_MIN_MEMORIES", 10_000)
    with Memex.open(store_path) as mx:
        backend = mx._engine.store
        assert list(backend._prune_common(["caroline", "oscar"])) == ["caroline", "oscar"]

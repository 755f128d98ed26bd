"""SQLite-specific: the lexical leg drops terms that are everywhere in a large store."""

from __future__ import annotations

from pathlib import Path

import pytest

from memex import Memex
from memex.core import text
from memex.storage.sqlite import lexical


def pruned(mx: Memex, terms: list[str]) -> list[str]:
    """The terms the FTS5 leg keeps, at the store's size."""
    store = mx._engine.store
    return list(lexical.prune_common(store._conn(), terms, store._size_estimate()))  # type: ignore[attr-defined]


def test_common_terms_are_pruned_in_large_stores(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text, "PRUNE_MIN_MEMORIES", 50)
    monkeypatch.setattr(text, "PRUNE_MIN_POSTINGS", 20)
    with Memex.open(store_path) as mx:
        rows = [{"content": f"caroline said item {i} was fine"} for i in range(80)]
        rows.append({"content": "caroline adopted a guinea pig named oscar"})
        mx.remember_many(rows)
        assert pruned(mx, ["caroline", "oscar"]) == ["oscar"]
        assert pruned(mx, ["caroline", "item"]) == ["caroline", "item"]
        # Every term common: the first two are kept (counts stop at the threshold, so
        # the common terms are all as common as each other).
        assert pruned(mx, ["fine", "caroline", "item"]) == ["fine", "caroline"]
        hits = mx.recall("what did caroline name the guinea pig oscar", k=3, mode="lexical")
        assert hits[0].memory.content.endswith("named oscar")
        assert mx.recall("caroline", k=3, mode="lexical")  # a lone common term still matches
    monkeypatch.setattr(text, "PRUNE_MIN_MEMORIES", 10_000)
    with Memex.open(store_path) as mx:
        assert pruned(mx, ["caroline", "oscar"]) == ["caroline", "oscar"]

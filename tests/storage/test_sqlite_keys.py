"""SQLite keys: a batch's rows get consecutive keys after the largest ever used."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from memex import Memex
from memex.core.query import Filters
from memex.storage.base import CandidateQuery


def keys(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT m.seq, m.content FROM memories m JOIN vectors v ON v.seq = m.seq "
            "JOIN memories_fts f ON f.rowid = m.seq ORDER BY m.seq"
        ).fetchall()
    finally:
        conn.close()


def test_keys_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with Memex.open(path) as mx:
        made = mx.remember_many({"content": f"m{i}"} for i in range(3))
        assert keys(path) == [(1, "m0"), (2, "m1"), (3, "m2")]
        mx.purge(made[2].id)
        mx.remember_many({"content": f"n{i}"} for i in range(2))
        assert keys(path) == [(1, "m0"), (2, "m1"), (4, "n0"), (5, "n1")]
        store = mx._engine.store
        query = np.asarray(mx.embedder.embed(["n1"])[0], dtype=np.float32)
        found = store.candidates(Filters.build(scope=mx.scope), CandidateQuery(vector=query))
        assert 5 in {c.key for c in found.vector}
        assert {k: found.facts[k].text for k in (4, 5) if k in found.facts} == {
            4: "n0",
            5: "n1",
        }
        assert mx.get(made[0].id).created_at <= datetime.now(UTC)

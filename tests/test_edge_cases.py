"""Edge cases: other handles and processes, odd input, and what must stay untouched."""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from clirun import run_cli

from memex import (
    ConflictError,
    EmbedderMismatchError,
    Memex,
    NotFoundError,
    StoreCorruptError,
    ValidationError,
)
from memex.core.progress import Step
from memex.embedders.base import normalise


class LetterEmbedder:
    """A small real embedder: letter frequencies, so two instances can differ by name."""

    def __init__(self, name: str = "letters:a", dims: int = 26) -> None:
        self._name, self._dims = name, dims

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimensions(self) -> int:
        return self._dims

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[row, (ord(ch) - 97) % self._dims] += 1
        out[:, 0] += 0.01
        return normalise(out)


def test_line_separators_survive_export_and_import(tmp_path: Path) -> None:
    src, dst, dump = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "dump.jsonl"
    with Memex.open(src) as mx:
        m = mx.remember("line one\u2028still the same\u0085memory")
    assert run_cli(["export", "-o", str(dump), "--store", str(src)]).exit_code == 0
    result = run_cli(["import", str(dump), "--store", str(dst)])
    assert result.exit_code == 0, result.output
    with Memex.open(dst) as mx:
        assert mx.get(m.id).content == m.content


def test_forgotten_stay_forgotten_and_expired_are_exported(mx: Memex) -> None:
    gone = mx.remember("a secret that was forgotten")
    mx.forget(gone.id)
    brief = mx.remember("expires at once", ttl=0.01)
    mx.remember("plain")
    import time

    time.sleep(0.05)
    exported = [m.id for m in mx.iter_all()]
    assert brief.id in exported and gone.id not in exported
    everything = [json.dumps(m.to_dict()) for m in mx.iter_all(include_deleted=True)]
    other = mx.scoped(tenant="copy")
    other.import_lines(everything)
    assert gone.id not in [m.id for m in other.list(limit=10).items]
    with pytest.raises(NotFoundError):
        other.get(gone.id)
    assert other.history(gone.id)[-1].deleted_at is not None


def test_reader_opened_on_empty_store_sees_later_vectors(store_path: Path) -> None:
    with Memex.open(store_path) as reader, Memex.open(store_path) as writer:
        assert reader.recall("anything", mode="vector") == []
        m = writer.remember("alpha beta gamma")
        assert [h.memory.id for h in reader.recall("alpha beta", mode="vector")] == [m.id]


def test_reindex_elsewhere_is_detected_not_mixed(store_path: Path) -> None:
    with Memex.open(store_path, embedder=LetterEmbedder("letters:a")) as first:
        first.remember("hello there")
        assert first.recall("hello", mode="vector")
        with Memex.open(store_path, embedder=LetterEmbedder("letters:a")) as second:
            assert second.reindex(LetterEmbedder("letters:b")) == 1
            assert second.recall("hello", mode="vector")
        with pytest.raises(EmbedderMismatchError, match="reindexed"):
            first.recall("hello", mode="vector")


def test_writes_during_reindex_abort_the_swap(store_path: Path) -> None:
    with Memex.open(store_path, embedder=LetterEmbedder("letters:a")) as mx:
        keep = mx.remember("one memory")
        doomed = mx.remember("another memory")
        calls = []

        def meddle(step: Step) -> None:
            if step.done and not calls:  # a batch is embedded: the reindex is under way
                mx.update(keep.id, content="changed during the reindex")
                mx.purge(doomed.id)
                calls.append(step)

        with pytest.raises(ConflictError, match="during the reindex"):
            mx.reindex(LetterEmbedder("letters:b"), progress=meddle)
        assert mx.stats().embedder == "letters:a"
        assert mx.reindex(LetterEmbedder("letters:b")) == 1
        conn = sqlite3.connect(store_path)
        orphans = conn.execute(
            "SELECT count(*) FROM vectors v LEFT JOIN memories m ON m.seq = v.seq "
            "WHERE m.seq IS NULL"
        ).fetchone()[0]
        staging = conn.execute(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'vectors_reindex%'"
        ).fetchone()[0]
        conn.close()
        assert orphans == 0 and staging == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda mx: mx.remember("x", ttl=1e20),
        lambda mx: mx.remember("x", ttl=float("nan")),
        lambda mx: mx.recall("x", metadata={"n": 10**30}),
        lambda mx: mx.recall("x", query_vector=np.ones(3, dtype=np.float32)),
        lambda mx: mx.history(None),
        lambda mx: mx.get(""),
        lambda mx: Memex.open(mx.location, settings=mx.settings, not_a_setting=1),
        lambda mx: mx.remember_many([{"content": "x", "scope": ""}]),
        lambda mx: mx.remember_many([{"content": "x", "scope": 0}]),
        lambda mx: mx.remember_many([{"content": "x", "id": 0}]),
    ],
)
def test_odd_input_is_a_memex_error(mx: Memex, call: object) -> None:
    mx.remember("present")
    with pytest.raises((ValidationError, Exception)) as info:
        call(mx)  # type: ignore[operator]
    assert type(info.value).__module__ == "memex.errors", repr(info.value)


def test_explicit_id_taken_in_another_project(mx: Memex) -> None:
    web = mx.scoped(project="web").remember("web memory")
    mobile = mx.scoped(project="mobile")
    [copy] = mobile.import_lines([json.dumps({"content": "copy", "id": web.id})])
    assert copy.id != web.id  # a project's handle neither learns nor takes the id
    assert mx.get(web.id).content == "web memory"
    with pytest.raises(ValidationError, match="already exists"):
        mx.import_lines([json.dumps({"content": "copy", "id": web.id})])


def test_open_needs_no_write_lock(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        mx.remember("there")
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Memex.open(store_path, busy_timeout=0.2) as reader:
            assert reader.stats().memories == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_foreign_database_is_left_in_its_journal_mode(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError):
        Memex.open(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert not Path(str(path) + "-wal").exists()


def test_valid_time_rules(mx: Memex) -> None:
    now = datetime.now(UTC)
    old = mx.remember("the office is in Berlin", valid_from=now - timedelta(days=10))
    with pytest.raises(ValidationError, match="earlier"):
        mx.remember(
            "the office is in Paris", supersedes=old.id, valid_from=now - timedelta(days=20)
        )
    later = mx.remember(
        "the office moves to Lisbon", supersedes=old.id, valid_from=now + timedelta(days=30)
    )
    current = [h.memory.id for h in mx.recall("office", k=5)]
    assert current == [old.id]  # the move has not happened yet
    future = [h.memory.id for h in mx.recall("office", k=5, as_of=now + timedelta(days=31))]
    assert future == [later.id]


def test_thread_connections_close_with_their_threads(mx: Memex) -> None:
    m = mx.remember("read from many threads")
    store = mx._engine.store
    errors: list[BaseException] = []

    def read() -> None:
        try:
            assert mx.get(m.id).id == m.id
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    for _ in range(20):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    gc.collect()
    assert not errors
    assert len(store._connections.holders) <= 2


def test_ids_are_case_insensitive_everywhere(mx: Memex) -> None:
    m = mx.remember("case test")
    assert mx.get(m.id.upper()).id == m.id
    mx.purge(m.id.upper())
    with pytest.raises(NotFoundError):
        mx.history(m.id)

"""SQLite-specific: the tantivy full-text index agrees with FTS5, follows writes (through
the FTS5-scored tail and through catch-ups), and is rebuilt when lost, broken, foreign or
ahead of the store."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_vector_index import fill

from memex import Memex, Settings
from memex.errors import ConfigError
from memex.storage.sqlite.fulltext import TAIL_ROWS, FullTextIndex
from memex.storage.sqlite.store import SQLiteStore

INDEXED = Settings(lexical_index_min=2_000)
FTS5_ONLY = Settings(lexical_index_min=10**9)


def fulltext(mx: Memex) -> tuple[SQLiteStore, FullTextIndex]:
    store = mx._engine.store
    assert isinstance(store, SQLiteStore)
    return store, store._fulltext


def watermark(path: Path) -> dict[str, int]:
    data: dict[str, int] = json.loads((folder(path) / "watermark.json").read_text())
    return data


def folder(path: Path) -> Path:
    return path.parent / (path.name + ".lexical")


def top_ids(mx: Memex, query: str, k: int = 10, **kw: object) -> list[str]:
    return [h.memory.id for h in mx.recall(query, k, mode="lexical", **kw)]  # type: ignore[arg-type]


def is_indexed(mx: Memex) -> bool:
    """Whether the last lexical search was answered by the tantivy index."""
    return fulltext(mx)[1]._index is not None


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("fulltext") / "memex.db"
    return path, fill(path, 6_000)


@pytest.fixture
def store_copy(sample_store: tuple[Path, list[str]], tmp_path: Path) -> Path:
    path = tmp_path / "memex.db"
    shutil.copy(sample_store[0], path)
    return path


def queries(texts: list[str], count: int = 60) -> list[str]:
    rng = random.Random(3)
    return [" ".join(rng.sample(t.split()[:-1], 3)) for t in rng.sample(texts, count)]


def test_settings_require_a_positive_threshold() -> None:
    with pytest.raises(ConfigError):
        Settings(lexical_index_min=0)


def test_index_ranks_like_fts5(sample_store: tuple[Path, list[str]], tmp_path: Path) -> None:
    # Both rank by BM25, but tantivy stems with Snowball where FTS5 uses Porter, quantises
    # document lengths to 256 buckets and computes idf from its own counts, and these
    # topical sentences tie often near rank 10: a memory or so of ten may swap at the
    # boundary. 0.9 mean overlap allows that and still catches a wrong index or filter.
    path = tmp_path / "memex.db"
    shutil.copy(sample_store[0], path)
    asked = queries(sample_store[1])
    with Memex.open(path, FTS5_ONLY) as mx:
        expected = [top_ids(mx, q) for q in asked]
        scoped = [top_ids(mx, q, scope={"project": "p1"}) for q in asked[:20]]
        assert not folder(path).exists()
    with Memex.open(path, INDEXED) as mx:
        got = [top_ids(mx, q) for q in asked]
        assert is_indexed(mx)
        got_scoped = [top_ids(mx, q, scope={"project": "p1"}) for q in asked[:20]]
    overlap = [len(set(a) & set(b)) / len(a) for a, b in zip(expected, got, strict=True)]
    assert sum(overlap) / len(overlap) >= 0.9
    scoped_overlap = [
        len(set(a) & set(b)) / len(a) for a, b in zip(scoped, got_scoped, strict=True)
    ]
    assert sum(scoped_overlap) / len(scoped_overlap) >= 0.9
    with Memex.open(path, INDEXED) as mx:
        assert all(mx.get(i).scope.project == "p1" for ids in got_scoped for i in ids)


def test_new_memory_is_found_before_and_after_a_catch_up(store_copy: Path) -> None:
    with Memex.open(store_copy, INDEXED) as mx:
        top_ids(mx, "garden piano")
        built = watermark(store_copy)
        memory = mx.remember("the quokka zeppelin landed in the garden")
        assert top_ids(mx, "quokka zeppelin")[:1] == [memory.id]
        assert is_indexed(mx)
        assert watermark(store_copy) == built  # found through the tail, no commit
        store, index = fulltext(mx)
        assert store._run(lambda c: index.catch_up(c, force=True))
        assert watermark(store_copy)["max_seq"] > built["max_seq"]
        assert top_ids(mx, "quokka zeppelin")[:1] == [memory.id]
    with Memex.open(store_copy, INDEXED) as mx:
        assert top_ids(mx, "quokka zeppelin")[:1] == [memory.id]


def test_a_large_lag_is_caught_up_by_the_query(store_copy: Path) -> None:
    with Memex.open(store_copy, INDEXED) as mx:
        top_ids(mx, "garden piano")
        built = watermark(store_copy)["max_seq"]
        mx.remember_many({"content": f"filler note number {i}"} for i in range(TAIL_ROWS + 10))
        last = mx.remember("an axolotl named Brian")
        assert top_ids(mx, "axolotl")[:1] == [last.id]
        assert watermark(store_copy)["max_seq"] >= built + TAIL_ROWS + 10


def test_updated_content_is_found_by_its_new_words_only(store_copy: Path) -> None:
    with Memex.open(store_copy, INDEXED) as mx:
        memory = mx.remember("a narwhal sang opera")
        store, index = fulltext(mx)
        top_ids(mx, "narwhal")
        assert store._run(lambda c: index.catch_up(c, force=True))
        mx.update(memory.id, content="a platypus played cricket")
        # pending change: the index still holds the old words, the tail the new ones
        assert memory.id not in top_ids(mx, "narwhal opera")
        assert top_ids(mx, "platypus cricket")[:1] == [memory.id]
        assert store._run(lambda c: index.catch_up(c, force=True))
        assert memory.id not in top_ids(mx, "narwhal opera")
        assert top_ids(mx, "platypus cricket")[:1] == [memory.id]
    with Memex.open(store_copy, INDEXED) as mx:
        assert memory.id not in top_ids(mx, "narwhal opera")
        assert top_ids(mx, "platypus cricket")[:1] == [memory.id]


def test_forgotten_and_purged_memories_never_come_back(store_copy: Path) -> None:
    with Memex.open(store_copy, INDEXED) as mx:
        gone = mx.remember("the wombat archive of secrets")
        hidden = mx.remember("the wombat archive of riddles")
        store, index = fulltext(mx)
        assert store._run(lambda c: index.catch_up(c, force=True))
        mx.purge(gone.id)
        mx.forget(hidden.id)
        assert top_ids(mx, "wombat archive") == []
        assert store._run(lambda c: index.catch_up(c, force=True))
        assert top_ids(mx, "wombat archive") == []
    with Memex.open(store_copy, INDEXED) as mx:
        assert top_ids(mx, "wombat archive") == []
        assert is_indexed(mx)


@pytest.mark.parametrize("damage", ["missing", "corrupt", "foreign", "ahead", "empty"])
def test_an_untrustworthy_index_is_rebuilt(store_copy: Path, damage: str) -> None:
    with Memex.open(store_copy, INDEXED) as mx:
        memory = mx.remember("a capybara in the sauna")
        expected = top_ids(mx, "capybara sauna")
        assert expected[:1] == [memory.id]
    where = folder(store_copy)
    mark = where / "watermark.json"
    if damage == "missing":
        shutil.rmtree(where)
    elif damage == "corrupt":
        (where / "meta.json").write_text("{ not json")
    elif damage == "foreign":
        mark.write_text(json.dumps({**json.loads(mark.read_text()), "store_id": "elsewhere"}))
    elif damage == "ahead":
        mark.write_text(json.dumps({**json.loads(mark.read_text()), "max_seq": 10**9}))
    else:
        for item in where.iterdir():
            if item.name != "watermark.json":
                item.unlink()
    with Memex.open(store_copy, INDEXED) as mx:
        assert top_ids(mx, "capybara sauna") == expected
        assert is_indexed(mx)
        stored = fulltext(mx)[0]._run(lambda c: c.execute("SELECT max(seq) FROM memories"))
        assert watermark(store_copy)["max_seq"] == stored.fetchone()[0]


def test_filters_apply_to_index_hits(store_copy: Path) -> None:
    with Memex.open(store_copy, INDEXED) as mx:
        tagged = mx.remember("the ocelot recipe book", tags=["cooking"], kind="recipe")
        other = mx.remember("the ocelot recipe box", tags=["misc"])
        store, index = fulltext(mx)
        assert store._run(lambda c: index.catch_up(c, force=True))
        assert top_ids(mx, "ocelot", tags=["cooking"]) == [tagged.id]
        assert top_ids(mx, "ocelot", kinds=["recipe"]) == [tagged.id]
        assert set(top_ids(mx, "ocelot")) == {tagged.id, other.id}
        assert top_ids(mx.scoped(tenant="someone-else"), "ocelot") == []


CHILD = textwrap.dedent(
    """
    import sys
    from memex import Memex, Settings
    mx = Memex.open(sys.argv[1], Settings(lexical_index_min=2_000))
    store = mx._engine.store
    index = store._fulltext
    round = 0
    while True:
        round += 1
        mx.remember_many({"content": f"kangaroo round {round} note {i}"} for i in range(400))
        first = mx.list(limit=1).items[0]
        mx.update(first.id, content=f"kangaroo update {round}")
        mx.recall("kangaroo note", mode="lexical")
        store._run(lambda c: index.catch_up(c, force=True))
        print("caught up", round, flush=True)
    """
)


@pytest.mark.slow
def test_index_survives_being_killed_mid_catch_up(store_copy: Path) -> None:
    rng = random.Random(5)
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(store_copy)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().startswith("caught up"), (
            child.stderr.read() if child.stderr else ""
        )
        time.sleep(rng.uniform(0.05, 1.0))
        child.send_signal(signal.SIGKILL)
        child.communicate()
    with Memex.open(store_copy, INDEXED) as mx:
        store, index = fulltext(mx)
        assert store._run(lambda c: index.catch_up(c, force=True))
        assert index._index is not None
        searcher = index._index.searcher()
        live = store._run(lambda c: c.execute("SELECT count(*) FROM memories").fetchone()[0])
        assert searcher.num_docs == live  # nothing lost, nothing twice
        first = mx.list(limit=1).items[0]
        assert first.id in top_ids(mx, first.content, 3)
        everything = mx.list(limit=1000).items
        for memory in random.Random(6).sample(everything, 20):
            assert memory.id in top_ids(mx, memory.content, 5)


def test_handles_share_the_index_and_a_busy_writer_falls_back_to_the_tail(
    store_copy: Path,
) -> None:
    with Memex.open(store_copy, INDEXED) as first, Memex.open(store_copy, INDEXED) as second:
        top_ids(first, "garden piano")
        top_ids(second, "garden piano")
        memory = first.remember("a pangolin on the piano")
        store, index = fulltext(first)
        assert store._run(lambda c: index.catch_up(c, force=True))
        assert top_ids(second, "pangolin")[:1] == [memory.id]
        assert fulltext(second)[1]._mark == index._mark  # followed the other handle's commit
        assert index._index is not None
        held = index._index.writer(15_000_000, 1)  # as if another process were catching up
        try:
            many = first.remember_many({"content": f"lemur {i}"} for i in range(TAIL_ROWS + 5))
            assert not store._run(lambda c: index.catch_up(c, force=True))
            assert set(top_ids(second, "lemur", 3)) <= {m.id for m in many}
            assert len(top_ids(second, "lemur", 3)) == 3
        finally:
            del held

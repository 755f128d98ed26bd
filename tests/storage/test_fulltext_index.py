"""SQLite-specific: the tantivy full-text index agrees with FTS5 (unscoped and within any
scope), follows writes (through the FTS5-scored tail and through catch-ups), and is
rebuilt when lost, broken, foreign, ahead of the store or of an older format."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sqlite3
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import tantivy
from test_vector_index import EXACT, fill, sentences

from memex import Memex, Settings
from memex.core.models import Scope
from memex.core.query import Filters
from memex.core.text import query_terms
from memex.errors import ConfigError
from memex.storage.sqlite.fulltext import FORMAT, TAIL_ROWS, FullTextIndex
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


def index_answers(mx: Memex, query: str, scope: Mapping[str, str], k: int = 10) -> bool:
    """Whether the index itself answers this scoped search (no fallback to FTS5)."""
    store, index = fulltext(mx)
    filters = Filters.build(scope=Scope.of({"tenant": "default", **scope}))
    return store._run(lambda c: index.search(c, filters, query_terms(query), k)) is not None


def within(mx: Memex, ids: list[str], scope: Mapping[str, str]) -> bool:
    """Whether every memory of ``ids`` has every scope field ``scope`` sets."""
    return all(mx.get(i).scope.as_dict().items() >= scope.items() for i in ids)


def mean_overlap(expected: list[list[str]], got: list[list[str]]) -> float:
    """The mean share of each expected list found in the other (1.0 for two empty lists)."""
    shares = [
        len(set(a) & set(b)) / len(a) if a else float(not b)
        for a, b in zip(expected, got, strict=True)
    ]
    return sum(shares) / len(shares)


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("fulltext") / "memex.db"
    return path, fill(path, 6_000)


@pytest.fixture(scope="module")
def scoped_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Memories over every mix of project, user, agent and session, some left unset,
    and a second tenant sharing the same project names."""
    path = tmp_path_factory.mktemp("scoped") / "memex.db"
    texts = sentences(3_600, seed=2)
    with Memex.open(path, EXACT, lexical_index_min=10**9) as mx:  # no index built yet
        mx.remember_many(
            {"content": t, "scope": grid_scope(i)} for i, t in enumerate(texts[:3_000])
        )
        mx.scoped(tenant="elsewhere").remember_many(
            {"content": t, "scope": grid_scope(i)} for i, t in enumerate(texts[3_000:])
        )
    return path, texts[:3_000]


def grid_scope(i: int) -> dict[str, str]:
    fields = {
        "project": ("p0", "p1", None)[i % 3],
        "user": ("u0", "u1", None)[i // 3 % 3],
        "agent": ("a0", None)[i // 9 % 2],
        "session": ("s0", "s1", "s2", None)[i // 18 % 4],
    }
    return {name: value for name, value in fields.items() if value is not None}


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


SCOPES: list[dict[str, str]] = [
    {"project": "p0"},
    {"user": "u1"},
    {"agent": "a0"},
    {"session": "s2"},
    {"project": "p1", "user": "u0"},
    {"user": "u0", "session": "s1"},
    {"agent": "a0", "session": "s0"},
    {"project": "p0", "user": "u1", "agent": "a0", "session": "s0"},
]


def test_scoped_searches_agree_with_fts5(scoped_store: tuple[Path, list[str]]) -> None:
    path, texts = scoped_store
    asked = queries(texts, 15)
    with Memex.open(path, FTS5_ONLY) as mx:
        expected = [[top_ids(mx, q, scope=s) for q in asked] for s in SCOPES]
        assert not folder(path).exists()
    with Memex.open(path, INDEXED) as mx:
        got = [[top_ids(mx, q, scope=s) for q in asked] for s in SCOPES]
        for scope, want, have in zip(SCOPES, expected, got, strict=True):
            assert all(want), scope  # every scope holds matches for every query
            assert mean_overlap(want, have) >= 0.9, scope
            assert all(within(mx, ids, scope) for ids in have), scope
            assert all(index_answers(mx, q, scope) for q in asked[:3]), scope
        assert is_indexed(mx)


def test_scope_terms_count_what_the_tables_hold(scoped_store: tuple[Path, list[str]]) -> None:
    path, _ = scoped_store
    with Memex.open(path, INDEXED) as mx:
        top_ids(mx, "garden piano")
        store, index = fulltext(mx)
        assert index._index is not None
        searcher = index._index.searcher()
        for name, column in [("tenant", "tenant"), ("project", "project"), ("user", "user_id")]:
            for value, count in store._run(
                lambda c, column=column: c.execute(
                    f"SELECT {column}, count(*) FROM memories WHERE {column} IS NOT NULL "
                    f"GROUP BY {column}"
                ).fetchall()
            ):
                assert searcher.doc_freq("scope", f"{name}={value}") == count, (name, value)


def test_scope_filters_on_new_and_indexed_memories(store_copy: Path) -> None:
    with Memex.open(store_copy, INDEXED) as mx:
        loose = mx.remember("the okapi lighthouse keeper", scope={"user": "u9"})
        placed = mx.remember("the okapi harbour master", scope={"project": "p0", "user": "u9"})
        store, index = fulltext(mx)
        for caught_up in (False, True):  # first through the FTS5 tail, then the index
            if caught_up:
                assert store._run(lambda c: index.catch_up(c, force=True))
            assert set(top_ids(mx, "okapi")) == {loose.id, placed.id}
            assert top_ids(mx, "okapi", scope={"project": "p0"}) == [placed.id]
            assert top_ids(mx, "okapi", scope={"user": "u9"})[:2] in (
                [loose.id, placed.id],
                [placed.id, loose.id],
            )
            assert top_ids(mx, "okapi lighthouse", scope={"user": "u9", "project": "p0"}) == [
                placed.id
            ]
            assert top_ids(mx, "okapi", scope={"project": "p1"}) == []
            assert top_ids(mx, "okapi", scope={"project": "nowhere"}) == []
            assert top_ids(mx, "okapi", scope={"agent": "a0"}) == []
            assert top_ids(mx.scoped(tenant="someone-else"), "okapi") == []
            for scope in ({"project": "nowhere"}, {"project": "p0"}, {"user": "u9"}):
                assert index_answers(mx, "okapi", scope)
        assert is_indexed(mx)


def write_format_1(path: Path) -> None:
    """The index folder an earlier memex wrote: the tenant as the only scope field."""
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("key", stored=False, indexed=True, fast=True)
    builder.add_text_field("tenant", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", stored=False, tokenizer_name="en_stem", index_option="freq")
    where = folder(path)
    where.mkdir()
    index = tantivy.Index(builder.build(), path=str(where))
    writer = index.writer(15_000_000, 1)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for seq, tenant, content in conn.execute("SELECT seq, tenant, content FROM memories"):
            doc = tantivy.Document()
            doc.add_unsigned("key", seq)
            doc.add_text("tenant", tenant)
            doc.add_text("text", content)
            writer.add_document(doc)
        store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
        max_seq = conn.execute("SELECT max(seq) FROM memories").fetchone()[0]
        change_pos = conn.execute("SELECT coalesce(max(pos), 0) FROM index_changes").fetchone()[0]
    writer.commit()
    del writer
    mark = {"format": 1, "store_id": store_id, "max_seq": max_seq, "change_pos": change_pos}
    (where / "watermark.json").write_text(json.dumps(mark))


def test_an_index_of_the_previous_format_is_rebuilt(
    sample_store: tuple[Path, list[str]], store_copy: Path
) -> None:
    asked = queries(sample_store[1], 15)
    with Memex.open(store_copy, FTS5_ONLY) as mx:
        expected = [top_ids(mx, q, scope={"project": "p1"}) for q in asked]
    write_format_1(store_copy)
    assert tantivy.Index.open(str(folder(store_copy))).searcher().num_docs == 6_000
    with Memex.open(store_copy, INDEXED) as mx:
        got = [top_ids(mx, q, scope={"project": "p1"}) for q in asked]
        assert is_indexed(mx)
        assert index_answers(mx, asked[0], {"project": "p1"})
        assert all(within(mx, ids, {"project": "p1"}) for ids in got)
    assert mean_overlap(expected, got) >= 0.9
    assert watermark(store_copy)["format"] == FORMAT == 2
    searcher = tantivy.Index.open(str(folder(store_copy))).searcher()
    assert searcher.doc_freq("scope", "project=p1") == 2_000


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


def test_commits_do_not_pile_up_segments(store_copy: Path) -> None:
    """Every catch-up commits a segment; merges keep their number down (each search
    walks every segment)."""
    with Memex.open(store_copy, INDEXED) as mx:
        top_ids(mx, "garden piano")
        store, index = fulltext(mx)
        for n in range(12):
            mx.remember(f"the quokka number {n} crossed the garden")
            assert store._run(lambda c: index.catch_up(c, force=True))
        assert index._index is not None
        assert index._index.searcher().num_segments < 8
        assert len(top_ids(mx, "quokka")) == 10


def test_purged_newest_memories_leave_no_lag(store_copy: Path) -> None:
    """Keys are never reused: once the newest memories are purged, the index holds every
    row up to the highest key, and searches find nothing to catch up."""
    from memex.storage.sqlite.fulltext_mark import lag, store_state

    with Memex.open(store_copy, INDEXED) as mx:
        top_ids(mx, "garden piano")
        late = [mx.remember(f"a late note about otters {i}").id for i in range(5)]
        store, index = fulltext(mx)
        assert store._run(lambda c: index.catch_up(c, force=True))
        for memory_id in late:
            mx.purge(memory_id)
        top_ids(mx, "otters")
        assert index._mark is not None
        assert store._run(lambda c: lag(store_state(c), index._mark)) == (0, 0)


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
def test_index_survives_being_killed_mid_catch_up(
    store_copy: Path, kill_midway: Callable[..., None]
) -> None:
    kill_midway([CHILD, str(store_copy)], "caught up")
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

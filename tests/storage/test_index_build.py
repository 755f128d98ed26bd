"""Building the derived search indexes ahead of the first recall: a large import builds
them (reporting each stage), a small write costs nothing, a new process recalls without
building, and a build cut short leaves the store and the previous index usable."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memex import Memex
from memex.core.progress import Step
from memex.storage.sqlite import ann, fulltext, fulltext_write, vectors
from memex.storage.sqlite.store import SQLiteStore

SMALL: dict[str, Any] = {"lexical_index_min": 50, "ann_min_vectors": 200}
STAGES = [
    "embedding",
    "indexing full text",
    "training vector index",
    "indexing vectors",
    "saving vector index",
]
WORDS = (  # noqa: SIM905
    "harbour lantern meadow orchard pebble quarry ribbon saddle thistle umbrella velvet "
    "walnut yarrow anchor biscuit candle dune ember falcon glacier hammock iceberg jasmine "
    "kettle ladder marble nectar oyster parsley quill raven spindle tundra urchin violet"
).split()


def sentences(count: int, seed: int) -> list[str]:
    """Distinct topical sentences, each ending in a unique tag."""
    rng = random.Random(seed)
    topics = [rng.sample(WORDS, 6) for _ in range(25)]
    return [
        " ".join(rng.choices(rng.choice(topics), k=6) + rng.choices(WORDS, k=2)) + f" #{seed}-{i}"
        for i in range(count)
    ]


def lines(texts: list[str]) -> Iterator[str]:
    return (
        json.dumps({"content": t, "scope": {"project": f"p{i % 2}"}}) for i, t in enumerate(texts)
    )


def by_stage(steps: list[Step]) -> dict[str, list[Step]]:
    found: dict[str, list[Step]] = {}
    for step in steps:
        found.setdefault(step.stage, []).append(step)
    return found


def counts_up(steps: list[Step]) -> bool:
    """From 0 to the stage's total, strictly increasing, the total never changing."""
    done = [s.done for s in steps]
    total = steps[0].total
    return (
        done[0] == 0
        and done[-1] == total
        and all(a < b for a, b in itertools.pairwise(done))
        and all(s.total == total for s in steps)
    )


def index_state(path: Path) -> dict[str, tuple[int, int]]:
    """Every index file's (inode, mtime): a commit, a rebuild or a save changes it."""
    found = {}
    for folder in (path.parent / (path.name + ".lexical"), path.parent / (path.name + ".ann")):
        for name in ("watermark.json", "meta.json", *(p.name for p in folder.glob("*.npz"))):
            if (folder / name).exists():
                stat = (folder / name).stat()
                found[f"{folder.name}/{name}"] = (stat.st_ino, stat.st_mtime_ns)
    return found


def marks(path: Path) -> tuple[int, list[str]]:
    """The full-text watermark's highest key and the vector files' names."""
    lexical = json.loads((path.parent / (path.name + ".lexical") / "watermark.json").read_text())
    return lexical["max_seq"], sorted(p.name.split(".", 1)[1] for p in ann_files(path))


def ann_files(path: Path) -> list[Path]:
    return list((path.parent / (path.name + ".ann")).glob("*.npz"))


def store_of(mx: Memex) -> SQLiteStore:
    store = mx._engine.store
    assert isinstance(store, SQLiteStore)
    return store


@pytest.fixture
def imported(tmp_path: Path) -> tuple[Path, list[str]]:
    """A store of 700 memories imported in one call, its indexes built by the import."""
    path = tmp_path / "memex.db"
    texts = sentences(700, seed=1)
    with Memex.open(path, **SMALL) as mx:
        mx.import_lines(lines(texts))
    return path, texts


def test_an_import_builds_both_indexes_reporting_each_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fulltext_write, "_BATCH", 100)
    monkeypatch.setattr(vectors, "_CHUNK", 128)
    path = tmp_path / "memex.db"
    steps: list[Step] = []
    with Memex.open(path, **SMALL) as mx:
        mx.import_lines(lines(sentences(700, seed=1)), progress=steps.append)
        assert marks(path) == (700, ["700.0.npz"])  # built before close, not by it
    stages = by_stage(steps)
    assert list(stages) == STAGES
    assert all(counts_up(found) for found in stages.values())
    totals = {stage: found[0].total for stage, found in stages.items()}
    assert totals == {
        "embedding": 700,
        "indexing full text": 700,
        "training vector index": ann.ITERATIONS,
        "indexing vectors": 700,
        "saving vector index": 1,
    }
    assert len(stages["indexing full text"]) == 8  # 0, then one step per batch of 100
    assert len(stages["indexing vectors"]) == 7  # 0, then one per chunk of 128


CHILD_RECALLS = textwrap.dedent(
    """
    import json, sys
    from memex import Memex
    from memex.storage.sqlite import ann, fulltext, fulltext_write, vectors

    def refuse(*args, **kwargs):
        raise AssertionError("an index was built, caught up or saved")

    fulltext.FullTextIndex._rebuild = refuse
    fulltext_write.apply_changes = refuse
    ann.IvfIndex.train = refuse
    vectors.VectorIndex._save = refuse
    path, query = sys.argv[1], sys.argv[2]
    with Memex.open(path, lexical_index_min=50, ann_min_vectors=200) as mx:
        lexical = mx.recall(query, 3, mode="lexical")[0].memory.content
        vector = mx.recall(query, 3, mode="vector")[0].memory.content
        store = mx._engine.store
        served = store._fulltext._index is not None, store._vector_index().approximate("default")
    print(json.dumps({"lexical": lexical, "vector": vector, "served": served}))
    """
)


def recall_elsewhere(path: Path, query: str) -> dict[str, object]:
    """Recall in a new process that fails if it builds, catches up or saves an index."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD_RECALLS, str(path), query],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_a_new_process_recalls_without_building(imported: tuple[Path, list[str]]) -> None:
    path, texts = imported
    before = index_state(path)
    assert len(before) == 3  # watermark, tantivy's meta and one vector file
    found = recall_elsewhere(path, texts[123])
    assert found == {"lexical": texts[123], "vector": texts[123], "served": [True, True]}
    assert index_state(path) == before


def test_a_small_write_after_an_import_builds_nothing(imported: tuple[Path, list[str]]) -> None:
    path, texts = imported
    before = index_state(path)
    steps: list[Step] = []
    with Memex.open(path, **SMALL) as mx:
        mx.recall(texts[0])  # the indexes are open, as in a running server
        new = mx.remember_many(
            [{"content": "a pangolin naps in the quarry"}], progress=steps.append
        )
        mx.remember("a narwhal reads by the lantern")
        assert index_state(path) == before  # no tantivy commit, no vector file written
        assert mx.recall("pangolin naps", 1, mode="lexical")[0].memory.id == new[0].id
        assert mx.recall(new[0].content, 1, mode="vector")[0].memory.id == new[0].id
    assert set(by_stage(steps)) == {"embedding"}
    assert recall_elsewhere(path, "a narwhal reads by the lantern")["lexical"] == (
        "a narwhal reads by the lantern"
    )


def test_build_indexes_catches_up_any_lag_and_then_has_nothing_to_do(
    imported: tuple[Path, list[str]],
) -> None:
    path, _ = imported
    with Memex.open(path, **SMALL) as mx:
        memory = mx.remember("a walrus counts the pebbles")
        mx.update(mx.list(limit=1, order="asc").items[0].id, content="a heron guards the dune")
        assert marks(path) == (700, ["700.0.npz"])
        steps: list[Step] = []
        mx.build_indexes(progress=steps.append)
        stages = by_stage(steps)
        assert {s: found[-1].total for s, found in stages.items()} == {
            "indexing full text": 2,  # one new memory, one changed
            "indexing vectors": 2,
            "saving vector index": 1,
        }
        assert all(counts_up(found) for found in stages.values())
        assert marks(path) == (701, ["701.1.npz"])
        again: list[Step] = []
        state = index_state(path)
        mx.build_indexes(progress=again.append)
        assert again == [] and index_state(path) == state
    found = recall_elsewhere(path, "a walrus counts the pebbles")
    assert found["lexical"] == found["vector"] == memory.content


def test_a_batch_builds_only_what_lags_beyond_the_tail(
    imported: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = imported
    monkeypatch.setattr(fulltext, "TAIL_ROWS", 100)
    monkeypatch.setattr(vectors, "REPLAY_MIN", 100)
    with Memex.open(path, **SMALL) as mx:
        steps: list[Step] = []
        mx.remember_many(({"content": t} for t in sentences(99, seed=2)), progress=steps.append)
        assert set(by_stage(steps)) == {"embedding"}
        assert marks(path) == (700, ["700.0.npz"])
        steps.clear()
        mx.remember("one more makes a hundred new memories")
        assert marks(path) == (800, ["800.0.npz"])  # a query would have caught up as much
        mx.remember_many(({"content": t} for t in sentences(150, seed=3)), progress=steps.append)
        stages = by_stage(steps)
        assert {s: found[-1].total for s, found in stages.items()} == {
            "embedding": 150,
            "indexing full text": 150,
            "indexing vectors": 150,
            "saving vector index": 1,
        }
        assert marks(path) == (950, ["950.0.npz"])


def test_a_reindex_builds_the_new_vector_index(imported: tuple[Path, list[str]]) -> None:
    path, texts = imported
    old = {p.name for p in ann_files(path)}
    steps: list[Step] = []
    with Memex.open(path, **SMALL) as mx:
        assert mx.reindex("wordllama", progress=steps.append) == 700
    stages = by_stage(steps)
    assert list(stages) == [s for s in STAGES if s != "indexing full text"]  # text unchanged
    assert all(counts_up(stages[s]) for s in STAGES[2:])
    assert stages["indexing vectors"][-1].total == 700
    assert len({p.name for p in ann_files(path)} - old) == 1  # the new epoch's file
    assert recall_elsewhere(path, texts[9])["vector"] == texts[9]


@pytest.mark.parametrize(
    ("unsaved", "size", "due"),
    [
        (0, 0, False),  # nothing to save
        (0, 500, False),
        (500, 500, True),  # never saved: all of it
        (499, 500, False),
        (9_999, 60_000, False),  # a tenth is 6,000, but at least 10,000
        (10_000, 60_000, True),
        (99_999, 1_000_000, False),  # a tenth
        (100_000, 1_000_000, True),
        (700, 300, True),  # more changes than vectors (after purges)
    ],
)
def test_when_a_vector_index_is_saved(unsaved: int, size: int, due: bool) -> None:
    assert vectors.save_due(unsaved, size) is due


class CancelError(Exception):
    """Raised by a progress callback, as a user cancelling would."""


def interrupt_at(stage: str, done: int) -> Callable[[Step], None]:
    def report(step: Step) -> None:
        if step.stage == stage and step.done >= done:
            raise CancelError(stage)

    return report


@pytest.mark.parametrize("stage", ["indexing full text", "indexing vectors"])
def test_an_interrupted_build_leaves_the_store_and_the_previous_index_usable(
    imported: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    path, texts = imported
    monkeypatch.setattr(fulltext, "TAIL_ROWS", 100)
    monkeypatch.setattr(vectors, "REPLAY_MIN", 100)
    monkeypatch.setattr(fulltext_write, "_BATCH", 50)
    monkeypatch.setattr(vectors, "_CHUNK", 50)
    before = index_state(path)
    added = sentences(300, seed=4)
    with Memex.open(path, **SMALL) as mx:
        with pytest.raises(CancelError):
            mx.remember_many(({"content": t} for t in added), progress=interrupt_at(stage, 100))
        assert mx.stats().memories == 1_000  # the batch was stored before the build
        if stage == "indexing vectors":
            assert marks(path)[0] == 1_000  # the full-text index was built first
        else:
            assert index_state(path) == before
        assert {f.name for f in ann_files(path)} == {
            p.rsplit("/")[-1] for p in before if "npz" in p
        }
        for text in (texts[5], added[5], added[250]):
            assert mx.recall(text, 1, mode="lexical")[0].memory.content == text
            assert mx.recall(text, 1, mode="vector")[0].memory.content == text
    with Memex.open(path, **SMALL) as mx:
        mx.build_indexes()
        store = store_of(mx)
        index = store._fulltext._index
        assert index is not None and index.searcher().num_docs == 1_000  # nothing twice
        vector_index = store._vector_index()
        assert vector_index is not None
        ivf = vector_index._tenants["default"].ivf
        assert ivf is not None and ivf.size == 1_000
    assert marks(path) == (1_000, ["1000.0.npz"])
    assert recall_elsewhere(path, added[299])["vector"] == added[299]


CHILD_IMPORTS = textwrap.dedent(
    """
    import random, sys
    from memex import Memex
    from memex.storage.sqlite import fulltext, fulltext_write, vectors

    fulltext.TAIL_ROWS, vectors.REPLAY_MIN = 100, 100  # every batch builds
    fulltext_write._BATCH = vectors._CHUNK = 50
    with Memex.open(sys.argv[1], lexical_index_min=50, ann_min_vectors=200) as mx:
        print("ready", flush=True)
        while True:
            rng = random.Random()
            words = "harbour lantern meadow orchard pebble quarry ribbon saddle".split()
            mx.remember_many(
                {"content": " ".join(rng.choices(words, k=8)) + f" {rng.random()}"}
                for _ in range(300)
            )
    """
)


@pytest.mark.slow
def test_a_build_killed_midway_leaves_the_store_and_the_index_usable(
    imported: tuple[Path, list[str]], kill_midway: Callable[..., None]
) -> None:
    path, texts = imported
    kill_midway([CHILD_IMPORTS, str(path)], "ready")
    with Memex.open(path, **SMALL) as mx:
        store = store_of(mx)
        live = store._run(lambda c: c.execute("SELECT count(*) FROM memories").fetchone()[0])
        assert live > 700 and live % 300 == 100  # whole batches only
        for text in random.Random(7).sample(texts, 10):
            assert mx.recall(text, 1, mode="lexical")[0].memory.content == text
            assert mx.recall(text, 1, mode="vector")[0].memory.content == text
        mx.build_indexes()
        index = store._fulltext._index
        assert index is not None and index.searcher().num_docs == live  # nothing lost or twice
        vector_index = store._vector_index()
        assert vector_index is not None
        ivf = vector_index._tenants["default"].ivf
        assert ivf is not None and ivf.size == live
        newest = mx.list(limit=1).items[0]
        assert mx.recall(newest.content, 1, mode="lexical")[0].memory.id == newest.id


CHILD_RECALLS_AND_DIES = textwrap.dedent(
    """
    import os, sys
    from memex import Memex

    mx = Memex.open(sys.argv[1], lexical_index_min=50, ann_min_vectors=200)
    mx.recall(sys.argv[2])
    os._exit(0)  # killed before close: what the recall built must already be saved
    """
)


def test_a_recall_that_builds_saves_what_it_built(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    texts = sentences(700, seed=1)
    with Memex.open(path, lexical_index_min=10**9, ann_min_vectors=10**9) as mx:
        mx.import_lines(lines(texts))  # by a process for which the store is small
    assert index_state(path) == {}
    done = subprocess.run(
        [sys.executable, "-c", CHILD_RECALLS_AND_DIES, str(path), texts[3]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    built = index_state(path)
    assert marks(path) == (700, ["700.0.npz"])
    found = recall_elsewhere(path, texts[42])
    assert found == {"lexical": texts[42], "vector": texts[42], "served": [True, True]}
    assert index_state(path) == built

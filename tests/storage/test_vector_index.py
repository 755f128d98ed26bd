"""SQLite-specific: the approximate vector index agrees with an exact scan, is kept in step
with the table across handles and processes, and is rebuilt when lost, stale or broken."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from memex import Memex, Settings
from memex.storage.sqlite import ann
from memex.storage.sqlite.store import SQLiteStore

WORDS = (  # noqa: SIM905
    "garden piano river kitchen train guitar winter coffee mountain painting dog cat "
    "bicycle museum school hospital camera recipe festival library ocean forest city "
    "market wedding birthday concert football marathon novel poetry science history "
    "holiday airport bakery chess yoga beach island castle village farm bridge tower "
    "sunrise storm garden rose tulip violin drums camping hiking sailing skiing swimming "
    "teacher doctor nurse engineer artist chef pilot farmer writer student friend family "
    "sister brother mother father grandmother neighbour colleague adoption support group"
).split()
APPROXIMATE = Settings(ann_min_vectors=2_000)
EXACT = Settings(ann_min_vectors=10**9)


TOPICS = [random.Random(t).sample(WORDS, 8) for t in range(60)]


def sentences(count: int, seed: int) -> list[str]:
    """Topical sentences: memories cluster by subject, as real ones do."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        topic = rng.choice(TOPICS)
        words = rng.choices(topic, k=rng.randint(4, 8)) + rng.choices(WORDS, k=rng.randint(2, 4))
        rng.shuffle(words)
        out.append(" ".join(words) + f" #{seed}-{i}")
    return out


def fill(path: Path, count: int, seed: int = 1) -> list[str]:
    texts = sentences(count, seed)
    with Memex.open(path, EXACT) as mx:
        for start in range(0, count, 2_000):
            mx.remember_many(
                {"content": t, "scope": {"project": f"p{i % 3}"}}
                for i, t in enumerate(texts[start : start + 2_000], start)
            )
    return texts


def top_ids(mx: Memex, query: str, k: int = 10, **kw: object) -> list[str]:
    return [h.memory.id for h in mx.recall(query, k, mode="vector", **kw)]  # type: ignore[arg-type]


def index_files(path: Path) -> list[Path]:
    return sorted((path.parent / (path.name + ".ann")).glob("*.npz"))


def is_approximate(mx: Memex) -> bool:
    store = mx._engine.store
    assert isinstance(store, SQLiteStore)
    index = store._vector_index()
    return index is not None and index.approximate("default")


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("ann") / "memex.db"
    return path, fill(path, 20_000)


def test_approximate_index_finds_what_an_exact_scan_finds(
    big_store: tuple[Path, list[str]],
) -> None:
    path, _ = big_store
    queries = sentences(100, seed=99)
    with Memex.open(path, EXACT) as exact, Memex.open(path, APPROXIMATE) as approx:
        agree = total = 0
        for q in queries:
            truth = top_ids(exact, q)
            agree += len(set(truth) & set(top_ids(approx, q)))
            total += len(truth)
        scoped = [
            (
                top_ids(exact, q, scope={"project": "p1"}),
                top_ids(approx, q, scope={"project": "p1"}),
            )
            for q in queries[:30]
        ]
        assert is_approximate(approx) and not is_approximate(exact)
    assert agree / total >= 0.95
    scoped_recall = sum(len(set(t) & set(a)) for t, a in scoped) / sum(len(t) for t, _ in scoped)
    assert scoped_recall >= 0.95
    assert index_files(path), "the built index is saved beside the store"


def test_index_file_is_loaded_and_caught_up_not_rebuilt(
    big_store: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, texts = big_store
    with Memex.open(path, APPROXIMATE) as mx:
        mx.recall(texts[0], mode="vector")
    saved = index_files(path)
    assert len(saved) == 1
    # Meanwhile a handle that never touches index files adds, changes and purges.
    added = sentences(50, seed=7)
    with Memex.open(path, EXACT) as writer:
        new = writer.remember_many({"content": t} for t in added)
        victim = writer.recall(texts[5], mode="vector")[0].memory
        writer.purge(victim.id)
        changed = writer.recall(texts[6], mode="vector")[0].memory
        writer.update(changed.id, content="a lighthouse keeper collects glass floats")

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the index was rebuilt instead of caught up")

    monkeypatch.setattr(ann.IvfIndex, "train", no_training)
    with Memex.open(path, APPROXIMATE) as mx:
        assert top_ids(mx, added[3], 1) == [new[3].id]
        assert victim.id not in top_ids(mx, texts[5], 20)
        assert top_ids(mx, "a lighthouse keeper collects glass floats", 1) == [changed.id]
        assert is_approximate(mx)


def test_missing_or_broken_index_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    texts = fill(path, 3_000)
    with Memex.open(path, APPROXIMATE) as mx:
        before = top_ids(mx, texts[10])
    (file,) = index_files(path)
    file.write_bytes(b"not an index")
    with Memex.open(path, APPROXIMATE) as mx:
        assert top_ids(mx, texts[10]) == before
    assert index_files(path) and index_files(path)[0].stat().st_size > 1000
    for f in index_files(path):
        f.unlink()
    with Memex.open(path, APPROXIMATE) as mx:
        assert top_ids(mx, texts[10]) == before
        assert is_approximate(mx)


def test_index_file_of_another_store_at_the_same_path_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    texts = fill(path, 3_000, seed=1)
    with Memex.open(path, APPROXIMATE) as mx:
        mx.recall(texts[0], mode="vector")
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    others = fill(path, 3_000, seed=2)
    with Memex.open(path, APPROXIMATE) as mx:
        hit = mx.recall(others[42], mode="vector")[0]
        assert hit.memory.content == others[42]


CHILD = textwrap.dedent(
    """
    import sys
    from memex import Memex, Settings
    sys.path.insert(0, sys.argv[2])
    from test_vector_index import sentences
    mx = Memex.open(sys.argv[1], Settings(ann_min_vectors=2_000))
    store = mx._engine.store
    round = 0
    while True:
        round += 1
        mx.remember_many({"content": t} for t in sentences(300, seed=1000 + round))
        mx.recall("garden piano river", mode="vector")
        store._vector_index().save()
        print("saved", round, flush=True)
    """
)


@pytest.mark.slow
def test_index_survives_being_killed_mid_write(
    tmp_path: Path, kill_midway: Callable[..., None]
) -> None:
    path = tmp_path / "memex.db"
    fill(path, 2_500)
    kill_midway([CHILD, str(path), str(Path(__file__).parent)], "saved")
    with Memex.open(path, APPROXIMATE) as mx:
        store = mx._engine.store
        assert isinstance(store, SQLiteStore)
        index = store._vector_index()
        assert index is not None
        stored = store._run(lambda c: c.execute("SELECT count(*) FROM vectors").fetchone()[0])
        assert store._run(lambda c: index.count(c, "default")) == stored
        assert is_approximate(mx)
        ivf = index._tenants["default"].ivf
        assert ivf is not None and ivf.size == stored  # nothing lost, nothing twice
        everything = mx.list(limit=1000).items
        for memory in random.Random(6).sample(everything, 20):
            assert memory.id in top_ids(mx, memory.content, 5)


def test_index_that_cannot_be_saved_still_serves_recall(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    texts = fill(path, 3_000)
    (tmp_path / "memex.db.ann").write_text("a file where the index folder would go")
    with Memex.open(path, APPROXIMATE) as mx:
        assert top_ids(mx, texts[10], 1)[0] == mx.recall(texts[10], mode="vector")[0].memory.id
        assert texts[10] in [h.memory.content for h in mx.recall(texts[10], mode="vector")]
        assert is_approximate(mx)
    assert (tmp_path / "memex.db.ann").is_file()  # nothing of ours replaced it

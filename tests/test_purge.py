"""Purge means gone: after a purge no file of the store (the database, its write-ahead
log and shared memory, the full-text and vector index folders) holds the purged text or
any word of it, saved contexts that showed it are dropped, and what else the store
holds is untouched."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tantivy

from memex import Memex, Memory, NotFoundError
from memex.context.api import context_state

CANARY = "zq7canaryx41"
SECRET = f"The vault combination is {CANARY}, never write it down"
SECOND = "The alarm code for the side door is qx9beaconm27"
WORDS = {SECRET: [CANARY, "vault"], SECOND: ["qx9beaconm27", "alarm"]}
"""Per secret: a distinctive token, and a word no other memory of the tests holds."""
TOPICS = ["garden", "kitchen", "bicycle", "harbour", "library", "orchard"]
SMALL = {"lexical_index_min": 10, "ann_min_vectors": 40}


def background(count: int) -> list[str]:
    return [f"note {i} about the {TOPICS[i % len(TOPICS)]} and its upkeep" for i in range(count)]


def files_of(path: Path) -> Iterator[Path]:
    """Every file the store owns: the database, -wal, -shm and the index folders."""
    for candidate in sorted(path.parent.iterdir()):
        if candidate.name.startswith(path.name):
            if candidate.is_dir():
                yield from (f for f in sorted(candidate.rglob("*")) if f.is_file())
            else:
                yield candidate


def traces(path: Path, secret: str = SECRET) -> dict[str, list[bytes]]:
    """Files of the store holding the secret, its words, or the tantivy terms for them.

    tantivy compresses its term dictionary, so a byte scan cannot see a term there:
    the index itself is asked too (a deleted document's terms still count).
    """
    token, word = WORDS[secret]
    needles = [secret.encode(), token.encode(), token[2:].encode(), word.encode()]
    found: dict[str, list[bytes]] = {}
    for file in files_of(path):
        data = file.read_bytes()
        hits = [n for n in needles if n in data]
        if hits:
            found[str(file.relative_to(path.parent))] = hits
    folder = path.with_name(path.name + ".lexical")
    if (folder / "meta.json").exists():
        searcher = tantivy.Index.open(str(folder)).searcher()
        if searcher.doc_freq("text", token) or searcher.doc_freq("text", word):
            found[folder.name] = [b"tantivy term"]
        # The searcher sees listed segments only: no other segment's files may remain.
        meta = json.loads((folder / "meta.json").read_text())
        listed = {s["segment_id"].replace("-", "") for s in meta["segments"]}
        files = {f.name.split(".")[0] for f in folder.iterdir() if not f.name.startswith(".")}
        if files - listed - {"meta", "watermark"}:
            found.setdefault(folder.name, []).append(b"unlisted segment files")
    return found


def show(mx: Memex, memory: Memory, session: str) -> None:
    """Assemble a context for ``session`` that shows ``memory``."""
    context = mx.context("vault combination", 2000, session=session)
    assert memory.id in {m.id for s in context.sections for m in s.memories}


def test_purge_leaves_no_trace_in_any_file(tmp_path: Path) -> None:
    path = tmp_path / "store" / "memex.db"
    with Memex.open(path, **SMALL) as mx:
        mx.remember_many({"content": t} for t in background(60))
        secret = mx.remember(SECRET)
        second = mx.remember(SECOND)
        mx.remember_many({"content": t} for t in background(60)[::-1])
        for session in ("s1", "s2"):
            show(mx, secret, session)
        other = mx.context("bicycle upkeep", 300, session="s3")
        assert secret.id not in {m.id for s in other.sections for m in s.memories}
        assert mx.recall(CANARY, 1, mode="lexical")[0].memory.id == secret.id
        assert mx.recall("vault", 1, mode="vector")[0].memory.id == secret.id
        mx.build_indexes()  # the secret in the full-text folder and the vector index files
        mx.close()
    before = traces(path)  # the scan finds what a purge must remove
    assert SECRET.encode() in before["memex.db"] and before["memex.db.lexical"]
    assert path.with_name(path.name + ".ann").is_dir()

    with Memex.open(path, **SMALL) as mx:
        assert mx.recall(CANARY, 1, mode="lexical")[0].memory.id == secret.id
        mx.purge(secret.id)
        assert traces(path) == {}  # while the store is open: the WAL holds none of it
        assert mx.recall(CANARY, 5, mode="lexical") == []
        with pytest.raises(NotFoundError):
            mx.history(secret.id)
        # Other memories are still recalled, from the rewritten index too.
        assert len(mx.recall("bicycle upkeep", 5, mode="lexical")) == 5
        assert mx.context("vault combination", 2000, session="s1").prefix_tokens_reused is None
        assert mx.context("bicycle upkeep", 300, session="s3").prefix_tokens_reused
        assert traces(path, SECOND)  # the other secret is still there, in every index
        mx.purge(second.id)  # a second purge scrubs as thoroughly as the first
        assert traces(path, SECOND) == {}
    assert traces(path) == {} and traces(path, SECOND) == {}
    with Memex.open(path, **SMALL) as mx:
        assert mx.stats().memories == 120
        assert len(mx.recall("garden", 5, mode="lexical")) == 5


def test_a_reader_on_an_old_snapshot_does_not_hold_up_a_purge(tmp_path: Path) -> None:
    """The log cannot be truncated while another connection reads what it holds; the
    purge returns at once anyway, and the next write (or close) truncates it."""
    path = tmp_path / "memex.db"
    with Memex.open(path, busy_timeout=30) as mx:
        mx.remember_many({"content": t} for t in background(20))
        secret = mx.remember(SECRET)
        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM memories").fetchone()
        started = time.monotonic()
        mx.purge(secret.id)
        assert time.monotonic() - started < 10
        wal = path.with_name(path.name + "-wal")
        assert CANARY.encode() in wal.read_bytes()  # the reader's snapshot needs it
        reader.rollback()
        mx.remember("one more note")
        assert CANARY.encode() not in wal.read_bytes()
        assert traces(path) == {}
        reader.close()


def test_a_busy_full_text_index_is_removed_rather_than_left_with_the_text(
    tmp_path: Path,
) -> None:
    """Another process holds the tantivy index's writer: the purge removes the folder
    (it is derived data, rebuilt when next needed) instead of leaving the terms in it."""
    path = tmp_path / "memex.db"
    folder = path.with_name(path.name + ".lexical")
    with Memex.open(path, lexical_index_min=10, busy_timeout=0.5) as mx:
        mx.remember_many({"content": t} for t in background(30))
        secret = mx.remember(SECRET)
        assert mx.recall(CANARY, 1, mode="lexical")[0].memory.id == secret.id
        mx.build_indexes()  # the secret in the full-text index
        assert traces(path)[folder.name]
        mx.close()
    with Memex.open(path, lexical_index_min=10, busy_timeout=0.5) as mx:
        holder = tantivy.Index.open(str(folder)).writer(16_000_000, 1)
        mx.purge(secret.id)
        del holder
        assert traces(path) == {}
        assert len(mx.recall("garden upkeep", 5, mode="lexical")) == 5
        assert (folder / "meta.json").exists()  # rebuilt by that recall


def test_purge_drops_only_the_contexts_that_showed_the_memory(mx: Memex) -> None:
    keep = mx.remember("the garden needs water every morning", scope={"project": "p"})
    gone = mx.remember(SECRET)
    show(mx, gone, "a")
    mx.context("garden water", 2000, session="b", scope={"project": "p"})
    mx.purge(gone.id)
    assert mx.context("garden water", 2000, session="a").prefix_tokens_reused is None
    again = mx.context("garden water", 2000, session="b", scope={"project": "p"})
    assert again.prefix_tokens_reused
    assert keep.id in {m.id for s in again.sections for m in s.memories}


def test_caches_in_memory_forget_the_purged_memory(mx: Memex) -> None:
    gone = mx.remember(SECRET, tags=["pinned"])
    context = mx.context(CANARY, 2000)
    assert SECRET in context.text
    assert len(context_state(mx._engine).cache) and mx._engine.embedding.query_cache
    mx.purge(gone.id)
    assert len(context_state(mx._engine).cache) == 0 and not mx._engine.embedding.query_cache
    assert SECRET not in mx.context(CANARY, 2000).text


def test_purges_from_several_threads_all_complete(mx: Memex) -> None:
    """Each purge takes the write lock in turn; none fails on another's scrubbing."""
    made = mx.remember_many({"content": t} for t in background(10))
    errors: list[BaseException] = []

    def purge(memory: Memory) -> None:
        try:
            mx.purge(memory.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=purge, args=(m,)) for m in made[:4]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and mx.stats().memories == 6


KILLED_PURGE = textwrap.dedent(
    """
    import sys
    import memex.storage.sqlite.store as store
    from memex import Memex

    def killed_here(conn, busy_ms):
        print("ready", flush=True)
        sys.stdin.readline()

    store.truncate_wal = killed_here  # the process dies right after the purge commits
    mx = Memex.open(sys.argv[1], lexical_index_min=10)
    mx.update(sys.argv[2], importance=0.9)  # the secret's page goes to the log again
    mx.purge(sys.argv[2])
    """
)


def test_a_purge_killed_before_scrubbing_is_scrubbed_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    with Memex.open(path, lexical_index_min=10) as mx:
        mx.remember_many({"content": t} for t in background(30))
        secret = mx.remember(SECRET)
        assert mx.recall(CANARY, 1, mode="lexical")[0].memory.id == secret.id
        mx.build_indexes()  # the secret in the full-text index
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_PURGE, str(path), secret.id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert child.stdout is not None
    assert child.stdout.readline().startswith("ready"), child.stderr
    child.send_signal(signal.SIGKILL)
    child.communicate()
    left = traces(path)
    assert "memex.db-wal" in left and "memex.db.lexical" in left, left
    with Memex.open(path, lexical_index_min=10, read_only=True) as mx:  # cannot scrub
        with pytest.raises(NotFoundError):
            mx.get(secret.id)
        assert len(mx.recall("garden upkeep", 5, mode="lexical")) == 5
    assert traces(path) == left
    with Memex.open(path, lexical_index_min=10) as mx:
        assert traces(path) == {}
        with pytest.raises(NotFoundError):
            mx.get(secret.id)
        assert len(mx.recall("garden upkeep", 5, mode="lexical")) == 5


def test_a_context_assembled_across_a_purge_is_not_saved(mx: Memex) -> None:
    """Sections loaded before the purge, rendered and saved after it (as another process
    would): the saved context would outlive the purge, so it is not kept."""
    mx.remember("the garden needs water every morning")
    gone = mx.remember(SECRET)
    show(mx, gone, "a")
    assembly = mx.context_iter("vault combination", 2000, session="a")
    assert gone.id in {m.id for s in assembly for m in s.memories}  # loaded: before
    mx.purge(gone.id)
    assert SECRET in assembly.result().text  # the caller's copy, read before the purge
    store = mx._engine.store
    assert store.last_context(mx.scope, "#a", "")[0] is None
    assert mx.context("garden", 2000, session="a").prefix_tokens_reused is None
    assert store.last_context(mx.scope, "#a", "")[0] is not None  # later contexts are kept


def test_indexes_built_by_the_write_path_are_scrubbed(tmp_path: Path) -> None:
    """A batch large enough builds the full-text index and saves the vector index as it
    is written; a purge rewrites what that build wrote, in this process or the next."""
    path = tmp_path / "memex.db"
    with Memex.open(path, **SMALL) as mx:
        made = mx.remember_many({"content": t} for t in [SECRET, *background(60)])
        assert traces(path)["memex.db.lexical"]  # indexed by the write, not by a query
        assert path.with_name(path.name + ".ann").is_dir()
    with Memex.open(path, **SMALL) as mx:
        mx.purge(made[0].id)
        assert traces(path) == {}
        assert mx.recall(CANARY, 5, mode="lexical") == []
        assert len(mx.recall("garden upkeep", 5, mode="lexical")) == 5


def test_a_snapshot_waiting_to_be_written_is_dropped_by_a_purge(tmp_path: Path) -> None:
    """A session's context saved while another process held the store waits in memory;
    a purge of a memory it shows drops it, so it is neither used nor written later."""
    path = tmp_path / "memex.db"
    with Memex.open(path, access_flush_seconds=3600) as mx:
        mx.remember("the garden needs water every morning")
        gone = mx.remember(SECRET)
        other = sqlite3.connect(path)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the store
        context = mx.context("vault combination", 2000, session="a")
        assert gone.id in {m.id for s in context.sections for m in s.memories}
        assert context.stats["session_snapshot"] == "pending"
        other.rollback()
        other.close()
        mx.purge(gone.id)
        assert mx.context("vault combination", 2000, session="a").prefix_tokens_reused is None
    with Memex.open(path) as mx:
        assert mx._engine.store.last_context(mx.scope, "#a", "")[0] is not None
        assert SECRET.encode() not in path.read_bytes()


def test_a_restore_over_a_purged_store_is_scrubbed_by_its_own_purges(tmp_path: Path) -> None:
    """The full-text watermark counts purges, and a restored store counts its own: a
    backup from before a purge brings the memory back, and purging it again must rewrite
    the index, though the restored store has no more purges than the index saw."""
    path, copy = tmp_path / "memex.db", tmp_path / "before.db"
    with Memex.open(path, **SMALL) as mx:
        made = mx.remember_many({"content": t} for t in [SECRET, *background(60)])
        mx.backup(copy)
        mx.purge(made[0].id)
        assert traces(path) == {}
        assert Memex.restore(copy, path, force=True, **SMALL) == 61
        assert mx.recall(CANARY, 1, mode="lexical")[0].memory.id == made[0].id
        mx.build_indexes()
        assert traces(path)["memex.db.lexical"]  # the restored memory is indexed again
        mx.purge(made[0].id)
        assert traces(path) == {}
    assert traces(path) == {}

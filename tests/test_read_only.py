"""Read-only stores: asked for, or forced by a file system this process cannot write.

Reads (get, list, range, recall, context, history, stats, export) work; writes raise
StoreReadOnlyError naming the store; no access statistics or session snapshots are
written; derived indexes that cannot be written fall back instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import textwrap
from pathlib import Path

import namespaces
import pytest

from memex import Memex, Settings, StoreError, StoreReadOnlyError
from memex.storage.sqlite.migrate import LATEST, upgrade

SMALL_INDEXES = Settings(lexical_index_min=100, ann_min_vectors=200)
TOPICS = ["harbor", "granite", "violin", "orchard", "glacier", "lantern", "meadow", "comet"]
NEEDLE = "The lighthouse keeper on Skerry island logs every fog horn blast"
NEEDLE_QUERY = "lighthouse keeper fog horn"


def seed(path: Path) -> dict[str, object]:
    """A store large enough for both derived indexes, with what a writable handle reads."""
    with Memex.open(path, SMALL_INDEXES) as mx:
        mx.remember_many(
            {
                "content": f"note {i} about the {TOPICS[i % 8]} and the {TOPICS[(i * 3) % 8]}",
                "kind": "fact" if i % 3 else "note",
            }
            for i in range(300)
        )
        needle = mx.remember(NEEDLE, kind="fact", tags=["pinned"])
        hits = [h.memory.id for h in mx.recall("granite harbor", 10)]
        context = mx.context(NEEDLE_QUERY, 600, session="s1")
        return {"needle": needle.id, "hits": hits, "context": context.text}


READER = textwrap.dedent(
    """
    import json, sys
    from memex import Memex, Settings, StoreReadOnlyError

    path, needle_query = sys.argv[1], sys.argv[2]
    out = {}
    with Memex.open(path, Settings(lexical_index_min=100, ann_min_vectors=200)) as mx:
        store = mx._engine.store
        out["read_only"] = mx.read_only
        out["needle"] = [h.memory.id for h in mx.recall(needle_query, 3)]
        out["hits"] = [h.memory.id for h in mx.recall("granite harbor", 10)]
        out["tantivy"] = store._fulltext._index is not None
        out["approximate"] = store._vector_index().approximate("default")
        out["got"] = mx.get(out["needle"][0]).content
        context = mx.context(needle_query, 600, session="s1")
        out["context"] = context.text
        out["reused"] = context.prefix_tokens_reused
        out["snapshot"] = context.stats["session_snapshot"]
        out["stats"] = mx.stats().memories
        out["listed"] = len(mx.list(limit=1000).items)
        out["exported"] = sum(1 for _ in mx.iter_all())
        out["history"] = len(mx.history(out["needle"][0]))
        try:
            mx.remember("this cannot be written")
            out["remember"] = "written"
        except StoreReadOnlyError as exc:
            out["remember"] = str(exc)
    print(json.dumps(out))
    """
)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("indexes", ["kept", "deleted"])
def test_a_store_on_a_read_only_file_system_serves_every_read(tmp_path: Path, indexes: str) -> None:
    namespaces.require()
    folder = tmp_path / "store"
    path = folder / "memex.db"
    seen = seed(path)
    lexical, ann = folder / "memex.db.lexical", folder / "memex.db.ann"
    assert lexical.is_dir() and ann.is_dir()
    if indexes == "deleted":
        shutil.rmtree(lexical)
        shutil.rmtree(ann)
    before = file_digest(path)

    out = namespaces.run_python(READER, path, NEEDLE_QUERY, read_only=folder)

    assert out["read_only"] == "it is on a read-only file system"
    assert out["needle"][0] == seen["needle"]
    assert out["got"] == NEEDLE
    assert out["stats"] == out["listed"] == out["exported"] == 301
    assert out["history"] == 1
    if indexes == "kept":  # the same context as a writable handle's
        assert out["context"] == seen["context"]
    else:  # FTS5 and an exact scan may order this corpus's many ties differently
        stable = seen["context"].split("## Relevant memories")[0]
        assert out["context"].startswith(stable) and NEEDLE in out["context"]
    assert out["reused"] is not None and out["reused"] > 0  # s1's saved snapshot is read
    assert out["snapshot"] == "read-only"
    assert out["remember"] == (
        f"store {path} is read-only (it is on a read-only file system); nothing was written"
    )
    # Kept indexes are searched (the full-text one from a private copy, since tantivy
    # needs lock files); deleted ones fall back to FTS5 and an index built in memory.
    assert out["tantivy"] is (indexes == "kept")
    assert out["approximate"] is True
    if indexes == "kept":
        assert out["hits"] == seen["hits"]
    assert file_digest(path) == before
    assert lexical.exists() is (indexes == "kept")


def test_read_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    seen = seed(path)
    with Memex.open(path) as mx:
        counts_before = mx.get(str(seen["needle"])).access_count
    before = file_digest(path)

    with Memex.open(path, SMALL_INDEXES, read_only=True) as mx:
        assert mx.read_only == "opened read-only"
        needle = mx.recall(NEEDLE_QUERY, 3)[0].memory
        assert needle.id == seen["needle"]
        assert mx.get(needle.id).content == NEEDLE
        assert [h.memory.id for h in mx.recall("granite harbor", 10)] == seen["hits"]
        context = mx.context(NEEDLE_QUERY, 600, session="s1")
        assert context.text == seen["context"]
        assert context.prefix_tokens_reused is not None
        assert context.stats["session_snapshot"] == "read-only"
        assert mx.context(NEEDLE_QUERY, 600, session="new").stats["session_snapshot"] == (
            "read-only"
        )
        assert mx.stats().memories == len(mx.list(limit=1000).items) == 301
        assert mx.stats().read_only == "opened read-only"
        assert len(mx.range()) == 301 and len(mx.history(needle.id)) == 1
        assert mx._engine.access.flush() is True  # reads left nothing to write
        message = f"store {path} is read-only (opened read-only); nothing was written"
        writes = [
            lambda: mx.remember("no"),
            lambda: mx.remember_many([{"content": "no"}]),
            lambda: mx.import_lines(['{"content": "no"}']),
            lambda: mx.update(needle.id, content="no"),
            lambda: mx.supersede(needle.id, "no"),
            lambda: mx.forget(needle.id),
            lambda: mx.purge(needle.id),
            lambda: mx.unsupersede(needle.id),
            lambda: mx.expire(),
            lambda: mx.reindex(),
            lambda: mx.scoped(project="p").remember("no"),
        ]
        for write in writes:
            with pytest.raises(StoreReadOnlyError) as caught:
                write()
            assert str(caught.value) == message
    assert file_digest(path) == before  # no statistics, no session, nothing
    with Memex.open(path) as mx:
        assert mx.get(needle.id).access_count == counts_before + 1  # this get only
        rows = mx._engine.store._run(  # type: ignore[attr-defined]
            lambda c: c.execute("SELECT session FROM context_sessions").fetchall()
        )
        assert [r[0] for r in rows] == ["#s1"]


def test_read_only_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "memex.db"
    with Memex.open(path) as mx:
        mx.remember("written while writable")
    monkeypatch.setenv("MEMEX_READ_ONLY", "1")
    with Memex.open(path) as mx:
        assert mx.settings.read_only is True and mx.read_only == "opened read-only"
        assert mx.list().items[0].content == "written while writable"
        with pytest.raises(StoreReadOnlyError, match="read-only"):
            mx.remember("refused")
    monkeypatch.setenv("MEMEX_READ_ONLY", "0")
    with Memex.open(path) as mx:
        assert mx.read_only is None
        mx.remember("writable again")


def test_a_read_only_store_is_never_created_or_upgraded(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(StoreError) as caught:
        Memex.open(missing, read_only=True)
    assert str(caught.value) == f"no store at {missing} (a store opened read-only is not created)"
    assert not missing.exists()

    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    upgrade(conn, str(old), target=3)
    conn.close()
    with pytest.raises(StoreReadOnlyError) as refused:
        Memex.open(old, read_only=True)
    assert str(refused.value) == (
        f"store {old} has schema version 3 and needs an upgrade to {LATEST}, which cannot "
        "be done read-only (open it once with write access)"
    )
    conn = sqlite3.connect(old)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()


UNCHECKPOINTED = textwrap.dedent(
    """
    import json, sys
    from memex import Memex, StoreError

    try:
        with Memex.open(sys.argv[1]) as mx:
            out = {"read": mx.stats().memories}
    except StoreError as exc:
        out = {"error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out))
    """
)


def test_a_write_ahead_log_that_a_read_only_folder_cannot_open_is_refused(tmp_path: Path) -> None:
    """Reading the file without its WAL would silently miss memories: refuse instead."""
    namespaces.require()
    live = tmp_path / "live" / "memex.db"
    with Memex.open(live) as mx:
        mx.remember("only in the write-ahead log")
        copy = tmp_path / "copy"
        copy.mkdir()
        # A snapshot taken while a writer had the store open: the file and its WAL, no -shm.
        shutil.copy(live, copy / "memex.db")
        shutil.copy(f"{live}-wal", copy / "memex.db-wal")
        assert (copy / "memex.db-wal").stat().st_size > 0

    out = namespaces.run_python(UNCHECKPOINTED, copy / "memex.db", read_only=copy)
    assert out == {
        "error": "StoreReadOnlyError",
        "message": f"store {copy / 'memex.db'} cannot be read: its folder is read-only and "
        "memex.db-wal holds changes not yet in the store file (open it once with write access)",
    }
    # With a writable folder the same copy opens and loses nothing.
    with Memex.open(copy / "memex.db") as mx:
        assert mx.list().items[0].content == "only in the write-ahead log"


CLI_IN_A_READ_ONLY_FOLDER = textwrap.dedent(
    """
    import io, json, sys
    from memex.interfaces.cli.app import run

    store, memory_id = sys.argv[1], sys.argv[2]
    results = {}
    for name, args in {
        "get": ["get", memory_id],
        "recall": ["recall", "lighthouse keeper"],
        "context": ["context", "lighthouse", "--session", "s1", "--budget", "500"],
        "stats": ["stats", "--json"],
        "list": ["list"],
        "remember": ["remember", "cannot be written"],
        "forget": ["forget", memory_id],
    }.items():
        out, err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = out, err
        try:
            code = run([*args, "--store", store])
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        results[name] = [code, out.getvalue(), err.getvalue()]
    print(json.dumps(results))
    """
)


def test_every_read_command_works_in_a_read_only_folder(tmp_path: Path) -> None:
    namespaces.require()
    folder = tmp_path / "store"
    path = folder / "memex.db"
    seen = seed(path)
    out = namespaces.run_python(CLI_IN_A_READ_ONLY_FOLDER, path, seen["needle"], read_only=folder)
    for name in ("get", "recall", "context", "stats", "list"):
        code, stdout, stderr = out[name]
        assert code == 0 and stdout, (name, stderr)
    assert NEEDLE in out["get"][1] and NEEDLE.split()[1] in out["recall"][1]
    assert "read-only" in out["context"][2]  # the session snapshot is not saved, and says so
    assert json.loads(out["stats"][1])["read_only"] == "it is on a read-only file system"
    for name in ("remember", "forget"):
        code, stdout, stderr = out[name]
        assert code == 3 and stdout == "", name
        assert stderr.startswith("error: store ") and "read-only" in stderr
        assert len(stderr.splitlines()) == 1

"""A full disk is reported as such (StoreFullError, "no space left"), never as a corrupt
store; the failed write leaves nothing half-written, and the store still opens and reads."""

from __future__ import annotations

import textwrap
from pathlib import Path

import namespaces
import pytest

from memex import Memex, StoreFullError


def test_sqlite_full_is_reported_as_no_space_left(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    with Memex.open(path) as mx:
        first = mx.remember_many(
            {"content": f"kept {i} " + "words of a long note " * 30, "kind": "fact"}
            for i in range(20)
        )
        # SQLite's own SQLITE_FULL: the store may not grow past a few more pages. The
        # limit holds for this connection, the one this thread writes through.
        conn = mx._engine.store._conn()  # type: ignore[attr-defined]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        batch = [{"content": f"lost {i} " + "filler words " * 40} for i in range(300)]
        with pytest.raises(StoreFullError) as caught:
            mx.remember_many(batch)
        assert str(caught.value) == f"no space left on the device holding store {path}"
        assert mx.stats().memories == 20  # the whole batch or nothing
        assert [m.content for m in mx.iter_all()] == [m.content for m in first]
        # A context is a read: it is served even when its session snapshot has no room.
        context = mx.context("long note", 4000, session="s")
        assert context.stats["session_snapshot"] == "pending" and "kept 0" in context.text
        conn.execute("PRAGMA max_page_count = 4294967294")
        assert mx._engine.access.flush() is True  # written once there is room
        assert mx.context("long note", 4000, session="s").prefix_tokens_reused == context.tokens
        mx.remember_many(batch)
        assert mx.stats().memories == 320


FILL = textwrap.dedent(
    """
    import json, logging, os, shutil, sys
    from memex import Memex, Settings, StoreFullError

    warnings = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("memex").addHandler(handler)

    path = sys.argv[1]
    folder = os.path.dirname(path)
    settings = Settings(lexical_index_min=50, ann_min_vectors=10**9)
    # Room set aside now and given back at the end: how much the store's last writes
    # leave free depends on the sizes of its files, which this test does not fix.
    with open(os.path.join(folder, "ballast"), "wb") as fh:
        fh.write(bytes(256 * 1024))
    out = {"written": [], "error": None}
    mx = Memex.open(path, settings)
    try:
        for n in range(10_000):
            batch = [{"content": f"entry {n}-{i} " + "lorem ipsum dolor " * 12} for i in range(20)]
            out["written"] += [m.id for m in mx.remember_many(batch)]
    except StoreFullError as exc:
        out["error"] = str(exc)
    # Drop the derived full-text index (the writes built it while there was room) and
    # take what is left, so it cannot be built again: reads must fall back, not fail.
    shutil.rmtree(path + ".lexical", ignore_errors=True)
    fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError as exc:
        out["filler"] = exc.strerror
    os.close(fd)
    out["recall"] = len(mx.recall("lorem entry", 5))
    out["count"] = mx.stats().memories
    mx.close()

    with Memex.open(path, settings) as mx:  # the full device still holds a readable store
        out["reopened"] = mx.read_only
        out["ids"] = [m.id for m in mx.iter_all()]
        out["content"] = mx.get(out["written"][-1]).content
        out["recall again"] = len(mx.recall("lorem entry", 5))
    os.remove(os.path.join(folder, "filler"))
    os.remove(os.path.join(folder, "ballast"))
    with Memex.open(path, settings) as mx:  # with room again, writes work again
        mx.remember("written once there was room")
        out["after"] = mx.stats().memories
    out["warnings"] = warnings
    print(json.dumps(out))
    """
)


def test_a_full_file_system_says_no_space_left_and_loses_nothing(tmp_path: Path) -> None:
    namespaces.require()
    folder = tmp_path / "small"
    folder.mkdir()
    path = folder / "memex.db"

    out = namespaces.run_python(FILL, path, tmpfs=(folder, "2m"))

    assert out["error"] == f"no space left on the device holding store {path}"
    assert out["filler"] == "No space left on device"
    assert len(out["written"]) >= 100
    assert out["count"] == len(out["written"])  # the failed batch left nothing behind
    assert out["recall"] == out["recall again"] == 5
    assert out["ids"] == out["written"]
    assert out["content"].startswith("entry ")
    assert out["after"] == len(out["written"]) + 1
    # Reads still work when the device cannot even take SQLite's shared-memory file;
    # the store is open read-only, and says why.
    assert out["reopened"] in (None, "no space left on the device")
    assert any(
        "full-text index" in w and "no space left on the device" in w for w in out["warnings"]
    ), out["warnings"]


CLEAN_CLOSE_THEN_FULL = textwrap.dedent(
    """
    import json, os, sys
    from memex import Memex, StoreError

    path = sys.argv[1]
    with Memex.open(path) as mx:
        ids = [m.id for m in mx.remember_many({"content": f"note {i}"} for i in range(50))]
    out = {"files": sorted(os.listdir(os.path.dirname(path)))}
    fd = os.open(os.path.join(os.path.dirname(path), "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError:
        pass
    os.close(fd)
    with Memex.open(path) as mx:
        out["read_only"] = mx.read_only
        out["same"] = [m.id for m in mx.iter_all()] == ids
        out["recall"] = len(mx.recall("note", 3))
        try:
            mx.remember("one more")
        except StoreError as exc:
            out["write"] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))
    """
)


def test_a_store_on_a_full_device_opens_read_only(tmp_path: Path) -> None:
    """No room for the -shm file a writer needs (SQLite says "disk I/O error", which was
    once reported as a corrupt store): the store opens read-only and reads everything."""
    namespaces.require()
    folder = tmp_path / "small"
    folder.mkdir()
    path = folder / "memex.db"

    out = namespaces.run_python(CLEAN_CLOSE_THEN_FULL, path, tmpfs=(folder, "2m"))

    assert out["files"] == ["memex.db"]  # closed cleanly: no -wal, no -shm
    assert out["read_only"] == "no space left on the device"
    assert out["same"] is True and out["recall"] == 3
    assert out["write"] == [
        "StoreReadOnlyError",
        f"store {path} is read-only (no space left on the device); nothing was written",
    ]

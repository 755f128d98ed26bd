"""Exports and backups of read-only stores, restores refused by them, and exports that
follow the visibility rule (an expired memory is exported, a forgotten one is not)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from datetime import timedelta
from pathlib import Path

import namespaces
import pytest

from memex import Memex, StoreReadOnlyError
from memex.core.models import utcnow


def seed(path: Path) -> None:
    with Memex.open(path) as mx:
        mx.remember_many({"content": f"note {i} about the harbour"} for i in range(20))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_store_opened_read_only_is_copied_out_but_never_restored_into(tmp_path: Path) -> None:
    path = tmp_path / "store" / "memex.db"
    seed(path)
    before = digest(path)
    with Memex.open(path, read_only=True) as mx:
        assert mx.export(tmp_path / "out.jsonl") == 20
        assert mx.backup(tmp_path / "copy.db").memories == 20
        assert len(list(mx.export_lines(history=True))) == 20
    with pytest.raises(StoreReadOnlyError) as caught:
        Memex.restore(tmp_path / "copy.db", path, read_only=True, force=True)
    assert str(caught.value) == (
        f"store {path} is read-only (opened read-only); nothing was written"
    )
    assert digest(path) == before
    with Memex.open(tmp_path / "copy.db") as copy:
        assert copy.stats().memories == 20


ON_A_READ_ONLY_FILE_SYSTEM = textwrap.dedent(
    """
    import json, sys
    from memex import Memex, MemexError

    path, out = sys.argv[1], sys.argv[2]
    found = {}
    with Memex.open(path) as mx:
        found["read_only"] = mx.read_only
        found["exported"] = mx.export(out + "/out.jsonl")
        found["backed_up"] = mx.backup(out + "/copy.db").memories
    try:
        Memex.restore(out + "/copy.db", path, force=True)
        found["restore"] = "restored"
    except MemexError as exc:
        found["restore"] = [type(exc).__name__, str(exc)]
    print(json.dumps(found))
    """
)


def test_a_store_on_a_read_only_file_system_is_copied_out_but_never_restored_into(
    tmp_path: Path,
) -> None:
    namespaces.require()
    folder, out = tmp_path / "store", tmp_path / "out"
    path = folder / "memex.db"
    seed(path)
    out.mkdir()
    before = digest(path)
    found = namespaces.run_python(ON_A_READ_ONLY_FILE_SYSTEM, path, out, read_only=folder)
    assert found["read_only"] == "it is on a read-only file system"
    assert found["exported"] == found["backed_up"] == 20
    assert found["restore"] == [
        "StoreReadOnlyError",
        f"store {path} is read-only (it is on a read-only file system); nothing was written",
    ]
    assert digest(path) == before


def test_an_export_keeps_expired_memories_and_leaves_out_forgotten_ones(mx: Memex) -> None:
    """``expire`` records an expiry as ``deleted_at``; the memory is expired, not
    forgotten, so an export without ``include_deleted`` still carries it."""
    past = utcnow() - timedelta(days=2)
    expired = mx.remember("the old parking code", created_at=past, expires_at=past + timedelta(1))
    forgotten = mx.remember("a note to forget")
    kept = mx.remember("a note to keep")
    mx.forget(forgotten.id)
    assert mx.expire() == 1
    assert mx.history(expired.id)[-1].deleted_at is not None  # the expiry is recorded

    records = [json.loads(line) for line in mx.export_lines(history=True)]
    assert {r["id"] for r in records} == {expired.id, kept.id}
    assert {m.id for m in mx.iter_all()} == {expired.id, kept.id}
    everything = {json.loads(line)["id"] for line in mx.export_lines(include_deleted=True)}
    assert everything == {expired.id, forgotten.id, kept.id}


BACKUP_ONTO_A_FULL_DEVICE = textwrap.dedent(
    """
    import json, os, sys
    from memex import Memex, MemexError

    path, out = sys.argv[1], sys.argv[2]
    found = {}
    with Memex.open(path) as mx:
        try:
            mx.backup(out + "/copy.db")
            found["backup"] = "written"
        except MemexError as exc:
            found["backup"] = [type(exc).__name__, str(exc)]
        found["left"] = os.listdir(out)
        found["remember"] = mx.remember("the store itself still has room").content
    print(json.dumps(found))
    """
)


def test_a_backup_onto_a_full_device_names_the_backup_not_the_store(tmp_path: Path) -> None:
    """SQLite reports a full device under the copy as the store's; the error names the
    backup file, and the store, on a device with room, goes on being written."""
    namespaces.require()
    path, out = tmp_path / "store" / "memex.db", tmp_path / "out"
    with Memex.open(path) as mx:
        mx.remember_many({"content": f"note {i} " * 40} for i in range(3000))
    out.mkdir()
    found = namespaces.run_python(BACKUP_ONTO_A_FULL_DEVICE, path, out, tmpfs=(out, "1m"))
    assert found["backup"] == [
        "OutputError",
        f"cannot write {out}/copy.db: no space left on the device; it is unchanged",
    ]
    assert found["left"] == []  # no partial copy left behind
    assert found["remember"] == "the store itself still has room"

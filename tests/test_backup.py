"""Backups of a live store, and restores over a store other processes have open."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memex import (
    Memex,
    SchemaVersionError,
    ScopeError,
    StoreCorruptError,
    StoreLockedError,
    ValidationError,
)
from memex.core.progress import Step
from memex.storage.sqlite import backup as backup_module
from memex.storage.sqlite.migrate import LATEST, upgrade

CHAIN_WRITER = r"""
import os, sys, time
from memex import Memex

path, stop = sys.argv[1], sys.argv[2]
with Memex.open(path) as mx:
    fact = mx.remember("chain fact 0", tags=["chain"])
    print("ready", flush=True)
    n, started = 0, time.monotonic()
    while not os.path.exists(stop) and time.monotonic() - started < 120:
        n += 1
        fact = mx.supersede(fact.id, f"chain fact {n}")
print(n, flush=True)
"""


def fill(path: Path, word: str, count: int, **settings: Any) -> None:
    with Memex.open(path, **settings) as mx:
        mx.remember_many(
            [
                {"content": f"{word} note {i} about {word} things", "tags": [word]}
                for i in range(count)
            ]
        )


def histories(mx: Memex) -> dict[str, list[dict[str, Any]]]:
    return {
        m.id: [v.to_dict() for v in mx.history(m.id)] for m in mx.iter_all(include_deleted=True)
    }


def test_a_backup_is_consistent_while_another_process_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "st.db"
    fill(store, "filler", 3_000)  # megabytes: the copy takes many small steps
    monkeypatch.setattr(backup_module, "PAGES_PER_STEP", 16)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", CHAIN_WRITER, str(store), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().startswith("ready")
    infos = []
    try:
        with Memex.open(store) as mx:
            for i in range(3):
                steps: list[Step] = []
                infos.append(mx.backup(tmp_path / f"backup{i}.db", progress=steps.append))
                total = steps[-1].total
                assert total is not None and steps[-1].done == total
                # Each step copies 16 pages of one snapshot: none is started over.
                assert len(steps) <= total // 16 + 2
                assert [s.done for s in steps] == sorted(s.done for s in steps)
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    chains = []
    for info in infos:
        path = Path(info.path)
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        conn.close()
        with Memex.open(path) as copy:
            assert copy.stats().memories + copy.stats().superseded == info.memories
            current = [h.memory.content for h in copy.recall("chain fact", k=50, tags=["chain"])]
            assert len(current) == 1  # exactly one current fact of the chain
            chains.append(int(current[0].rsplit(" ", 1)[1]))
    assert chains[-1] > chains[0] and int(out.strip()) > chains[-1]  # writes went on


def test_a_backup_is_a_complete_store(tmp_path: Path) -> None:
    store = tmp_path / "st.db"
    with Memex.open(store, lexical_index_min=10, ann_min_vectors=50) as mx:
        memory = mx.remember("the first version")
        mx.update(memory.id, content="the second version")
        mx.forget(mx.remember("forgotten").id)
        mx.scoped(tenant="other").remember("another tenant")
        mx.remember_many([{"content": f"padding {i}"} for i in range(60)])
        mx.recall("version")  # builds the derived indexes beside the store
        (tmp_path / "copies").mkdir()
        info = mx.backup(tmp_path / "copies" / "b.db")
        expected = histories(mx)
    assert info.memories == 63 and info.size_bytes == os.path.getsize(info.path)
    assert (tmp_path / "st.db.lexical").is_dir()
    assert os.listdir(tmp_path / "copies") == ["b.db"]  # one file, no derived folders
    with Memex.open(info.path) as copy:
        assert histories(copy) == expected
        assert copy.scoped(tenant="other").stats().memories == 1
        assert copy.recall("second version", k=1)[0].memory.id == memory.id


def test_a_backup_never_lands_on_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "st.db"
    fill(store, "precious", 5)
    (tmp_path / "alias.db").symlink_to(store)
    monkeypatch.chdir(tmp_path)
    with Memex.open(store) as mx:
        for target in ("st.db", "st.db-wal", "st.db-shm", "alias.db", "./st.db",
                       str(store), "st.db.ann/b.db", "st.db.lexical/b.db"):  # fmt: skip
            with pytest.raises(ValidationError):
                mx.backup(target)
        with pytest.raises(ScopeError):
            mx.scoped(project="p").backup(tmp_path / "b.db")
    with Memex.open(store) as mx:
        assert mx.stats().memories == 5
    assert sorted(os.listdir(tmp_path)) == ["alias.db", "st.db"]


def backup_of(tmp_path: Path, word: str, count: int, **settings: Any) -> Path:
    source = tmp_path / f"{word}-source.db"
    fill(source, word, count, **settings)
    with Memex.open(source) as mx:
        return Path(mx.backup(tmp_path / f"{word}.db").path)


def contents(path: Path) -> list[str]:
    with Memex.open(path) as mx:
        return sorted(m.content for m in mx.iter_all(include_deleted=True))


def test_restore_checks_the_backup_first(tmp_path: Path) -> None:
    store = tmp_path / "st.db"
    fill(store, "kept", 2)
    good = backup_of(tmp_path, "good", 3)
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all " * 500)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    newer = tmp_path / "newer.db"
    newer.write_bytes(good.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(good.read_bytes())
    with sqlite3.connect(damaged) as conn:
        page = conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'memories_tenant_created'"
        ).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with damaged.open("r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(b"\xff" * size)
    cases = [
        (tmp_path / "missing.db", ValidationError, "no backup file"),
        (text, StoreCorruptError, "not a readable memex backup"),
        (foreign, StoreCorruptError, "not a memex store"),
        (newer, SchemaVersionError, f"schema version {LATEST + 1}"),
        (damaged, StoreCorruptError, "damaged|not a readable"),
        (store, ValidationError, "the store itself"),
    ]
    for backup, error, message in cases:
        with pytest.raises(error, match=message):
            Memex.restore(backup, store, force=True)
        assert contents(store) == ["kept note 0 about kept things", "kept note 1 about kept things"]
    assert not [p for p in os.listdir(tmp_path) if ".restore-" in p]  # no staging file left


def test_restore_replaces_a_store_with_memories_only_when_forced(tmp_path: Path) -> None:
    store = tmp_path / "st.db"
    fill(store, "old", 2)
    backup = backup_of(tmp_path, "new", 3)
    with pytest.raises(ValidationError, match="holds 2 memories"):
        Memex.restore(backup, store)
    assert len(contents(store)) == 2
    steps: list[Step] = []
    assert Memex.restore(backup, store, force=True, progress=steps.append) == 3
    assert contents(store) == contents(tmp_path / "new-source.db")
    assert {s.stage for s in steps} == {"reading", "checking", "restoring"}
    fresh = tmp_path / "sub" / "fresh.db"
    assert Memex.restore(backup, fresh) == 3  # a new store needs no force
    assert contents(fresh) == contents(store)


def test_restore_upgrades_an_older_backup(tmp_path: Path) -> None:
    old = tmp_path / "v1.db"
    conn = sqlite3.connect(old, isolation_level=None)
    upgrade(conn, str(old), target=1)
    conn.close()
    store = tmp_path / "st.db"
    assert Memex.restore(old, store) == 0
    with Memex.open(store) as mx:
        assert mx.stats().schema_version == LATEST
        mx.remember("works after the upgrade")
    with sqlite3.connect(old) as conn:  # the backup itself is left as it was
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_restore_gives_up_on_a_store_held_by_a_writer(tmp_path: Path) -> None:
    store = tmp_path / "st.db"
    fill(store, "old", 2)
    backup = backup_of(tmp_path, "new", 3)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreLockedError, match="locked"):
            Memex.restore(backup, store, force=True, busy_timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(contents(store)) == 2


HOLDER = r"""
import json, sys
from memex import Memex

with Memex.open(sys.argv[1], ann_min_vectors=50, lexical_index_min=10) as mx:
    for line in sys.stdin:
        answer = {}
        for query in json.loads(line):
            for mode in ("lexical", "vector"):
                hits = mx.recall(query, k=5, mode=mode)
                answer[f"{mode} {query}"] = [[h.memory.id, round(h.score, 5)] for h in hits]
        print(json.dumps(answer), flush=True)
"""


def test_a_process_holding_the_store_recalls_the_restored_content(tmp_path: Path) -> None:
    store = tmp_path / "st.db"
    settings = {"ann_min_vectors": 50, "lexical_index_min": 10}  # both derived indexes in use
    fill(store, "alpha", 120, **settings)
    backup = backup_of(tmp_path, "beta", 120, **settings)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None

    def ask(*queries: str) -> dict[str, list[list[Any]]]:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(json.dumps(queries) + "\n")
        holder.stdin.flush()
        line = holder.stdout.readline()
        assert line, holder.stderr.read() if holder.stderr else ""
        result: dict[str, list[list[Any]]] = json.loads(line)
        return result

    try:
        before = ask("alpha", "beta")
        assert before["lexical alpha"] and not before["lexical beta"]
        assert any(p.name.startswith("ivf-") for p in (tmp_path / "st.db.ann").iterdir())
        assert Memex.restore(backup, store, force=True) == 120
        assert not (tmp_path / "st.db.ann").exists()  # the old store's index files are gone
        after = ask("alpha", "beta")
        with Memex.open(store, **settings) as fresh:  # what the restored store answers
            expected = {
                f"{mode} {q}": [
                    [h.memory.id, round(h.score, 5)] for h in fresh.recall(q, k=5, mode=mode)
                ]
                for q in ("alpha", "beta")
                for mode in ("lexical", "vector")
            }
            restored_ids = {m.id for m in fresh.iter_all()}
    finally:
        _, err = holder.communicate(timeout=120)  # closing its input ends the holder
    assert holder.returncode == 0, err
    assert after["lexical alpha"] == []  # no hit from the replaced content
    assert after == expected
    assert all(hit[0] in restored_ids for hits in after.values() for hit in hits)


def test_an_open_handle_sees_the_restored_content_and_context(tmp_path: Path) -> None:
    store = tmp_path / "st.db"
    with Memex.open(tmp_path / "other.db") as other:  # the same shape: kinds, tags, counts
        other.remember_many(
            [{"content": f"beta fact number {i}", "kind": "fact"} for i in range(3)]
        )
        backup = Path(other.backup(tmp_path / "b.db").path)
    with Memex.open(store) as mx:
        mx.remember_many([{"content": f"alpha fact number {i}", "kind": "fact"} for i in range(3)])
        assert "alpha fact" in mx.context("facts", budget_tokens=400).text
        mx.recall("fact", mode="vector")
        Memex.restore(backup, store, force=True)
        text = mx.context("facts", budget_tokens=400).text
        assert "beta fact" in text and "alpha fact" not in text
        hits = [(h.memory.content, round(h.score, 5)) for h in mx.recall("fact", mode="vector")]
        with Memex.open(store) as fresh:
            assert hits == [
                (h.memory.content, round(h.score, 5)) for h in fresh.recall("fact", mode="vector")
            ]
        mx.remember("written after the restore")
    assert len(contents(store)) == 4

"""Export reads one snapshot; export with history and import restore every version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memex import Memex, Memory
from memex.core.progress import Step

WRITER = r"""
import sys
from memex import Memex

with Memex.open(sys.argv[1]) as mx:
    mx.supersede(sys.argv[2], "the first fact, superseded during the export")
    mx.update(sys.argv[3], content="the last fact, changed during the export")
    mx.remember("a memory written during the export")
"""


def run(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_an_export_is_one_snapshot_while_another_process_writes(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        made = mx.remember_many(
            [
                {
                    "content": f"fact number {i}",
                    "created_at": f"2024-01-01T00:{i // 60:02}:{i % 60:02}Z",
                }
                for i in range(1_200)  # more than one page of the snapshot's reads
            ]
        )
        first, last = made[0], made[-1]
        steps: list[Step] = []
        lines = mx.export_lines(progress=steps.append)
        head = [json.loads(next(lines)) for _ in range(10)]
        assert head[0]["id"] == first.id and head[0]["valid_until"] is None
        run(WRITER, str(store_path), first.id, last.id)  # commits while the export is open
        records = head + [json.loads(line) for line in lines]
        assert mx.get(first.id).valid_until is not None  # the write did happen
    assert len(records) == 1_200
    assert [r["id"] for r in records] == [m.id for m in made]
    current = [r for r in records if r["valid_until"] is None]
    assert len(current) == 1_200  # never the old and the new fact both current
    assert records[-1]["content"] == "fact number 1199"
    assert steps[0] == Step("exporting", 0, 1_200) and steps[-1] == Step("exporting", 1_200, 1_200)


def seed(mx: Memex) -> dict[str, Memory]:
    """Memories in every state: superseded, updated, forgotten, expired, future, read."""
    alice = mx.remember(
        "Alice works at Initech",
        kind="fact",
        tags=["people"],
        metadata={"team": "core", "n": 1},
        source="hr",
        created_at="2024-01-01T09:00:00Z",
    )
    moved = mx.supersede(alice.id, "Alice works at Globex", valid_from="2024-06-01T00:00:00Z")
    deploy = mx.remember("the deploy runs on Mondays", kind="decision", scope={"project": "ops"})
    mx.update(deploy.id, content="the deploy runs on Tuesdays", tags=["deploy"])
    mx.update(deploy.id, importance=0.9)
    note = mx.remember("a note to forget", scope={"project": "ops", "user": "u1"})
    mx.update(note.id, content="a note to forget, edited")
    mx.forget(note.id)
    brief = mx.remember("a short-lived reminder", expires_at="2020-01-01T00:00:00Z")
    future = mx.remember("the office moves next decade", valid_from="2035-01-01T00:00:00Z")
    read = mx.remember("the wifi password is on the fridge")
    mx.get(read.id)
    mx.get(read.id)
    mx.scoped(tenant="other").remember("another tenant's memory")
    return {"alice": alice, "moved": moved, "deploy": deploy, "note": note, "brief": brief,
            "future": future, "read": read}  # fmt: skip


def everything(mx: Memex) -> list[dict[str, Any]]:
    page = mx.list(include_deleted=True, include_superseded=True, limit=1000)
    return [m.to_dict() for m in page.items]


def histories(mx: Memex) -> dict[str, list[dict[str, Any]]]:
    return {
        m.id: [v.to_dict() for v in mx.history(m.id)] for m in mx.iter_all(include_deleted=True)
    }


def test_export_with_history_then_import_restores_every_version(tmp_path: Path) -> None:
    dump = tmp_path / "full.jsonl"
    with Memex.open(tmp_path / "a.db") as original:
        seeded = seed(original)
        assert original.export(dump, include_deleted=True, history=True) == len(seeded)
        before, versions = everything(original), histories(original)
        recalled = [
            (h.memory.id, round(h.score, 6)) for h in original.recall("where does Alice work", k=5)
        ]
    with Memex.open(tmp_path / "b.db") as copy:
        copy.import_lines(dump.read_text().split("\n"))
        assert everything(copy) == before  # every field, access statistics included
        assert histories(copy) == versions
        assert len(versions[seeded["deploy"].id]) == 3 and len(versions[seeded["note"].id]) == 3
        again = [
            (h.memory.id, round(h.score, 6)) for h in copy.recall("where does Alice work", k=5)
        ]
        assert again == recalled
        assert copy.get(seeded["moved"].id).to_dict() == next(
            m for m in before if m["id"] == seeded["moved"].id
        )
        assert copy.scoped(tenant="other").stats().memories == 0  # one tenant's export


def test_a_plain_export_keeps_versions_but_not_past_ones(tmp_path: Path) -> None:
    with Memex.open(tmp_path / "a.db") as original:
        seeded = seed(original)
        lines = list(original.export_lines())
    records = [json.loads(line) for line in lines]
    assert all("history" not in r for r in records)
    assert seeded["note"].id not in {r["id"] for r in records}  # forgotten: left out
    with Memex.open(tmp_path / "b.db") as copy:
        copy.import_lines(lines)
        deploy = copy.history(seeded["deploy"].id)
        assert [m.version for m in deploy] == [3]
        assert deploy[0].content == "the deploy runs on Tuesdays"


OLD_EXPORT = [  # as earlier versions of memex wrote them: no history
    {
        "access_count": 4, "content": "the build server is named zeus",
        "content_hash": "00", "created_at": "2024-03-01T10:00:00+00:00", "deleted_at": None,
        "expires_at": None, "id": "018e0000-0000-7000-8000-0000000000aa", "importance": 0.5,
        "kind": "fact", "last_accessed_at": "2024-04-01T10:00:00+00:00", "metadata": {},
        "scope": {"tenant": "default", "project": "infra"}, "source": None,
        "superseded_by": None, "tags": ["infra"], "updated_at": "2024-03-05T10:00:00+00:00",
        "valid_from": "2024-03-01T10:00:00+00:00", "valid_until": None, "version": 2,
    },
    {"content": "a hand-written record"},
]  # fmt: skip


def test_an_old_export_file_still_imports(mx: Memex) -> None:
    imported = mx.import_lines([json.dumps(r) for r in OLD_EXPORT])
    zeus = mx.get(OLD_EXPORT[0]["id"])
    assert (zeus.version, zeus.access_count, zeus.scope.project) == (2, 4, "infra")
    assert zeus.updated_at.isoformat() == "2024-03-05T10:00:00+00:00"
    assert [m.version for m in mx.history(zeus.id)] == [2]
    assert imported[1].version == 1 and imported[1].content == "a hand-written record"


def test_an_import_with_a_bad_past_version_writes_nothing(mx: Memex) -> None:
    good = {"content": "fine", "version": 2, "history": [{"version": 1, "content": "v1"}]}
    bad = {"content": "broken", "version": 2, "history": [{"version": 2, "content": "v2"}]}
    with pytest.raises(ValueError, match="line 2: history entry 1: version 2 is not below"):
        mx.import_lines([json.dumps(good), json.dumps(bad)])
    assert mx.stats().memories == 0


def test_export_refuses_the_store_itself(mx: Memex, store_path: Path) -> None:
    mx.remember("precious")
    for target in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        with pytest.raises(ValueError, match="store's own file"):
            mx.export(target)
    assert mx.stats().memories == 1
    with Memex.open(store_path) as again:
        assert [m.content for m in again.iter_all()] == ["precious"]


def test_export_to_the_store_path_spelled_otherwise(
    mx: Memex, store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mx.remember("precious")
    (tmp_path / "alias.db").symlink_to(store_path)
    monkeypatch.chdir(store_path.parent)
    for target in (tmp_path / "alias.db", Path(store_path.name), Path(f"./{store_path.name}-wal")):
        with pytest.raises(ValueError, match="store's own file"):
            mx.export(target)
    with pytest.raises(ValueError, match="which the store owns"):
        mx.export(Path(f"{store_path.name}.lexical") / "dump.jsonl")
    assert mx.stats().memories == 1

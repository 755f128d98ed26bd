"""memex migrate: a whole store copied between backends, verified, and safe to run again."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from clirun import run_cli

from memex import ConflictError, Memex, Settings
from memex.core.migration import plan
from memex.migration import copy_store
from memex.storage.base import Store, StoredVectors, WriteBatch
from memex.storage.open import open_store

TENANTS = ("default", "bob", "carol")
QUERIES = ("where does Alice work", "colour of the sky", "tea or coffee", "note 7")


def populate(location: str | Path) -> int:
    """A store with what a migration must keep: several tenants, past versions,
    supersedes, forgotten, expiring and not yet valid memories, read counts, a purge.
    Returns how many memories it holds (forgotten ones included)."""
    with Memex.open(location) as mx:
        alice = mx.remember("Alice works at Initech", kind="fact", tags=["work"],
                            created_at="2024-01-01T09:00:00.123456+00:00")  # fmt: skip
        mx.supersede(alice.id, "Alice works at Globex", valid_from="2024-07-01")
        sky = mx.remember("the sky is blue", expires_at="2031-01-01", source="window")
        mx.update(sky.id, content="the colour of the sky is blue", importance=0.9)
        mx.update(sky.id, tags=["weather", "sky"], metadata={"checked": [1, "x"]})
        gone = mx.remember("a secret to forget")
        mx.forget(gone.id)
        purged = mx.remember("purged for good")
        mx.purge(purged.id)
        mx.remember("the offsite starts next month", valid_from="2099-01-01")
        mx.remember("an expired reminder", expires_at="2020-01-01", created_at="2019-06-01")
        mx.remember_many([{"content": f"note {i} about tea or coffee"} for i in range(40)])
        mx.get(sky.id)
        mx.get(sky.id)
        bob = mx.scoped(tenant="bob")
        bob.remember("bob likes tea", kind="preference", scope={"project": "p1"})
        kept = bob.remember("bob's desk is by the window", scope={"user": "bob"})
        bob.update(kept.id, content="bob's desk is by the door")
        mx.scoped(tenant="carol").remember("carol ships on Fridays", ttl=86400 * 365)
    return 46 + 2 + 1


def exported(location: str | Path) -> dict[str, list[str]]:
    """Every tenant's full export: forgotten memories and every past version."""
    with Memex.open(location, read_only=True) as mx:
        return {
            t: list(mx.scoped(tenant=t).export_lines(include_deleted=True, history=True))
            for t in TENANTS
        }


def recalled(location: str | Path, mode: str) -> list[list[tuple[str, float]]]:
    with Memex.open(location, read_only=True) as mx:
        out = []
        for t in TENANTS:
            for query in QUERIES:
                hits = mx.scoped(tenant=t).recall(query, k=5, mode=mode)  # type: ignore[arg-type]
                out.append([(h.memory.id, round(h.score, 9)) for h in hits])
        return out


def test_a_store_round_trips_through_postgres(tmp_path: Path, postgres_url: str) -> None:
    first, last = tmp_path / "first.db", tmp_path / "last.db"
    total = populate(first)
    there = Memex.migrate(first, postgres_url)
    assert there.ok, there.mismatches()
    assert (there.copied, there.skipped, there.replaced) == (total, 0, 0)
    assert [t.tenant for t in there.tenants] == sorted(TENANTS)
    back = Memex.migrate(postgres_url, last)
    assert back.ok and back.copied == total
    original = exported(first)
    assert exported(postgres_url) == original
    assert exported(last) == original
    joined = "\n".join(line for lines in original.values() for line in lines)
    assert '"access_count": 2' in joined and '"history": [{' in joined  # covered
    assert '"deleted_at": "20' in joined and '"superseded_by": "' in joined
    for mode in ("hybrid", "lexical", "vector"):
        assert recalled(last, mode) == recalled(first, mode)
    # PostgreSQL ranks text its own way; the vectors are the same ones.
    ids = [[i for i, _ in hits] for hits in recalled(first, "vector")]
    assert [[i for i, _ in hits] for hits in recalled(postgres_url, "vector")] == ids
    with Memex.open(first) as a, Memex.open(postgres_url) as p, Memex.open(last) as b:
        stats = [m.stats() for m in (a, p, b)]
        assert stats[0].embedder == stats[1].embedder == stats[2].embedder
        keys = ("memories", "deleted", "superseded", "expired", "versions", "vectors")
        assert len({tuple(getattr(s, k) for k in keys) for s in stats}) == 1


def test_sqlite_to_sqlite_and_a_second_run_skips_everything(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    total = populate(source)
    assert Memex.migrate(source, target).copied == total
    again = Memex.migrate(source, target)
    assert again.ok and (again.copied, again.skipped) == (0, total)
    assert exported(target) == exported(source)


class FailingStore:
    """A store whose writes fail after ``allowed`` of them (a crash mid-copy)."""

    def __init__(self, store: Store, allowed: int) -> None:
        self._store, self._allowed = store, allowed

    def write(self, *args: Any, **kwargs: Any) -> None:
        if self._allowed == 0:
            raise OSError("injected failure")
        self._allowed -= 1
        self._store.write(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_run_that_failed_after_some_batches_completes_when_run_again(tmp_path: Path) -> None:
    source_path = tmp_path / "a.db"
    total = populate(source_path)
    source = open_store(source_path, Settings(read_only=True))
    target = open_store(tmp_path / "b.db", Settings())
    try:
        with pytest.raises(OSError, match="injected"):
            copy_store(source, FailingStore(target, 4), batch_size=5)  # type: ignore[arg-type]
        # Tenants go in order: bob's 2, carol's 1, then two batches of 5 of the default's.
        assert target.tenants() == ["bob", "carol", "default"]
        copied = sum(_count(target, t) for t in TENANTS)
        assert copied == 2 + 1 + 5 + 5
        report = copy_store(source, target, batch_size=5)
        assert report.ok and report.skipped == copied and report.copied == total - copied
    finally:
        source.close()
        target.close()
    assert exported(tmp_path / "b.db") == exported(source_path)


KILLER = """
import os, sys
from memex import Memex

def report(step):
    if step.stage == "copying" and step.done >= 12:
        os._exit(9)  # killed: no cleanup, no rollback of what was committed

Memex.migrate(sys.argv[1], sys.argv[2], batch_size=4, progress=report)
"""


def test_a_killed_migration_to_postgres_completes_when_run_again(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "a.db"
    total = populate(source)
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLER), str(source), postgres_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == 9, killed.stderr
    partial = Memex.migrate(source, postgres_url, batch_size=4)
    assert partial.ok, partial.mismatches()
    assert partial.skipped >= 12 and partial.copied > 0
    assert partial.copied + partial.skipped == total
    assert exported(postgres_url) == exported(source)


def test_a_target_holding_other_data_is_refused_unless_forced(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    total = populate(source)
    Memex.migrate(source, target)
    with Memex.open(target) as mx:
        mx.remember("only in the target")
        mx.scoped(tenant="dave").remember("a tenant only the target has")
    with Memex.open(source) as mx:  # the source moved on since the copy
        mx.remember("written after the copy")
        changed = mx.list(limit=1, order="asc").items[0]
        mx.update(changed.id, importance=0.1)
    result = run_cli(["migrate", str(source), str(target)])
    assert result.exit_code == 3
    assert result.stderr.startswith("error: the target holds 3 memories") and "--force" in (
        result.stderr
    )
    assert result.stderr.count("\n") == 1
    with pytest.raises(ConflictError):
        Memex.migrate(source, target)
    forced = Memex.migrate(source, target, force=True)
    assert forced.ok and forced.replaced == 3 and forced.copied == 2
    assert forced.skipped == total - 1
    assert exported(target) == exported(source)
    with Memex.open(target) as mx:
        assert mx.scoped(tenant="dave").stats().memories == 0


def test_the_command_reports_each_tenant(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    populate(source)
    result = run_cli(["migrate", str(source), str(target)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("copied 49 memories from ")
    assert "tenant bob: 2/2 memories, 3/3 versions, ok" in lines
    assert lines[-1].startswith("verified: 3 tenant(s) match")
    again = run_cli(["--json", "migrate", str(source), str(target)])
    import json

    report = json.loads(again.stdout)
    assert report["ok"] and report["skipped"] == 49 and len(report["tenants"]) == 3


def test_a_mismatch_found_by_the_verification_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import memex.migration

    source, target = tmp_path / "a.db", tmp_path / "b.db"
    populate(source)
    real = memex.migration._write

    def losing_history(src: Any, dst: Any, scope: Any, model: Any, batch: Any) -> None:
        real(src, dst, scope, model, [(m, []) for m, _ in batch])

    monkeypatch.setattr(memex.migration, "_write", losing_history)
    result = run_cli(["migrate", str(source), str(target)])
    assert result.exit_code == 3
    assert "tenant bob: 2/2 memories, 2/3 versions, MISMATCH: 3 versions in the source, 2 in" in (
        result.stdout
    )
    assert result.stderr.startswith("error: ") and "does not match" in result.stderr
    assert "verification FAILED for 2 of 3 tenant(s)" in result.stdout


def _bad(args: list[str], expected: str) -> None:
    result = run_cli(["migrate", *args])
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_bad_input_is_one_line_and_exit_3(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "a.db"
    with Memex.open(source) as mx:
        mx.remember("something")
    _bad([str(source), str(source)], "the source and the target are the same store")
    _bad([f"sqlite:///{tmp_path}/../{tmp_path.name}/a.db", str(source)], "the same store")
    _bad([str(tmp_path / "none.db"), str(tmp_path / "b.db")], "no store at")
    assert not (tmp_path / "b.db").exists()
    with Memex.open(postgres_url) as mx:
        mx.remember("something")
    _bad([postgres_url, postgres_url], "the same store")
    _bad([str(source), "postgresql://memex:x@127.0.0.1:9/memex?connect_timeout=3"], "could not")
    password = postgres_url.split("://memex:", 1)[1].split("@", 1)[0]
    wrong = postgres_url.replace(f":{password}@", ":not-the-password@", 1)
    _bad([str(source), wrong], "cannot log in")
    assert "not-the-password" not in run_cli(["migrate", str(source), wrong]).output
    newer = tmp_path / "newer.db"
    with Memex.open(newer) as mx:
        pass
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 999")
    _bad([str(source), str(newer)], "schema version 999")
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('memex.all_tenants', 'on', true)")
        conn.execute("UPDATE memex_meta SET value = '999' WHERE key = 'schema_version'")
    _bad([str(source), postgres_url], "schema version 999")
    _bad([postgres_url, str(tmp_path / "c.db")], "schema version 999")
    _bad([str(source), "mysql://x/y"], "unsupported store URL scheme")
    other = open_store(tmp_path / "other.db", Settings())
    with Memex.open(source) as mx:
        made = mx.remember("made by another model")
    other.write(_scope("default"), WriteBatch(inserts=[(made, np.ones(4, np.float32))]), MODEL)
    other.close()
    _bad([str(source), str(tmp_path / "other.db")], "reindex one store")
    refused = run_cli(["--tenant", "bob", "migrate", str(source), str(tmp_path / "c.db")])
    assert refused.exit_code == 2 and "drop --tenant" in refused.stderr


def test_the_password_never_shows(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "a.db"
    with Memex.open(source) as mx:
        mx.remember("something")
    password = postgres_url.split("://memex:", 1)[1].split("@", 1)[0]
    done = run_cli(["migrate", str(source), postgres_url])
    assert done.exit_code == 0 and password not in done.output
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('memex.all_tenants', 'on', true)")
        conn.execute("UPDATE memories SET importance = 0.01")
    refused = run_cli(["migrate", str(source), postgres_url])
    assert refused.exit_code == 3 and password not in refused.output


@pytest.mark.parametrize(
    ("source", "target", "action"),
    [("d1", None, "copy"), ("d1", "d1", "skip"), ("d1", "d2", "differs")],
)
def test_plan(source: str, target: str | None, action: str) -> None:
    assert plan(source, target) == action


MODEL = StoredVectors("test:unit", 4)


def _count(store: Store, tenant: str) -> int:
    stats = store.stats(_scope(tenant), _now())
    return stats.memories + stats.deleted + stats.superseded + stats.expired


def _scope(tenant: str) -> Any:
    from memex.core.models import Scope

    return Scope(tenant=tenant)


def _now() -> Any:
    from memex.core.models import utcnow

    return utcnow()

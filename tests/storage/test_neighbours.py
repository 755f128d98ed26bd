"""Thread neighbours: the one-statement lookup against a row-by-row reference, on real stores."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memex import Settings
from memex.core.ids import new_id
from memex.core.models import Memory, Scope, content_hash
from memex.core.query import Filters
from memex.storage.base import StoredVectors, WriteBatch
from memex.storage.open import open_store
from memex.storage.sqlite import sql
from memex.storage.sqlite.neighbours import neighbour_query, thread_neighbours

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(hours=3)
KINDS = ("message", "message", "message", "fact", "event")
THREAD = ("tenant", "project", "user_id", "agent", "session", "kind")


def random_memory(rng: random.Random) -> tuple[Memory, np.ndarray]:
    # Few distinct minutes, so creation times often tie and the key decides.
    created = T0 + timedelta(minutes=rng.randrange(60))
    scope = Scope(
        tenant=rng.choice(("t1", "t1", "t1", "t2")),
        project=rng.choice(("a", "a", "b", None)),
        user=rng.choice((None, None, "u")),
        session=rng.choice(("s1", "s2", None)),
    )
    valid_until = rng.choice((None,) * 8 + (NOW - timedelta(minutes=5),))
    content = f"memory {rng.random()}"
    memory = Memory(
        id=new_id(),
        content=content,
        kind=rng.choice(KINDS),
        scope=scope,
        tags=("x",) if rng.random() < 0.3 else (),
        metadata={},
        importance=0.5,
        created_at=created,
        updated_at=created,
        expires_at=rng.choice((None,) * 8 + (NOW - timedelta(hours=1), NOW + timedelta(hours=1))),
        last_accessed_at=None,
        access_count=0,
        source=None,
        content_hash=content_hash(content),
        version=1,
        valid_from=created,
        valid_until=valid_until,
        superseded_by=new_id() if valid_until is not None else None,
        deleted_at=NOW - timedelta(hours=2) if rng.random() < 0.1 else None,
    )
    return memory, np.array([1, 0, 0, 0], dtype=np.float32)


def random_filters(rng: random.Random) -> Filters:
    return Filters.build(
        scope=Scope(
            tenant=rng.choice(("t1", "t1", "t2")),
            project=rng.choice((None, "a", "b")),
            session=rng.choice((None, None, "s1")),
        ),
        kinds=rng.choice((None, None, ["message"], ["message", "fact"])),
        tags=rng.choice((None, None, None, ["x"])),
        until=rng.choice((None, None, T0 + timedelta(minutes=40))),
        as_of=rng.choice((None, None, None, NOW - timedelta(minutes=10))),
        include_deleted=rng.random() < 0.2,
        include_superseded=rng.random() < 0.2,
    )


def reference(
    conn: sqlite3.Connection, filters: Filters, keys: list[int], radius: int
) -> dict[int, list[int]]:
    """Each key's thread read whole and walked in Python."""
    conn.row_factory = sqlite3.Row
    rows = {r["seq"]: r for r in conn.execute("SELECT * FROM memories")}
    conn.row_factory = None
    where, params = sql.filter_clause(filters, NOW)
    passing = {r[0] for r in conn.execute(f"SELECT m.seq FROM memories m WHERE {where}", params)}
    out: dict[int, list[int]] = {}
    for key in keys:
        if key not in rows:
            continue
        me = rows[key]
        thread = sorted(
            (r["created_at"], seq)
            for seq, r in rows.items()
            if seq in passing and all(r[c] == me[c] for c in THREAD)
        )
        at = (me["created_at"], key)
        before = [seq for t, seq in reversed(thread) if (t, seq) < at][:radius]
        after = [seq for t, seq in thread if (t, seq) > at][:radius]
        if before or after:
            out[key] = before + after
    return out


@pytest.fixture(params=[1, 2, 3])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, int]:
    """A store of random threads (seeded by the parameter), closed after writing."""
    seed = request.param
    rng = random.Random(seed)
    store = open_store(tmp_path / "threads.db", Settings())
    by_tenant: dict[str, list[tuple[Memory, np.ndarray]]] = {}
    for _ in range(400):
        memory, vector = random_memory(rng)
        by_tenant.setdefault(memory.scope.tenant or "", []).append((memory, vector))
    for tenant, items in by_tenant.items():
        rng.shuffle(items)  # keys in another order than creation times
        store.write(Scope(tenant=tenant), WriteBatch(inserts=items), StoredVectors("test:unit", 4))
    store.close()
    return tmp_path / "threads.db", seed


def test_neighbours_match_a_reference_walk(filled: tuple[Path, int]) -> None:
    path, seed = filled
    rng = random.Random(seed * 1000)
    conn = sqlite3.connect(path)
    try:
        top = conn.execute("SELECT max(seq) FROM memories").fetchone()[0]
        for _ in range(60):
            filters = random_filters(rng)
            radius = rng.randint(1, 3)
            # Keys of any tenant or state, a few twice, and one that does not exist.
            keys = [*rng.sample(range(1, top + 1), 20), top + 5]
            keys += rng.sample(keys, 2)
            expected = reference(conn, filters, list(dict.fromkeys(keys)), radius)
            got = thread_neighbours(conn, filters, keys, radius, NOW)
            assert got == expected
            assert list(got) == list(expected)  # in the order keys were given
        assert thread_neighbours(conn, random_filters(rng), [], 2, NOW) == {}
    finally:
        conn.close()


@pytest.mark.parametrize("project", [None, "a"])
def test_neighbours_scan_a_short_range_of_one_project(tmp_path: Path, project: str | None) -> None:
    """Each side is a range scan of one thread (project and kind), never the tenant."""
    store = open_store(tmp_path / "plan.db", Settings())
    store.close()
    conn = sqlite3.connect(tmp_path / "plan.db")
    try:
        filters = Filters.build(scope=Scope(tenant="t1", project=project), kinds=["message"])
        query, params = neighbour_query(filters, [1, 2, 3], 2, NOW)
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", params)]
        scans = [step for step in plan if "memories_thread" in step]
        assert len(scans) == 2
        assert "(tenant=? AND project=? AND kind=? AND created_at<?)" in scans[0]
        assert "(tenant=? AND project=? AND kind=? AND created_at>?)" in scans[1]
        assert not [step for step in plan if step.startswith("SCAN") and "memories" in step]
    finally:
        conn.close()


def plain_filters(rng: random.Random) -> Filters:
    """Filters that hide by visibility alone: what recall's neighbours take from memory."""
    return Filters.build(
        scope=Scope(
            tenant=rng.choice(("t1", "t1", "t2")),
            project=rng.choice((None, "a", "b")),
            user=rng.choice((None, None, "u")),
            session=rng.choice((None, None, "s1")),
        )
    )


def test_neighbours_from_memory_match_sql(filled: tuple[Path, int]) -> None:
    """The threads a process keeps in memory give what the SQL lookup gives, before and
    after another handle inserts, forgets, moves and purges memories."""
    from memex.core.models import utcnow
    from memex.storage.sqlite.store import SQLiteStore

    path, seed = filled
    rng = random.Random(seed * 7)
    store = open_store(path, Settings())
    other = open_store(path, Settings())
    assert isinstance(store, SQLiteStore) and isinstance(other, SQLiteStore)
    conn = store._conn()
    visibility = store._visibility

    def compare(rounds: int) -> int:
        answered = 0
        top = conn.execute("SELECT max(seq) FROM memories").fetchone()[0]
        for _ in range(rounds):
            filters = plain_filters(rng)
            tenant = str(filters.scope.tenant)
            visibility.refresh(conn, tenant)
            radius = rng.randint(1, 3)
            keys = rng.sample(range(1, top + 1), 15)
            keys += rng.sample(keys, 2)
            got = visibility.neighbours(conn, filters, keys, radius)
            if got is None:  # a key of another tenant, or purged: SQL answers
                continue
            answered += 1
            assert got == thread_neighbours(conn, filters, keys, radius, utcnow())
            assert list(got) == [k for k in dict.fromkeys(keys) if k in got]
        return answered

    try:
        keys_of = {
            t: [int(r[0]) for r in conn.execute("SELECT seq FROM memories WHERE tenant = ?", (t,))]
            for t in ("t1", "t2")
        }
        # A process reads a tenant's threads once asked for them often enough.
        from memex.storage.sqlite.visibility import THREADS_AFTER

        for tenant in ("t1", "t2"):
            whole = Filters.build(scope=Scope(tenant=tenant))
            visibility.refresh(conn, tenant)
            for _ in range(THREADS_AFTER - 1):
                assert visibility.neighbours(conn, whole, keys_of[tenant][:3], 1) is None
            assert visibility.neighbours(conn, whole, keys_of[tenant][:3], 1) is not None
        # Seeds from one tenant only, so memory answers.
        answered = 0
        for _ in range(40):
            filters = plain_filters(rng)
            tenant = str(filters.scope.tenant)
            visibility.refresh(conn, tenant)
            radius = rng.randint(1, 3)
            keys = rng.sample(keys_of[tenant], 15)
            got = visibility.neighbours(conn, filters, keys, radius)
            assert got is not None
            assert got == thread_neighbours(conn, filters, keys, radius, utcnow())
            answered += 1
        assert answered == 40
        compare(20)
        # Another handle writes: new memories, a forget, a move to another thread, purges.
        items = [random_memory(rng) for _ in range(60)]
        for tenant in ("t1", "t2"):
            mine = [(m, v) for m, v in items if m.scope.tenant == tenant]
            other.write(
                Scope(tenant=tenant), WriteBatch(inserts=mine), StoredVectors("test:unit", 4)
            )
        t1 = other.fetch(
            Filters(scope=Scope(tenant="t1"), include_superseded=True),
            [m.id for m, _ in items if m.scope.tenant == "t1"][:6],
        )
        moved = list(t1.values())
        visibility.refresh(conn, "t1")  # memory knows them before they change
        updates = [
            (
                moved[0].with_changes(deleted_at=NOW, version=moved[0].version + 1),
                None,
                moved[0].version,
            ),
            (
                moved[1].with_changes(kind="event", version=moved[1].version + 1),
                None,
                moved[1].version,
            ),
            (
                moved[2].with_changes(
                    scope=Scope(tenant="t1", project="b"), version=moved[2].version + 1
                ),
                None,
                moved[2].version,
            ),
        ]
        other.write(Scope(tenant="t1"), WriteBatch(updates=updates), StoredVectors("test:unit", 4))
        other.write(
            Scope(tenant="t1"),
            WriteBatch(purges=[(m.id, m.version) for m in moved[3:5]]),
            StoredVectors("test:unit", 4),
        )
        for tenant in ("t1", "t2"):
            keys_of[tenant] = [
                int(r[0])
                for r in conn.execute("SELECT seq FROM memories WHERE tenant = ?", (tenant,))
            ]
        shifted = [
            int(r[0])
            for r in conn.execute(
                "SELECT seq FROM memories WHERE id IN (?, ?)", (moved[1].id, moved[2].id)
            )
        ]
        assert len(shifted) == 2
        for _ in range(40):
            filters = plain_filters(rng)
            tenant = str(filters.scope.tenant)
            visibility.refresh(conn, tenant)
            radius = rng.randint(1, 3)
            keys = rng.sample(keys_of[tenant], 15)
            if tenant == "t1":  # the moved memories, and memories of their old threads
                keys += shifted
                filters = Filters.build(scope=Scope(tenant="t1"))
            got = visibility.neighbours(conn, filters, keys, radius)
            assert got is not None
            assert got == thread_neighbours(conn, filters, keys, radius, utcnow())
        compare(20)
        # Other filters are not answered from memory.
        narrow = Filters.build(scope=Scope(tenant="t1"), kinds=["message"])
        assert visibility.neighbours(conn, narrow, keys_of["t1"][:5], 2) is None
    finally:
        store.close()
        other.close()

"""The visibility rule: the pure function, and the SQL of the store agreeing with it.

One table of memories (their deletion, expiry and validity times) and their state at
several times. The pure ``state_at`` must give the table's states; the store's SQL must
give the same states (what ``stats`` counts) and select exactly the current memories
(what ``recall`` with ``as_of`` reads).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memex import Settings
from memex.core.ids import new_id
from memex.core.models import Memory, Scope, content_hash, to_micros
from memex.core.query import Filters
from memex.core.visibility import State, is_forgotten, state_at
from memex.storage.base import StoredVectors, WriteBatch
from memex.storage.open import open_store
from memex.storage.sqlite import sql
from memex.storage.sqlite.store import SQLiteStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


AT = (h(3), h(6), h(7), h(8), h(9), h(10), h(13), h(25))
"""The times each memory's state is asked at (every table row gives one state for each)."""

C, F, E, S, P = "current", "forgotten", "expired", "superseded", "pending"

# name: (deleted_at, expires_at, valid_from, valid_until), states at each time of AT
CASES: dict[str, tuple[tuple[datetime | None, ...], tuple[State, ...]]] = {
    "live": ((None, None, h(0), None), (C, C, C, C, C, C, C, C)),
    "pending until 10": ((None, None, h(10), None), (P, P, P, P, P, C, C, C)),
    "superseded at 5": ((None, None, h(0), h(5)), (C, S, S, S, S, S, S, S)),
    "valid from 4 to 5": ((None, None, h(4), h(5)), (P, S, S, S, S, S, S, S)),
    "expires at 8": ((None, h(8), h(0), None), (C, C, C, E, E, E, E, E)),
    "expiry at 8 recorded at 9": ((h(9), h(8), h(0), None), (C, C, C, E, E, E, E, E)),
    "expiry at 8 recorded at 8": ((h(8), h(8), h(0), None), (C, C, C, E, E, E, E, E)),
    "forgotten at 9": ((h(9), None, h(0), None), (F, F, F, F, F, F, F, F)),
    "forgotten at 7, before expiry at 12": (
        (h(7), h(12), h(0), None),
        (F, F, F, F, F, F, F, F),
    ),
    "superseded at 5, expires at 8": ((None, h(8), h(0), h(5)), (C, S, S, E, E, E, E, E)),
    "superseded at 5, expiry at 8 recorded": (
        (h(9), h(8), h(0), h(5)),
        (C, S, S, E, E, E, E, E),
    ),
    "forgotten and superseded": ((h(9), None, h(0), h(5)), (F, F, F, F, F, F, F, F)),
    "pending until 10, expires at 8": ((None, h(8), h(10), None), (P, P, P, E, E, E, E, E)),
}


def test_the_rule_table_holds_for_the_pure_function() -> None:
    for name, ((deleted, expires, vfrom, vuntil), states) in CASES.items():
        assert vfrom is not None
        for at, expected in zip(AT, states, strict=True):
            got = state_at(
                at, deleted_at=deleted, expires_at=expires, valid_from=vfrom, valid_until=vuntil
            )
            assert got == expected, (name, at)
            naive = at.replace(tzinfo=None)  # a time without a zone is UTC
            assert (
                state_at(
                    naive,
                    deleted_at=deleted,
                    expires_at=expires,
                    valid_from=vfrom,
                    valid_until=vuntil,
                )
                == expected
            )


@pytest.mark.parametrize(
    ("deleted", "expires", "forgotten"),
    [
        (None, None, False),
        (None, h(1), False),
        (h(1), None, True),
        (h(1), h(2), True),  # forget ran before the expiry: it can only have been forget
        (h(2), h(2), False),  # expire records at or after the expiry
        (h(3), h(2), False),
    ],
)
def test_a_deletion_is_a_forget_only_before_the_expiry(
    deleted: datetime | None, expires: datetime | None, forgotten: bool
) -> None:
    assert is_forgotten(deleted, expires) is forgotten


def _memory(name: str, deleted: datetime | None, expires: datetime | None,
            vfrom: datetime, vuntil: datetime | None) -> Memory:  # fmt: skip
    return Memory(
        id=new_id(),
        content=name,
        kind="fact",
        scope=Scope(tenant="t"),
        tags=(),
        metadata={},
        importance=0.5,
        created_at=h(0),
        updated_at=h(0),
        expires_at=expires,
        last_accessed_at=None,
        access_count=0,
        source=None,
        content_hash=content_hash(name),
        version=1,
        valid_from=vfrom,
        valid_until=vuntil,
        superseded_by=new_id() if vuntil is not None else None,
        deleted_at=deleted,
    )


@pytest.fixture
def stored(tmp_path: Path) -> tuple[SQLiteStore, dict[str, Memory]]:
    store = open_store(tmp_path / "rule.db", Settings())
    assert isinstance(store, SQLiteStore)
    memories = {}
    for name, ((deleted, expires, vfrom, vuntil), _) in CASES.items():
        assert vfrom is not None
        memories[name] = _memory(name, deleted, expires, vfrom, vuntil)
    vector = np.array([1, 0, 0, 0], dtype=np.float32)
    batch = WriteBatch(inserts=[(m, vector) for m in memories.values()])
    store.write(Scope(tenant="t"), batch, StoredVectors("test:unit", 4))
    return store, memories


def test_the_store_sql_agrees_with_the_rule(stored: tuple[SQLiteStore, dict[str, Memory]]) -> None:
    store, memories = stored
    conn = store._conn()
    by_id = {m.id: name for name, m in memories.items()}
    for i, at in enumerate(AT):
        expected = {name: states[i] for name, (_, states) in CASES.items()}
        # Memory.state, read back from the store, is the pure rule.
        for name, memory in memories.items():
            anything = Filters(
                scope=Scope(tenant="t"), include_deleted=True, include_superseded=True
            )
            got = store.fetch(anything, [memory.id]).get(memory.id)
            assert got is not None and got.state(at) == expected[name], (name, at)
            assert got.is_current(at) is (expected[name] == "current")
        # The state the SQL computes (what stats counts)...
        micros = to_micros(at)
        rows = conn.execute(
            f"SELECT m.id, {sql.state_sql()} FROM memories m", [micros] * 3
        ).fetchall()
        assert {by_id[i]: s for i, s in rows} == expected, at
        # ...and what the filter of a read at that time selects (recall with as_of).
        where, params = sql.filter_clause(Filters(scope=Scope(tenant="t"), as_of=at), T0)
        chosen = {
            by_id[r[0]] for r in conn.execute(f"SELECT m.id FROM memories m WHERE {where}", params)
        }
        assert chosen == {n for n, s in expected.items() if s == "current"}, at
        # Without as_of the same holds at the time the read runs.
        where, params = sql.filter_clause(Filters(scope=Scope(tenant="t")), at)
        now_chosen = {
            by_id[r[0]] for r in conn.execute(f"SELECT m.id FROM memories m WHERE {where}", params)
        }
        assert now_chosen == chosen, at
    store.close()


def test_what_a_process_keeps_in_memory_agrees_with_the_rule(
    stored: tuple[SQLiteStore, dict[str, Memory]], tmp_path: Path
) -> None:
    """Recall checks its candidates from memory; that check gives the rule's states."""
    store, _ = stored
    other = open_store(tmp_path / "rule.db", Settings())  # as another process would
    assert isinstance(other, SQLiteStore)
    keys = {
        name: int(k)
        for name, k in store._rows("SELECT content, seq FROM memories WHERE tenant = 't'", ())
    }
    flt = Filters(scope=Scope(tenant="t"))
    visibility = other._visibility
    other._run(lambda c: visibility.refresh(c, "t"))
    conn = other._conn()
    for i, at in enumerate(AT):
        check, _ = visibility.check(conn, flt, ("tenant",), at=to_micros(at))
        assert check.__name__ == "in_memory"  # answered without SQL
        passing = set(check(list(keys.values())))
        expected = {keys[n] for n, (_, states) in CASES.items() if states[i] == "current"}
        assert passing == expected, at
    # Filters beyond visibility, or scope fields the leg does not enforce, go to SQL.
    narrow = Filters(scope=Scope(tenant="t"), kinds=("fact",))
    assert other._run(lambda c: visibility.check(c, narrow, ("tenant",)))[0].__name__ == "in_sql"
    scoped = Filters(scope=Scope(tenant="t", user="u"))
    assert other._run(lambda c: visibility.check(c, scoped, ("tenant",)))[0].__name__ == "in_sql"


def test_memory_catches_up_with_writes_of_another_handle(
    stored: tuple[SQLiteStore, dict[str, Memory]], tmp_path: Path
) -> None:
    store, memories = stored
    other = open_store(tmp_path / "rule.db", Settings())
    assert isinstance(other, SQLiteStore)
    flt = Filters(scope=Scope(tenant="t"))
    live = memories["live"]
    key = int(store._rows("SELECT seq FROM memories WHERE id = ?", (live.id,))[0][0])
    visibility = other._visibility

    def passes(k: int) -> bool:
        other._run(lambda c: visibility.refresh(c, "t"))
        return k in other._run(lambda c: visibility.check(c, flt, ("tenant",)))[0]([k])

    assert passes(key)
    model = StoredVectors("test:unit", 4)
    vector = np.array([0, 1, 0, 0], dtype=np.float32)
    # A newer memory than the refresh knows is asked of SQL, then known after a refresh.
    fresh = _memory("fresh", None, None, h(0), None)
    store.write(Scope(tenant="t"), WriteBatch(inserts=[(fresh, vector)]), model)
    fresh_key = int(store._rows("SELECT seq FROM memories WHERE id = ?", (fresh.id,))[0][0])
    check, _ = other._run(lambda c: visibility.check(c, flt, ("tenant",)))
    assert fresh_key in check([fresh_key])
    assert passes(fresh_key)
    # Forgotten elsewhere: hidden here after the next refresh.
    forgotten = live.with_changes(deleted_at=h(30), updated_at=h(30), version=2)
    store.write(Scope(tenant="t"), WriteBatch(updates=[(forgotten, None, 1)]), model)
    assert not passes(key)
    # Purged elsewhere: never passes again, even if an index still names it.
    store.write(Scope(tenant="t"), WriteBatch(purges=[(fresh.id, 1)]), model)
    assert not passes(fresh_key)


def test_a_search_that_skips_the_tenant_never_sees_another(tmp_path: Path) -> None:
    """While one tenant is alone in the store, its full-text search does not match the
    tenant; memories another tenant writes after the check was made stay out, even when
    another thread's refresh moves the shared state meanwhile."""
    from memex import Memex

    settings = Settings(lexical_index_min=1, ann_min_vectors=64)
    path = tmp_path / "two.db"
    with Memex.open(path, settings=settings) as mx, Memex.open(path, settings=settings) as other:
        a = mx.scoped(tenant="a")
        b = other.scoped(tenant="b")
        for i in range(30):
            a.remember(f"the walrus note number {i}")
        assert len(a.recall("walrus", k=50, mode="lexical")) == 30
        store = mx._engine.store
        assert isinstance(store, SQLiteStore)
        filters = Filters(scope=Scope(tenant="a"))
        visibility = store._visibility
        check, alone = store._run(lambda c: visibility.check(c, filters, ("tenant",)))
        assert alone
        theirs = {b.remember(f"the walrus secret number {i}").id for i in range(5)}
        index = store._fulltext
        assert store._run(lambda c: index.catch_up(c, force=True))  # the index holds them
        store._run(lambda c: visibility.refresh(c, "a"))  # as another thread would
        assert not store._run(lambda c: visibility.check(c, filters, ("tenant",)))[1]
        hits = store._run(
            lambda c: index.search(c, filters, ["walrus", "secret"], 10, check, ("tenant",))
        )
        ours = {int(r[0]) for r in store._rows("SELECT seq FROM memories WHERE tenant = 'a'", ())}
        assert hits is not None and len(hits) == 10
        assert {c.key for c in hits} <= ours  # theirs match both words, and are left out
        for mode in ("lexical", "hybrid"):
            found = {h.memory.id for h in a.recall("walrus secret", k=50, mode=mode)}
            assert not found & theirs, mode
        assert len(a.recall("walrus", k=50, mode="lexical")) == 30
        assert {h.memory.id for h in b.recall("walrus", k=50, mode="lexical")} == theirs


def test_catching_up_reads_the_new_rows_by_their_key_range(tmp_path: Path) -> None:
    """After a write, a process reads only the rows past its last refresh: by the key's
    range, never by the tenant's index (which would read every row of the tenant)."""
    from memex.storage.sqlite.visibility import NEWER

    store = open_store(tmp_path / "memex.db", Settings())
    try:
        conn = sqlite3.connect(tmp_path / "memex.db")
        plan = " ".join(
            str(row[3])
            for row in conn.execute(f"EXPLAIN QUERY PLAN SELECT seq {NEWER}", (0, "default"))
        )
        conn.close()
    finally:
        store.close()
    assert "PRIMARY KEY" in plan and "memories_tenant" not in plan, plan

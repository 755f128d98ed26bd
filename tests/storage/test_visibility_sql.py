"""The visibility rule: the pure function, and the SQL of the store agreeing with it.

One table of memories (their deletion, expiry and validity times) and their state at
several times. The pure ``state_at`` must give the table's states; the store's SQL must
give the same states (what ``stats`` counts) and select exactly the current memories
(what ``recall`` with ``as_of`` reads).
"""

from __future__ import annotations

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

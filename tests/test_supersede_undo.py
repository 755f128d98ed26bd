"""Undoing supersedes through the API: forgetting or purging the memory that superseded
another gives the other its validity back (relinking chains), ``unsupersede`` undoes a
wrong supersede outright, and either way the fact is recalled and can be superseded
again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex import ConflictError, Memex, Memory, NotFoundError, Scope, ValidationError
from memex.storage.base import WriteBatch

T1 = datetime(2024, 1, 1, tzinfo=UTC)
T2 = datetime(2024, 3, 1, tzinfo=UTC)
T3 = datetime(2024, 6, 1, tzinfo=UTC)
QUERY = "where does Alice work"


def recalled(mx: Memex, **kw: object) -> list[str]:
    return [h.memory.id for h in mx.recall(QUERY, 10, **kw)]  # type: ignore[arg-type]


def chain(mx: Memex) -> tuple[Memory, Memory, Memory]:
    """A → B → C: Alice's employer, changed twice."""
    a = mx.remember("Alice works at Initech", kind="fact", created_at=T1)
    b = mx.remember("Alice works at Globex", kind="fact", created_at=T2, supersedes=a.id)
    c = mx.remember("Alice works at Hooli", kind="fact", created_at=T3, supersedes=b.id)
    return a, b, c


@pytest.mark.parametrize("remove", ["forget", "purge"])
def test_removing_the_new_memory_makes_the_old_one_current(mx: Memex, remove: str) -> None:
    old = mx.remember("Alice works at Initech", kind="fact", created_at=T1)
    new = mx.supersede(old.id, "Alice works at Globex")
    assert recalled(mx) == [new.id]
    getattr(mx, remove)(new.id)
    assert recalled(mx) == [old.id]
    current = mx.get(old.id)
    assert (current.valid_until, current.superseded_by) == (None, None)
    # The restore is a new version; the superseded one stays in history.
    history = mx.history(old.id)
    assert [v.version for v in history] == [1, 2, 3]
    assert history[1].superseded_by == new.id and history[2] == current
    # ... and the fact can be superseded again.
    again = mx.supersede(old.id, "Alice works at Umbrella")
    assert recalled(mx) == [again.id]


def test_forgetting_the_middle_of_a_chain_relinks_it(mx: Memex) -> None:
    a, b, c = chain(mx)
    mx.forget(b.id)
    relinked = mx.get(a.id)
    assert (relinked.valid_until, relinked.superseded_by) == (c.valid_from, c.id)
    assert recalled(mx) == [c.id]  # not A and C both current
    assert recalled(mx, as_of=T2 + timedelta(days=1)) == [a.id]  # B never happened
    mx.forget(c.id)  # now A is current again: nothing is left that replaced it
    assert recalled(mx) == [a.id]
    assert mx.get(a.id).valid_until is None


def test_forgetting_the_end_of_a_chain_makes_the_one_before_current(mx: Memex) -> None:
    a, b, c = chain(mx)
    mx.purge(c.id)
    assert recalled(mx) == [b.id]
    assert mx.get(a.id).superseded_by == b.id  # A → B is untouched
    assert len(mx.history(a.id)) == 2


def test_a_supersede_across_scopes_is_undone_from_the_narrower_handle(mx: Memex) -> None:
    """B in project p2 superseded A in p1; a handle on p2 cannot see A, yet forgetting B
    restores A: a supersede links memories of one tenant."""
    p1, p2 = mx.scoped(project="p1"), mx.scoped(project="p2")
    a = p1.remember("Alice works at Initech", kind="fact", created_at=T1)
    b = mx.remember("Alice works at Globex", kind="fact", scope={"project": "p2"}, supersedes=a.id)
    assert recalled(p1) == []
    p2.forget(b.id)
    assert recalled(p1) == [a.id]
    with pytest.raises(NotFoundError):
        p2.get(a.id)  # still out of the narrower handle's sight


def test_a_successor_the_handle_cannot_see_is_still_linked(mx: Memex) -> None:
    p1 = mx.scoped(project="p1")
    a = p1.remember("Alice works at Initech", kind="fact", created_at=T1)
    b = p1.remember("Alice works at Globex", kind="fact", created_at=T2, supersedes=a.id)
    c = mx.remember(
        "Alice works at Hooli", kind="fact", created_at=T3, scope={"project": "p2"},
        supersedes=b.id,
    )  # fmt: skip
    p1.forget(b.id)
    assert mx.get(a.id).superseded_by == c.id
    assert recalled(p1) == []


def test_an_end_of_its_own_is_given_back(mx: Memex) -> None:
    ends = datetime.now(UTC) + timedelta(days=365)
    (old,) = mx.remember_many([{"content": "Alice works at Initech", "valid_until": ends}])
    new = mx.supersede(old.id, "Alice works at Globex")
    mx.forget(new.id)
    assert mx.get(old.id).valid_until == ends and mx.get(old.id).superseded_by is None


def forget_as_before(mx: Memex, memory: Memory) -> None:
    """Forget a memory as memex did before supersedes could be undone: it alone changes."""
    now = datetime.now(UTC)
    gone = memory.with_changes(deleted_at=now, updated_at=now, version=memory.version + 1)
    batch = WriteBatch(updates=[(gone, None, memory.version)])
    mx._engine.store.write(mx.scope, batch, mx._engine.embedding.current_model())


def test_a_chain_through_a_memory_forgotten_long_ago_is_followed(mx: Memex) -> None:
    """Stores written before undoing existed hold chains through forgotten memories:
    A → B → C → D with C forgotten then. Forgetting B links A to D, the first live one."""
    a, b, c = chain(mx)
    d = mx.supersede(c.id, "Alice works at Acme")
    forget_as_before(mx, mx.get(c.id))
    assert mx.get(b.id).superseded_by == c.id
    mx.forget(b.id)
    assert (mx.get(a.id).valid_until, mx.get(a.id).superseded_by) == (d.valid_from, d.id)
    assert recalled(mx) == [d.id]


def test_unsupersede_undoes_a_wrong_supersede(mx: Memex) -> None:
    old = mx.remember("Alice works at Initech", kind="fact", created_at=T1)
    new = mx.supersede(old.id, "Alice works at Globex")
    restored = mx.unsupersede(old.id)
    assert (restored.valid_until, restored.superseded_by) == (None, None)
    assert restored == mx.get(old.id) and restored.version == 3
    assert mx.get(new.id) == new  # the other memory stays as it is
    assert set(recalled(mx)) == {old.id, new.id}
    third = mx.supersede(old.id, "Alice works at Hooli")
    assert mx.get(old.id).superseded_by == third.id


def test_unsupersede_errors(mx: Memex) -> None:
    old = mx.remember("Alice works at Initech")
    with pytest.raises(ValidationError, match="not superseded"):
        mx.unsupersede(old.id)
    with pytest.raises(NotFoundError):
        mx.unsupersede("0190a5c4-0000-7000-8000-000000000000")
    with pytest.raises(ValidationError):
        mx.unsupersede("")
    new = mx.supersede(old.id, "Alice works at Globex")
    mx.forget(old.id)
    with pytest.raises(NotFoundError):  # forgotten memories are not found
        mx.unsupersede(old.id)
    with pytest.raises(NotFoundError):  # nor are memories outside the handle's scope
        mx.scoped(project="elsewhere").unsupersede(new.id)
    assert len(mx.history(new.id)) == 1


def test_forgetting_what_superseded_nothing_touches_nothing_else(mx: Memex) -> None:
    a, b, c = chain(mx)
    other = mx.remember("Bob works at Initech")
    mx.forget(other.id)
    assert [len(mx.history(m.id)) for m in (a, b, c)] == [2, 2, 1]


@pytest.mark.parametrize("remove", ["forget", "purge"])
def test_the_removal_and_the_restore_are_one_transaction(
    mx: Memex, store_path: Path, monkeypatch: pytest.MonkeyPatch, remove: str
) -> None:
    """Another process changes the old memory between the read and the write: the
    removal fails as a whole, and nothing of it is written."""
    old = mx.remember("Alice works at Initech", kind="fact", created_at=T1)
    new = mx.supersede(old.id, "Alice works at Globex")
    store = mx._engine.store
    read_history = store.history

    def history_then_concurrent_update(scope: Scope, memory_id: str) -> list[Memory]:
        found = read_history(scope, memory_id)
        with Memex.open(store_path) as other:
            other.update(old.id, importance=0.9)
        return found

    monkeypatch.setattr(store, "history", history_then_concurrent_update)
    with pytest.raises(ConflictError):
        getattr(mx, remove)(new.id)
    monkeypatch.undo()
    assert mx.get(new.id) == new and len(mx.history(new.id)) == 1
    assert mx.get(old.id).superseded_by == new.id

"""The Store contract. Every backend runs these tests unchanged (see the ``store`` fixture).

Every protocol method is exercised here, through the protocol only: a second handle on
the same store is opened from ``store.info().location``, as another process would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from memex.core.audit import Actor, AuditEvent, verify
from memex.core.ids import new_id
from memex.core.models import Memory, Scope, content_hash
from memex.core.query import Filters
from memex.core.ranking import Candidate
from memex.errors import ConflictError, ScopeError, ValidationError

if TYPE_CHECKING:
    from conftest import Backend  # the fixture's type (tests/conftest.py)

from memex.storage.base import (
    CandidateQuery,
    Candidates,
    SavedContext,
    Store,
    StoredVectors,
    WriteBatch,
)

MODEL = StoredVectors("test:unit", 4)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def vec(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def memory(content: str, *, tenant: str = "t1", minutes: int = 0, **fields: object) -> Memory:
    created = T0 + timedelta(minutes=minutes)
    scope = fields.pop("scope", Scope(tenant=tenant))
    values: dict[str, object] = {
        "id": new_id(),
        "content": content,
        "kind": "fact",
        "scope": scope,
        "tags": (),
        "metadata": {},
        "importance": 0.5,
        "created_at": created,
        "updated_at": created,
        "expires_at": None,
        "last_accessed_at": None,
        "access_count": 0,
        "source": None,
        "content_hash": content_hash(content),
        "version": 1,
        "valid_from": created,
    }
    values.update(fields)
    return Memory(**values)  # type: ignore[arg-type]


def put(store: Store, *items: tuple[Memory, np.ndarray], tenant: str = "t1") -> None:
    store.write(Scope(tenant=tenant), WriteBatch(inserts=list(items)), MODEL)


def flt(tenant: str = "t1", **kwargs: object) -> Filters:
    return Filters.build(scope=Scope(tenant=tenant), **kwargs)  # type: ignore[arg-type]


def get(
    store: Store, scope: Scope, memory_id: str, *, include_deleted: bool = False
) -> Memory | None:
    """A memory by id in any valid time, as ``Memex.get`` asks for it."""
    by_id = Filters(scope=scope, include_deleted=include_deleted, include_superseded=True)
    return store.fetch(by_id, [memory_id]).get(memory_id)


def lexical(store: Store, filters: Filters, terms: list[str], limit: int) -> list[Candidate]:
    return store.candidates(filters, CandidateQuery(terms=tuple(terms), limit=limit)).lexical


def nearest(store: Store, filters: Filters, vector: np.ndarray, limit: int) -> list[Candidate]:
    return store.candidates(filters, CandidateQuery(vector=vector, limit=limit)).vector


def found_ids(store: Store, filters: Filters, query: CandidateQuery) -> list[str]:
    """The ids of one leg's candidates (the leg asked for), best first."""
    got = store.candidates(filters, query)
    leg = got.lexical if query.terms else got.vector
    return [got.ids[c.key] for c in leg]


def everything(lex: Sequence[Candidate], vector: Sequence[Candidate]) -> list[int]:
    """Seeds: every candidate of both legs."""
    return list(dict.fromkeys(c.key for c in (*lex, *vector)))


def contents(store: Store, filters: Filters, found: Candidates, leg: list[Candidate]) -> list[str]:
    return [found.facts[c.key].text for c in leg]


def test_write_get_round_trip(store: Store) -> None:
    m = memory("the sky is blue", tags=("a", "b"), metadata={"k": [1, "x"]}, source="test")
    put(store, (m, vec(1, 0, 0, 0)))
    got = get(store, Scope(tenant="t1"), m.id)
    assert got == m
    assert store.info().vectors == MODEL


def test_a_query_without_tenant_is_refused(store: Store) -> None:
    refused = [
        lambda: store.fetch(Filters(), [new_id()]),
        lambda: store.candidates(Filters(), CandidateQuery(terms=("sky",))),
        lambda: store.candidates(Filters(), CandidateQuery(vector=vec(1, 0, 0, 0))),
        lambda: store.list(Filters(), "asc", 10, None),
        lambda: store.history(Scope(), new_id()),
        lambda: store.stats(Scope(), datetime.now(UTC)),
        lambda: store.changes(Scope(), ["kind:fact"]),
        lambda: store.last_context(Scope(), "s", "h"),
        lambda: store.record(Scope(), {new_id(): (1, T0)}),
        lambda: store.snapshot(Scope(), include_deleted=False, history=False),
        lambda: store.write(Scope(), WriteBatch(inserts=[(memory("x"), vec(1, 0, 0, 0))]), MODEL),
    ]
    for call in refused:
        with pytest.raises(ValidationError):
            call()


def test_tenants_are_isolated(store: Store) -> None:
    a = memory("alpha secret", tenant="t1")
    b = memory("alpha public", tenant="t2")
    put(store, (a, vec(1, 0, 0, 0)), tenant="t1")
    put(store, (b, vec(1, 0, 0, 0)), tenant="t2")
    assert get(store, Scope(tenant="t2"), a.id) is None
    both = CandidateQuery(terms=("alpha",), vector=vec(1, 0, 0, 0), radius=2, seeds=everything)
    found = store.candidates(flt("t2"), both)
    assert {found.ids[c.key] for c in (*found.lexical, *found.vector)} == {b.id}
    assert a.id not in found.ids.values()
    assert len(found.lexical) == len(found.vector) == 1
    assert store.fetch(flt("t2"), [a.id, b.id]) == {b.id: b}
    assert store.history(Scope(tenant="t2"), a.id) == []
    assert store.stats(Scope(tenant="t2"), datetime.now(UTC)).memories == 1
    with pytest.raises(ConflictError):  # another tenant's memory is not there to purge
        store.write(Scope(tenant="t2"), WriteBatch(purges=[(a.id, 1)]), MODEL)
    assert get(store, Scope(tenant="t1"), a.id) == a


def test_tenants_lists_every_tenant_with_memories(store: Store) -> None:
    assert store.tenants() == []
    only = memory("x", tenant="c")
    put(store, (only, vec(1, 0, 0, 0)), tenant="c")
    put(store, (memory("gone", tenant="b", deleted_at=T0), vec(0, 1, 0, 0)), tenant="b")
    put(store, (memory("y", tenant="a"), vec(0, 0, 1, 0)), tenant="a")
    assert store.tenants() == ["a", "b", "c"]
    store.write(Scope(tenant="c"), WriteBatch(purges=[(only.id, 1)]), MODEL)
    assert store.tenants() == ["a", "b"]


def test_tenant_keys_name_the_encrypted_tenants(store: Store, backend: Backend) -> None:
    put(store, (memory("x", tenant="a"), vec(1, 0, 0, 0)), tenant="a")
    keys = store.tenant_keys()
    encrypted = backend.settings.master_key is not None
    assert [tenant for tenant, _ in keys.encrypted()] == (["a"] if encrypted else [])
    assert keys.destroy("nobody") is False


_METADATA_ROWS = {
    "text": {"k": "x"},
    "one": {"k": 1},
    "true": {"k": True},
    "float": {"k": 2.0},
    "null": {"k": None},
    "texty": {"k": "1"},
    "none": {},
}


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ({"k": "x"}, {"text"}),
        ({"k": 1}, {"one", "true"}),  # true is 1, as JSON compares in SQLite
        ({"k": True}, {"one", "true"}),
        ({"k": 2}, {"float"}),
        ({"k": None}, {"null"}),
        ({"k": "1"}, {"texty"}),
        ({"other": "x"}, set()),
    ],
)
def test_metadata_filters_compare_alike(
    store: Store, wanted: dict[str, object], expected: set[str]
) -> None:
    """Every backend, encrypted or not (sealed metadata is compared outside SQL), passes
    the same memories through a metadata filter, in lists and in recall's candidates."""
    made = {name: memory(name, metadata=meta) for name, meta in _METADATA_ROWS.items()}
    put(store, *((m, vec(1, 0, 0, 0)) for m in made.values()))
    names = {m.id: name for name, m in made.items()}
    first = store.list(flt(metadata=wanted), "asc", 1, None)[0]  # a limit, after the filter
    assert len(first) == min(1, len(expected)) and {names[m.id] for m in first} <= expected
    everything = store.list(flt(metadata=wanted), "asc", None, None)[0]
    assert {names[m.id] for m in everything} == expected
    found = store.candidates(
        flt(metadata=wanted), CandidateQuery(vector=vec(1, 0, 0, 0), terms=(), limit=10)
    )
    assert {names[found.ids[c.key]] for c in found.vector} == expected


def test_write_outside_scope_is_refused(store: Store) -> None:
    m = memory("x", scope=Scope(tenant="t1", project="p2"))
    with pytest.raises(ScopeError):
        store.write(
            Scope(tenant="t1", project="p1"), WriteBatch(inserts=[(m, vec(1, 0, 0, 0))]), MODEL
        )
    assert get(store, Scope(tenant="t1"), m.id) is None


def test_batch_is_atomic(store: Store) -> None:
    ok = memory("fine")
    bad = memory("broken vector")
    with pytest.raises(Exception):  # noqa: B017, PT011 - the backend's error for a bad vector
        put(store, (ok, vec(1, 0, 0, 0)), (bad, np.ones(3, dtype=np.float32)))
    assert get(store, Scope(tenant="t1"), ok.id) is None


def test_lexical_search_ranks_and_filters(store: Store) -> None:
    a = memory("pottery class with the kids", kind="event", tags=("art",))
    b = memory("pottery pottery pottery bowl", kind="fact")
    c = memory("camping in the mountains", kind="event")
    put(store, (a, vec(1, 0, 0, 0)), (b, vec(0, 1, 0, 0)), (c, vec(0, 0, 1, 0)))
    found = store.candidates(flt(), CandidateQuery(terms=("pottery",)))
    assert [found.ids[x.key] for x in found.lexical] == [b.id, a.id]
    assert found.lexical[0].score >= found.lexical[1].score > 0
    assert found.vector == [] and found.neighbours == {}
    assert found_ids(store, flt(kinds=["event"]), CandidateQuery(terms=("pottery",))) == [a.id]
    tagged = lexical(store, flt(tags=["art"]), ["pottery", "camping"], 10)
    assert len(tagged) == 1
    assert lexical(store, flt(), ["pottery"], 1) == found.lexical[:1]


def test_vector_search_is_exact_and_filtered(store: Store) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [
        (memory(f"m{i}", kind="event" if i % 3 == 0 else "fact"), vectors[i]) for i in range(300)
    ]
    put(store, *items)
    q = vec(0.3, -0.2, 0.9, 0.1)
    found = store.candidates(flt(), CandidateQuery(vector=q, limit=10))
    expected = np.argsort(-(vectors @ q))[:10]
    assert contents(store, flt(), found, found.vector) == [f"m{i}" for i in expected]
    assert found.lexical == []
    events = store.candidates(flt(kinds=["event"]), CandidateQuery(vector=q, limit=5))
    assert len(events.vector) == 5
    expected_events = [i for i in np.argsort(-(vectors @ q)) if i % 3 == 0][:5]
    assert contents(store, flt(), events, events.vector) == [f"m{i}" for i in expected_events]


def test_writes_of_another_handle_are_seen_at_once(store: Store, backend: Backend) -> None:
    """The write contract: search follows writes, whichever handle or process made them."""
    put(store, (memory("first apple"), vec(1, 0, 0, 0)))
    assert len(nearest(store, flt(), vec(1, 0, 0, 0), 10)) == 1
    assert len(lexical(store, flt(), ["apple"], 10)) == 1
    other = backend.reopen()
    try:
        second = memory("second apple")
        put(other, (second, vec(0.9, 0.1, 0, 0)))
        assert len(nearest(store, flt(), vec(1, 0, 0, 0), 10)) == 2
        assert len(lexical(store, flt(), ["apple"], 10)) == 2
        gone = second.with_changes(deleted_at=datetime.now(UTC), version=2)
        other.write(Scope(tenant="t1"), WriteBatch(updates=[(gone, None, 1)]), MODEL)
        assert len(nearest(store, flt(), vec(1, 0, 0, 0), 10)) == 1
        assert len(lexical(store, flt(), ["apple"], 10)) == 1
        put(other, (memory("third apple"), vec(1, 0, 0, 0)))
        first = found_ids(store, flt(), CandidateQuery(terms=("first",)))
        other.write(Scope(tenant="t1"), WriteBatch(purges=[(first[0], 1)]), MODEL)
        assert lexical(store, flt(), ["first"], 10) == []
        assert len(nearest(store, flt(), vec(1, 0, 0, 0), 10)) == 1
    finally:
        other.close()


def test_update_versions_history_and_conflict(store: Store) -> None:
    m = memory("v1 text")
    put(store, (m, vec(1, 0, 0, 0)))
    v2 = m.with_changes(content="v2 text", content_hash=content_hash("v2 text"), version=2)
    store.write(Scope(tenant="t1"), WriteBatch(updates=[(v2, vec(0, 1, 0, 0), 1)]), MODEL)
    assert get(store, Scope(tenant="t1"), m.id) == v2
    assert [h.content for h in store.history(Scope(tenant="t1"), m.id)] == ["v1 text", "v2 text"]
    stale = m.with_changes(content="lost update", version=2)
    with pytest.raises(ConflictError):
        store.write(Scope(tenant="t1"), WriteBatch(updates=[(stale, None, 1)]), MODEL)
    assert lexical(store, flt(), ["v1"], 10) == []
    assert found_ids(store, flt(), CandidateQuery(vector=vec(0, 1, 0, 0), limit=1)) == [m.id]


def test_past_versions_are_stored_as_given(store: Store) -> None:
    current = memory("v3 text", version=3, access_count=4, updated_at=T0 + timedelta(days=3))
    past = [
        current.with_changes(content=f"v{v} text", content_hash=content_hash(f"v{v} text"),
                             version=v, updated_at=T0 + timedelta(days=v), access_count=0)
        for v in (1, 2)
    ]  # fmt: skip
    batch = WriteBatch(inserts=[(current, vec(1, 0, 0, 0))], history=past)
    store.write(Scope(tenant="t1"), batch, MODEL)
    assert store.history(Scope(tenant="t1"), current.id) == [
        *past,
        current.with_changes(access_count=0),  # history reads no access statistics
    ]
    assert get(store, Scope(tenant="t1"), current.id) == current
    other = memory("other")
    for wrong in (past[0].with_changes(id=other.id), past[0].with_changes(version=3)):
        bad = WriteBatch(inserts=[(other, vec(1, 0, 0, 0))], history=[wrong])
        with pytest.raises(ConflictError):
            store.write(Scope(tenant="t1"), bad, MODEL)
        assert get(store, Scope(tenant="t1"), other.id) is None  # the batch wrote nothing
    # A purge checks the version the memory has now, restored as given.
    store.write(Scope(tenant="t1"), WriteBatch(purges=[(current.id, current.version)]), MODEL)
    assert store.history(Scope(tenant="t1"), current.id) == []


def test_a_snapshot_sees_one_moment(store: Store) -> None:
    first, vector = memory("first", minutes=1), vec(1, 0, 0, 0)
    put(store, (first, vector))
    v2 = first.with_changes(content="first, changed", version=2)
    store.write(Scope(tenant="t1"), WriteBatch(updates=[(v2, None, 1)]), MODEL)
    snapshot = store.snapshot(Scope(tenant="t1"), include_deleted=False, history=True)
    try:
        put(store, (memory("later", minutes=2), vector))
        v3 = v2.with_changes(content="first, changed again", version=3)
        store.write(Scope(tenant="t1"), WriteBatch(updates=[(v3, None, 2)]), MODEL)
        seen = [(m.content, [p.version for p in past]) for m, past in snapshot]
        assert snapshot.total == 1
    finally:
        snapshot.close()
    assert seen == [("first, changed", [1])]


def test_deleted_expired_and_superseded_are_hidden(store: Store) -> None:
    now = datetime.now(UTC)
    gone = memory("deleted one", deleted_at=now)
    old = memory("expired one", expires_at=now - timedelta(seconds=1))
    past = memory("superseded one", valid_until=now - timedelta(days=1), superseded_by=new_id())
    live = memory("live one")
    put(store, *[(x, vec(1, 0, 0, 0)) for x in (gone, old, past, live)])
    one = CandidateQuery(terms=("one",))
    assert found_ids(store, flt(), one) == [live.id]
    assert found_ids(store, flt(), CandidateQuery(vector=vec(1, 0, 0, 0))) == [live.id]
    as_of = flt(as_of=T0 + timedelta(minutes=1))
    # back then the superseded one was valid and the expired one had not expired yet
    assert set(found_ids(store, as_of, one)) == {past.id, live.id, old.id}
    assert set(store.fetch(as_of, [m.id for m in (gone, old, past, live)])) == {
        past.id,
        live.id,
        old.id,
    }
    expiring = Filters(
        scope=Scope(tenant="t1"), include_deleted=True, include_superseded=True, expired_by=now
    )
    assert [m.id for m in store.list(expiring, "asc", None, None)[0]] == [old.id]
    assert get(store, Scope(tenant="t1"), gone.id) is None
    assert get(store, Scope(tenant="t1"), gone.id, include_deleted=True) == gone


def test_list_pages_with_keyset_cursor(store: Store) -> None:
    items = [(memory(f"item {i}", minutes=i), vec(1, 0, 0, 0)) for i in range(25)]
    put(store, *items)
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.list(flt(), "asc", 10, cursor)
        seen.extend(m.content for m in page)
        if cursor is None:
            break
    assert seen == [f"item {i}" for i in range(25)]
    newest, _ = store.list(flt(), "desc", 3, None)
    assert [m.content for m in newest] == ["item 24", "item 23", "item 22"]


@pytest.mark.parametrize(
    "tag", ["work", "work ", "ökologie", 'say "hi"', "back\\slash", "tab\there", "a/b"]
)
def test_tag_filters_are_exact(store: Store, tag: str) -> None:
    tags = [tag.strip(), "homework", f"{tag.strip()}s", f"x{tag.strip()}", "ökologie!"]
    put(
        store,
        *[(memory(f"t{i}", minutes=i, tags=(t,)), vec(1, 0, 0, 0)) for i, t in enumerate(tags)],
    )
    both = memory("both", minutes=9, tags=("other", tag.strip()))
    put(store, (both, vec(1, 0, 0, 0)))
    page, _ = store.list(flt(tags=[tag]), "asc", 50, None)
    assert [m.content for m in page] == ["t0", "both"]
    assert [m.content for m in store.list(flt(tags=[tag, "other"]), "asc", None, None)[0]] == [
        "both"
    ]


def test_a_time_window_is_half_open_and_ordered(store: Store) -> None:
    put(store, *[(memory(f"r{i}", minutes=i), vec(1, 0, 0, 0)) for i in range(10)])
    window = flt(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5))
    got, cursor = store.list(window, "asc", None, None)
    assert [m.content for m in got] == ["r2", "r3", "r4"] and cursor is None
    first, cursor = store.list(flt(), "asc", 2, None)
    assert [m.content for m in first] == ["r0", "r1"] and cursor is not None
    with pytest.raises(ValidationError, match="cursor"):
        store.list(flt(), "asc", 2, "not a cursor")


def test_purge_removes_everything(store: Store) -> None:
    m = memory("purge me")
    keep = memory("keep me", superseded_by=m.id, valid_until=T0)
    put(store, (m, vec(1, 0, 0, 0)), (keep, vec(0, 1, 0, 0)))
    restored = keep.with_changes(superseded_by=None, valid_until=None, version=2)
    batch = WriteBatch(updates=[(restored, None, 1)], purges=[(m.id, 1)])
    store.write(Scope(tenant="t1"), batch, MODEL)
    assert get(store, Scope(tenant="t1"), m.id, include_deleted=True) is None
    assert store.history(Scope(tenant="t1"), m.id) == []
    assert found_ids(store, flt(), CandidateQuery(vector=vec(1, 0, 0, 0), limit=5)) == [keep.id]
    assert lexical(store, flt(), ["purge"], 5) == []
    assert get(store, Scope(tenant="t1"), keep.id) == restored


def test_purge_is_atomic_and_checks_the_version(store: Store) -> None:
    m = memory("purge me")
    other = memory("other")
    put(store, (m, vec(1, 0, 0, 0)), (other, vec(0, 1, 0, 0)))
    stale = other.with_changes(content="changed", version=2)
    for batch in (
        WriteBatch(purges=[(m.id, 2)]),  # m is at version 1, not 2
        WriteBatch(updates=[(stale, None, 5)], purges=[(m.id, 1)]),
        WriteBatch(purges=[(m.id, 1), (new_id(), 1)]),  # the second one is unknown
    ):
        with pytest.raises(ConflictError):
            store.write(Scope(tenant="t1"), batch, MODEL)
        assert get(store, Scope(tenant="t1"), m.id) == m
        assert get(store, Scope(tenant="t1"), other.id) == other
        assert lexical(store, flt(), ["purge"], 5)


def test_reads_are_recorded_without_a_new_version(store: Store) -> None:
    m = memory("read me")
    put(store, (m, vec(1, 0, 0, 0)))
    at = datetime(2025, 5, 5, tzinfo=UTC)
    store.record(Scope(tenant="t1"), {m.id: (3, at)})
    store.record(Scope(tenant="t1"), {m.id: (2, at - timedelta(days=1))})  # an older read
    store.record(Scope(tenant="t2"), {m.id: (5, at)})  # another tenant's: nothing
    got = get(store, Scope(tenant="t1"), m.id)
    assert got is not None and got.access_count == 5 and got.last_accessed_at == at
    assert got.version == 1 and len(store.history(Scope(tenant="t1"), m.id)) == 1
    store.record(Scope(tenant="t1"))  # nothing to record is no error


def test_cached_vectors_by_content_hash(store: Store) -> None:
    m = memory("cache me")
    put(store, (m, vec(0, 0, 1, 0)))
    cached = store.cached_vectors(Scope(tenant="t1"), MODEL.model, [m.content_hash, "0" * 64])
    assert list(cached) == [m.content_hash]
    np.testing.assert_allclose(cached[m.content_hash], vec(0, 0, 1, 0))
    assert store.cached_vectors(Scope(tenant="t2"), MODEL.model, [m.content_hash]) == {}
    assert store.cached_vectors(Scope(tenant="t1"), "other:model", [m.content_hash]) == {}


def test_replace_vectors_swaps_models(store: Store) -> None:
    items = [(memory(f"x{i}"), vec(1, 0, 0, i + 1)) for i in range(5)]
    put(store, *items)
    put(store, (memory("other tenant's", tenant="t2"), vec(1, 0, 0, 0)), tenant="t2")
    new_model = StoredVectors("test:other", 2)
    asked: list[list[str]] = []

    def embed(texts: object) -> np.ndarray:
        batch = list(texts)  # type: ignore[call-overload]
        asked.append(batch)
        return np.array([[1.0, float(len(t))] for t in batch], dtype=np.float32) / 10

    assert store.replace_vectors(new_model, embed, 2) == 6
    assert sorted(len(b) for b in asked) == [2, 2, 2]  # every tenant, in batches
    assert store.info().vectors == new_model
    q = np.array([1.0, 0.0], dtype=np.float32)
    assert len(nearest(store, flt(), q, 10)) == 5
    cached = store.cached_vectors(Scope(tenant="t1"), new_model.model, [items[0][0].content_hash])
    assert list(cached) == [items[0][0].content_hash]

    def broken(texts: object) -> np.ndarray:
        raise RuntimeError("model failed")

    with pytest.raises(RuntimeError):
        store.replace_vectors(StoredVectors("test:third", 2), broken, 2)
    assert store.info().vectors == new_model  # the old set stays


def test_stats_counts(store: Store) -> None:
    now = datetime.now(UTC)
    put(
        store,
        (memory("a", kind="fact"), vec(1, 0, 0, 0)),
        (memory("b", kind="event"), vec(1, 0, 0, 0)),
        (memory("c", deleted_at=now), vec(1, 0, 0, 0)),
    )
    stats = store.stats(Scope(tenant="t1"), now)
    assert stats.memories == 2 and stats.deleted == 1
    assert stats.content_bytes == 2  # "a" and "b": the forgotten "c" is not counted
    assert stats.by_kind == {"event": 1, "fact": 1}
    assert stats.vectors == 3 and stats.versions == 3
    assert stats.size_bytes > 0
    assert store.stats(Scope(tenant="t2"), now).memories == 0


def test_get_and_stats_follow_the_visibility_rule(store: Store) -> None:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    expired = memory("expired", kind="a", expires_at=now - hour)
    recorded = memory("recorded", kind="b", expires_at=now - hour, deleted_at=now - hour / 2)
    forgotten = memory("forgotten", kind="c", expires_at=now + hour, deleted_at=now - hour)
    both = memory("both", kind="d", expires_at=now - hour, valid_until=now - 2 * hour)
    superseded = memory("superseded", kind="e", valid_until=now - hour)
    pending = memory("pending", kind="f", valid_from=now + hour)
    live = memory("live", kind="f")
    items = (expired, recorded, forgotten, both, superseded, pending, live)
    put(store, *[(m, vec(1, 0, 0, 0)) for m in items])
    t1 = Scope(tenant="t1")
    found = {m.content for m in items if get(store, t1, m.id) is not None}
    assert found == {"superseded", "pending", "live"}
    assert all(get(store, t1, m.id, include_deleted=True) == m for m in items)
    stats = store.stats(t1, now)
    counts = [stats.memories, stats.deleted, stats.superseded, stats.expired]
    assert counts == [2, 1, 1, 3]  # each memory once: forgotten > expired > superseded
    assert stats.by_kind == {"f": 2}
    expiring = Filters(scope=t1, include_deleted=True, include_superseded=True, expired_by=now)
    assert [m.id for m in store.list(expiring, "asc", None, None)[0]] == [expired.id, both.id]


def test_vector_search_within_a_project_is_exact(store: Store) -> None:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(240, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [
        (memory(f"p{i}", scope=Scope(tenant="t1", project="a" if i % 5 else "b")), vectors[i])
        for i in range(240)
    ]
    put(store, *items)
    q = vec(-0.4, 0.1, 0.2, 0.9)
    only_b = Filters.build(scope=Scope(tenant="t1", project="b"))
    found = store.candidates(only_b, CandidateQuery(vector=q, limit=7))
    expected = [i for i in np.argsort(-(vectors @ q)) if i % 5 == 0][:7]
    assert contents(store, only_b, found, found.vector) == [f"p{i}" for i in expected]
    nowhere = Filters.build(scope=Scope(tenant="t1", project="zzz"))
    assert nearest(store, nowhere, q, 7) == []


def test_neighbours_follow_the_thread_in_creation_order(store: Store) -> None:
    chat = Scope(tenant="t1", project="p", session="s1")
    turns = [memory(f"turn {i}", minutes=i, kind="message", scope=chat) for i in range(6)]
    other = memory(
        "other session",
        minutes=2,
        kind="message",
        scope=Scope(tenant="t1", project="p", session="s2"),
    )
    fact = memory("a fact in between", minutes=3, scope=chat)  # another kind
    gone = memory("forgotten turn", minutes=4, kind="message", scope=chat, deleted_at=T0)
    put(store, *[(m, vec(1, 0, 0, 0)) for m in [*reversed(turns), other, fact, gone]])
    seen: list[tuple[list[Candidate], list[Candidate]]] = []

    def seeds(lex: Sequence[Candidate], vector: Sequence[Candidate]) -> list[int]:
        seen.append((list(lex), list(vector)))
        by_text = {found.facts[c.key].text: c.key for c in lex if c.key in found.facts}
        return [by_text[t] for t in ("turn 0", "turn 3", "other session") if t in by_text]

    found = store.candidates(flt(), CandidateQuery(terms=("turn", "session", "fact"), limit=20))
    key = {f.text: k for k, f in found.facts.items()}
    k = [key[f"turn {i}"] for i in range(6)]
    query = CandidateQuery(terms=("turn", "session", "fact"), limit=20, radius=2, seeds=seeds)
    around = store.candidates(flt(), query)
    assert seen and seen[0][0] == around.lexical  # seeds chose among the legs' candidates
    assert around.neighbours[k[0]] == [k[1], k[2]]
    assert around.neighbours[k[3]] == [k[2], k[1], k[4], k[5]]  # nearest first on each side
    assert key["other session"] not in around.neighbours  # alone in its thread
    assert set(around.facts) >= {*k, key["other session"]}
    no_radius = CandidateQuery(terms=("turn",), limit=20, radius=0, seeds=seeds)
    assert store.candidates(flt(), no_radius).neighbours == {}


def test_facts_come_for_what_ranking_wants(store: Store) -> None:
    chat = Scope(tenant="t1", project="p", session="s1")
    turns = [memory(f"turn {i} apple", minutes=i, kind="message", scope=chat) for i in range(5)]
    quiet = memory("no fruit here", minutes=9, kind="message", scope=chat)
    put(store, *[(m, vec(1, 0, 0, 0)) for m in [*turns, quiet]])
    asked: list[dict[int, list[int]]] = []

    def first(lex: Sequence[Candidate], vector: Sequence[Candidate]) -> list[int]:
        return [lex[0].key]

    def wanted(
        lex: Sequence[Candidate], vector: Sequence[Candidate], around: Mapping[int, Sequence[int]]
    ) -> list[int]:
        asked.append({seed: list(keys) for seed, keys in around.items()})
        return [lex[-1].key, *(key for keys in around.values() for key in keys)]

    query = CandidateQuery(terms=("apple",), limit=3, radius=1, seeds=first, wanted=wanted)
    found = store.candidates(flt(), query)
    assert asked == [found.neighbours]  # wanted saw the neighbours found
    [(seed, around)] = found.neighbours.items()
    assert seed == found.lexical[0].key and 1 <= len(around) <= 2
    assert set(found.facts) == {found.lexical[-1].key, *around}  # only what was wanted
    assert all(key in found.ids for key in found.facts)  # a page comes from what was wanted
    everything = store.candidates(
        flt(), CandidateQuery(terms=("apple",), limit=3, radius=1, seeds=first)
    )
    assert set(everything.facts) == {*(c.key for c in everything.lexical), *around}
    nothing = CandidateQuery(terms=("apple",), limit=3, wanted=lambda lex, vec, around: [])
    assert store.candidates(flt(), nothing).facts == {}


def test_facts_give_thread_time_importance_and_text(store: Store) -> None:
    chat = Scope(tenant="t1", project="p", session="s1")
    a = memory("turn one", minutes=1, kind="message", scope=chat, importance=0.9)
    b = memory("turn two", minutes=2, kind="message", scope=chat)
    other = memory("turn elsewhere", minutes=1, kind="message", scope=Scope(tenant="t1"))
    note = memory("turn as a note", minutes=1, kind="note", scope=chat)
    gone = memory("turn forgotten", minutes=3, kind="message", scope=chat, deleted_at=T0)
    put(store, *[(m, vec(1, 0, 0, 0)) for m in (a, b, other, note, gone)])
    found = store.candidates(flt(), CandidateQuery(terms=("turn",), vector=vec(1, 0, 0, 0)))
    assert len(found.lexical) == len(found.vector) == 4  # the forgotten one is no candidate
    by_text = {f.text: f for f in found.facts.values()}
    assert set(by_text) == {"turn one", "turn two", "turn elsewhere", "turn as a note"}
    assert by_text["turn one"].importance == 0.9
    assert {found.ids[k] for k, f in found.facts.items() if f.text == "turn one"} == {a.id}
    assert by_text["turn one"].thread == by_text["turn two"].thread
    assert by_text["turn one"].thread != by_text["turn elsewhere"].thread  # other scope
    assert by_text["turn one"].thread != by_text["turn as a note"].thread  # other kind
    micros = by_text["turn two"].created_us - by_text["turn one"].created_us
    assert micros == 60_000_000
    project = Filters.build(scope=Scope(tenant="t1", project="p"))
    in_project = store.candidates(project, CandidateQuery(terms=("turn",)))
    assert {f.text for f in in_project.facts.values()} == {"turn one", "turn two", "turn as a note"}
    assert store.candidates(flt(), CandidateQuery()) == Candidates()


def test_info_says_what_the_store_is(store: Store, backend: Backend) -> None:
    info = store.info()
    assert info.location and info.read_only is None and info.schema_version >= 1
    assert info.vectors is None and isinstance(info.memories, int) and info.memories >= 0
    assert all(path.is_absolute() for path in info.files)
    put(store, *[(memory(f"m{i}"), vec(1, 0, 0, 0)) for i in range(3)])
    info = store.info()
    assert info.vectors == MODEL and info.memories >= 0  # an estimate: may lag
    read_only = backend.reopen(read_only=True)
    try:
        assert read_only.info().read_only
        assert get(read_only, Scope(tenant="t1"), store.list(flt(), "asc", 1, None)[0][0].id)
    finally:
        read_only.close()


def test_every_version_is_kept_in_history(store: Store) -> None:
    """The write contract: a write that replaces a memory keeps the replaced version."""
    t1 = Scope(tenant="t1")
    m = memory("first words", tags=("a",))
    put(store, (m, vec(1, 0, 0, 0)))
    v2 = m.with_changes(tags=("b",), version=2, updated_at=T0 + timedelta(hours=1))
    store.write(t1, WriteBatch(updates=[(v2, None, 1)]), MODEL)
    v3 = v2.with_changes(deleted_at=T0 + timedelta(hours=2), version=3)
    store.write(t1, WriteBatch(updates=[(v3, None, 2)]), MODEL)
    assert store.history(t1, m.id) == [m, v2, v3]
    assert store.stats(t1, datetime.now(UTC)).versions == 3
    store.record(t1, {m.id: (1, T0)})  # bookkeeping is no version
    assert len(store.history(t1, m.id)) == 3


def test_change_counters_count_every_write_by_kind_and_tag(store: Store, backend: Backend) -> None:
    """The write contract: counters move for the kinds and tags a write touches, before
    and after the change, within the tenant and project; nothing else moves them."""
    t1 = Scope(tenant="t1")
    keys = ["kind:fact", "kind:event", "tag:a", "tag:b", "tag:c"]
    assert store.changes(t1, keys) == dict.fromkeys(keys, 0)
    m = memory("counted", kind="fact", tags=("a",), scope=Scope(tenant="t1", project="p"))
    put(store, (m, vec(1, 0, 0, 0)))
    after_insert = store.changes(t1, keys)
    assert after_insert["kind:fact"] > 0 and after_insert["tag:a"] > 0
    assert after_insert["kind:event"] == after_insert["tag:b"] == after_insert["tag:c"] == 0
    v2 = m.with_changes(kind="event", tags=("b",), version=2)
    store.write(t1, WriteBatch(updates=[(v2, None, 1)]), MODEL)
    after_update = store.changes(t1, keys)
    for key in ("kind:fact", "kind:event", "tag:a", "tag:b"):  # old and new both count
        assert after_update[key] > after_insert[key], key
    assert after_update["tag:c"] == 0
    store.record(t1, {m.id: (1, T0)})
    assert store.changes(t1, keys) == after_update  # bookkeeping changes nothing
    store.write(t1, WriteBatch(purges=[(m.id, 2)]), MODEL)
    after_purge = store.changes(t1, keys)
    assert after_purge["kind:event"] > after_update["kind:event"]
    assert after_purge["tag:b"] > after_update["tag:b"]
    assert store.changes(Scope(tenant="t1", project="p"), keys) == after_purge
    assert store.changes(Scope(tenant="t1", project="q"), keys) == dict.fromkeys(keys, 0)
    assert store.changes(Scope(tenant="t2"), keys) == dict.fromkeys(keys, 0)
    other = backend.reopen()  # seen from any handle
    try:
        assert other.changes(t1, keys) == after_purge
    finally:
        other.close()


def test_session_contexts_are_recorded_and_shared_by_prefix(store: Store) -> None:
    t1 = Scope(tenant="t1")
    m = memory("shown in a context")
    put(store, (m, vec(1, 0, 0, 0)))
    assert store.last_context(t1, "s1", "h1") == (None, 0)
    store.record(t1, context=SavedContext("s1", "context one", "h1", (m.id,)))
    store.record(t1, context=SavedContext("s2", "context two", "h1", ()))
    store.record(Scope(tenant="t2"), context=SavedContext("s3", "elsewhere", "h1", ()))
    assert store.last_context(t1, "s1", "h1") == ("context one", 1)  # s2 shares h1
    assert store.last_context(t1, "s2", "h2") == ("context two", 0)
    store.record(t1, context=SavedContext("s1", "context one, later", "h2", (m.id,)))
    assert store.last_context(t1, "s1", "h1") == ("context one, later", 1)
    assert store.last_context(t1, "s3", "h1") == (None, 1)  # t2's s3 is not t1's
    # A purge of a memory a context shows drops that context.
    store.write(t1, WriteBatch(purges=[(m.id, 1)]), MODEL)
    assert store.last_context(t1, "s1", "h2") == (None, 0)
    assert store.last_context(t1, "s2", "h1")[0] == "context two"


def test_a_backup_is_a_whole_store(store: Store, backend: Backend) -> None:
    put(store, *[(memory(f"kept {i}"), vec(1, 0, 0, 0)) for i in range(4)])
    put(store, (memory("other tenant", tenant="t2"), vec(1, 0, 0, 0)), tenant="t2")
    target = backend.backup_target()
    assert store.backup(target) == 5
    copy = backend.open_backup(target)
    try:
        assert [m.content for m in copy.list(flt(), "asc", None, None)[0]] == [
            f"kept {i}" for i in range(4)
        ]
        assert len(lexical(copy, flt("t2"), ["tenant"], 5)) == 1  # indexes rebuilt
        assert len(nearest(copy, flt(), vec(1, 0, 0, 0), 10)) == 4
    finally:
        copy.close()


def test_built_indexes_answer_like_the_tables(store: Store, backend: Backend) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    put(store, *[(memory(f"word{i % 7} item {i}"), vectors[i]) for i in range(60)])
    query = CandidateQuery(terms=("word3",), vector=vectors[5], limit=10)
    before = store.candidates(flt(), query)
    store.build_indexes("t1")
    store.build_indexes(None, lagging_only=True)
    assert store.candidates(flt(), query) == before
    other = backend.reopen()  # what the next process finds
    try:
        assert other.candidates(flt(), query) == before
    finally:
        other.close()


def test_close_releases_and_a_reopen_sees_everything(store: Store, backend: Backend) -> None:
    m = memory("durable")
    put(store, (m, vec(1, 0, 0, 0)))
    store.close()
    store.close()  # closing twice is harmless
    again = backend.reopen()
    try:
        assert get(again, Scope(tenant="t1"), m.id) == m
    finally:
        again.close()


def test_a_batch_and_its_audit_entry_commit_together(store: Store, backend: Backend) -> None:
    who = Actor("k1", user="ana", client="192.0.2.1", user_agent="ua")
    first = memory("secret words")
    event = AuditEvent("t1", "memory.remember", "memory", who, first.id)
    store.write(
        Scope(tenant="t1"), WriteBatch(inserts=[(first, vec(1, 0, 0, 0))], audit=event), MODEL
    )
    updated = first.with_changes(content="more secret", version=2)
    store.write(
        Scope(tenant="t1"),
        WriteBatch(
            updates=[(updated, None, 1)],
            audit=AuditEvent("t1", "memory.update", "memory", who, first.id),
        ),
        MODEL,
    )
    # A batch that fails (a stale version) leaves neither its change nor its entry.
    with pytest.raises(ConflictError):
        store.write(
            Scope(tenant="t1"),
            WriteBatch(
                updates=[(updated, None, 1)],
                audit=AuditEvent("t1", "memory.update", "memory", who, first.id),
            ),
            MODEL,
        )
    put(store, (memory("unaudited"), vec(0, 1, 0, 0)))  # no event: no entry
    trail = store.audit().trail("t1")
    assert [(e.seq, e.action, e.resource_id) for e in trail.entries] == [
        (1, "memory.remember", first.id),
        (2, "memory.update", first.id),
    ]
    assert trail.entries[0].user == "ana" and trail.entries[0].client == "192.0.2.1"
    assert verify(trail.entries, trail.head).ok
    assert "secret" not in repr(trail)
    # Another tenant's chain is its own, and a batch's event must be of its tenant.
    assert store.audit().trail("t2").entries == ()
    with pytest.raises(ScopeError):
        store.write(
            Scope(tenant="t2"),
            WriteBatch(inserts=[(memory("x", tenant="t2"), vec(1, 0, 0, 0))], audit=event),
            MODEL,
        )
    assert store.audit().trail("t2").head is None
    other = backend.reopen()  # what another process reads
    try:
        assert other.audit().trail("t1") == trail
    finally:
        other.close()


DIRECTORY = "test_directory_contract.py"
PRIVACY = "test_privacy_contract.py"


def test_the_suite_exercises_every_protocol_method() -> None:
    # The directory's and the privacy operations' contracts are in modules of their own.
    here = Path(__file__)
    source = "".join(
        p.read_text() for p in (here, here.with_name(DIRECTORY), here.with_name(PRIVACY))
    )
    methods = [
        name for name, value in vars(Store).items() if callable(value) and not name.startswith("_")
    ]
    # 17 questions about memories, and four doors to parts with contracts of their
    # own: directory(), audit(), tenant_keys() and privacy().
    assert len(methods) <= 21
    missing = [name for name in methods if f".{name}(" not in source]
    assert missing == []

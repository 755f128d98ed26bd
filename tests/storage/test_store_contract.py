"""The Store contract. Every backend runs these tests unchanged (see the ``store`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memex.core.ids import new_id
from memex.core.models import Memory, Scope, content_hash
from memex.core.query import Filters
from memex.errors import ConflictError, ScopeError, ValidationError
from memex.storage.base import Store, StoredVectors, WriteBatch

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


def test_write_get_round_trip(store: Store) -> None:
    m = memory("the sky is blue", tags=("a", "b"), metadata={"k": [1, "x"]}, source="test")
    put(store, (m, vec(1, 0, 0, 0)))
    got = store.get(Scope(tenant="t1"), m.id)
    assert got == m
    assert store.vectors_model() == MODEL


def test_a_query_without_tenant_is_refused(store: Store) -> None:
    with pytest.raises(ValidationError):
        store.get(Scope(), new_id())
    with pytest.raises(ValidationError):
        store.search_lexical(Filters(), ["sky"], 10)


def test_tenants_are_isolated(store: Store) -> None:
    a = memory("alpha secret", tenant="t1")
    b = memory("alpha public", tenant="t2")
    put(store, (a, vec(1, 0, 0, 0)), tenant="t1")
    put(store, (b, vec(1, 0, 0, 0)), tenant="t2")
    assert store.get(Scope(tenant="t2"), a.id) is None
    lexical = store.search_lexical(flt("t2"), ["alpha"], 10)
    assert set(store.fetch(flt("t2"), [c.key for c in lexical])) and all(
        m.scope.tenant == "t2" for m in store.fetch(flt("t2"), [c.key for c in lexical]).values()
    )
    vector = store.search_vector(flt("t2"), vec(1, 0, 0, 0), 10)
    assert len(vector) == 1
    assert store.fetch(flt("t1"), [c.key for c in vector]) == {}
    assert store.history(Scope(tenant="t2"), a.id) == []
    with pytest.raises(ConflictError):  # another tenant's memory is not there to purge
        store.write(Scope(tenant="t2"), WriteBatch(purges=[(a.id, 1)]), MODEL)
    assert store.get(Scope(tenant="t1"), a.id) == a


def test_write_outside_scope_is_refused(store: Store) -> None:
    m = memory("x", scope=Scope(tenant="t1", project="p2"))
    with pytest.raises(ScopeError):
        store.write(
            Scope(tenant="t1", project="p1"), WriteBatch(inserts=[(m, vec(1, 0, 0, 0))]), MODEL
        )
    assert store.get(Scope(tenant="t1"), m.id) is None


def test_batch_is_atomic(store: Store) -> None:
    ok = memory("fine")
    bad = memory("broken vector")
    with pytest.raises(Exception):  # noqa: B017, PT011 - the backend's error for a bad vector
        put(store, (ok, vec(1, 0, 0, 0)), (bad, np.ones(3, dtype=np.float32)))
    assert store.get(Scope(tenant="t1"), ok.id) is None


def test_lexical_search_ranks_and_filters(store: Store) -> None:
    a = memory("pottery class with the kids", kind="event", tags=("art",))
    b = memory("pottery pottery pottery bowl", kind="fact")
    c = memory("camping in the mountains", kind="event")
    put(store, (a, vec(1, 0, 0, 0)), (b, vec(0, 1, 0, 0)), (c, vec(0, 0, 1, 0)))
    found = store.search_lexical(flt(), ["pottery"], 10)
    hydrated = store.fetch(flt(), [x.key for x in found])
    assert [hydrated[x.key].id for x in found] == [b.id, a.id]
    assert found[0].score >= found[1].score > 0
    only_events = store.search_lexical(flt(kinds=["event"]), ["pottery"], 10)
    assert [store.fetch(flt(), [x.key])[x.key].id for x in only_events] == [a.id]
    tagged = store.search_lexical(flt(tags=["art"]), ["pottery", "camping"], 10)
    assert len(tagged) == 1


def test_vector_search_is_exact_and_filtered(store: Store) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [
        (memory(f"m{i}", kind="event" if i % 3 == 0 else "fact"), vectors[i]) for i in range(300)
    ]
    put(store, *items)
    q = vec(0.3, -0.2, 0.9, 0.1)
    found = store.search_vector(flt(), q, 10)
    expected = np.argsort(-(vectors @ q))[:10]
    got = store.fetch(flt(), [x.key for x in found])
    assert [got[x.key].content for x in found] == [f"m{i}" for i in expected]
    events = store.search_vector(flt(kinds=["event"]), q, 5)
    got_events = store.fetch(flt(), [x.key for x in events])
    assert len(events) == 5 and all(m.kind == "event" for m in got_events.values())
    expected_events = [i for i in np.argsort(-(vectors @ q)) if i % 3 == 0][:5]
    assert [got_events[x.key].content for x in events] == [f"m{i}" for i in expected_events]


def test_vectors_written_by_another_handle_are_seen(store: Store, tmp_path: object) -> None:
    put(store, (memory("first"), vec(1, 0, 0, 0)))
    assert len(store.search_vector(flt(), vec(1, 0, 0, 0), 10)) == 1
    put(store, (memory("second"), vec(0.9, 0.1, 0, 0)))
    assert len(store.search_vector(flt(), vec(1, 0, 0, 0), 10)) == 2


def test_update_versions_history_and_conflict(store: Store) -> None:
    m = memory("v1 text")
    put(store, (m, vec(1, 0, 0, 0)))
    v2 = m.with_changes(content="v2 text", content_hash=content_hash("v2 text"), version=2)
    store.write(Scope(tenant="t1"), WriteBatch(updates=[(v2, vec(0, 1, 0, 0), 1)]), MODEL)
    assert store.get(Scope(tenant="t1"), m.id) == v2
    assert [h.content for h in store.history(Scope(tenant="t1"), m.id)] == ["v1 text", "v2 text"]
    stale = m.with_changes(content="lost update", version=2)
    with pytest.raises(ConflictError):
        store.write(Scope(tenant="t1"), WriteBatch(updates=[(stale, None, 1)]), MODEL)
    assert store.search_lexical(flt(), ["v1"], 10) == []
    top = store.search_vector(flt(), vec(0, 1, 0, 0), 1)
    assert store.fetch(flt(), [top[0].key])[top[0].key].id == m.id


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
    assert store.get(Scope(tenant="t1"), current.id) == current
    other = memory("other")
    for wrong in (past[0].with_changes(id=other.id), past[0].with_changes(version=3)):
        bad = WriteBatch(inserts=[(other, vec(1, 0, 0, 0))], history=[wrong])
        with pytest.raises(ConflictError):
            store.write(Scope(tenant="t1"), bad, MODEL)
        assert store.get(Scope(tenant="t1"), other.id) is None  # the batch wrote nothing
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
    found = store.search_lexical(flt(), ["one"], 10)
    assert [store.fetch(flt(), [c.key])[c.key].id for c in found] == [live.id]
    as_of = flt(as_of=T0 + timedelta(minutes=1))
    found_then = store.fetch(as_of, [c.key for c in store.search_lexical(as_of, ["one"], 10)])
    # back then the superseded one was valid and the expired one had not expired yet
    assert {m.id for m in found_then.values()} == {past.id, live.id, old.id}
    assert [m.id for m in store.expired(Scope(tenant="t1"), now)] == [old.id]
    assert store.get(Scope(tenant="t1"), gone.id) is None
    assert store.get(Scope(tenant="t1"), gone.id, include_deleted=True) == gone


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
    assert [m.content for m in store.range(flt(tags=[tag, "other"]), None, None, None)] == ["both"]


def test_range_is_half_open_and_ordered(store: Store) -> None:
    put(store, *[(memory(f"r{i}", minutes=i), vec(1, 0, 0, 0)) for i in range(10)])
    got = store.range(flt(), T0 + timedelta(minutes=2), T0 + timedelta(minutes=5), None)
    assert [m.content for m in got] == ["r2", "r3", "r4"]
    assert [m.content for m in store.range(flt(), None, None, 2)] == ["r0", "r1"]


def test_purge_removes_everything(store: Store) -> None:
    m = memory("purge me")
    keep = memory("keep me", superseded_by=m.id, valid_until=T0)
    put(store, (m, vec(1, 0, 0, 0)), (keep, vec(0, 1, 0, 0)))
    restored = keep.with_changes(superseded_by=None, valid_until=None, version=2)
    batch = WriteBatch(updates=[(restored, None, 1)], purges=[(m.id, 1)])
    store.write(Scope(tenant="t1"), batch, MODEL)
    assert store.get(Scope(tenant="t1"), m.id, include_deleted=True) is None
    assert store.history(Scope(tenant="t1"), m.id) == []
    hits = store.search_vector(flt(), vec(1, 0, 0, 0), 5)
    assert [x.id for x in store.fetch(flt(), [c.key for c in hits]).values()] == [keep.id]
    assert store.search_lexical(flt(), ["purge"], 5) == []
    assert store.get(Scope(tenant="t1"), keep.id) == restored


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
        assert store.get(Scope(tenant="t1"), m.id) == m
        assert store.get(Scope(tenant="t1"), other.id) == other
        assert [c.key for c in store.search_lexical(flt(), ["purge"], 5)]


def test_access_is_recorded_without_a_new_version(store: Store) -> None:
    m = memory("read me")
    put(store, (m, vec(1, 0, 0, 0)))
    at = datetime(2025, 5, 5, tzinfo=UTC)
    store.record_access(Scope(tenant="t1"), {m.id: (3, at)})
    got = store.get(Scope(tenant="t1"), m.id)
    assert got is not None and got.access_count == 3 and got.last_accessed_at == at
    assert got.version == 1 and len(store.history(Scope(tenant="t1"), m.id)) == 1


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
    new_model = StoredVectors("test:other", 2)
    batches = (
        [
            (key, content_hash(text), np.array([1.0, key], dtype=np.float32) / np.hypot(1, key))
            for key, _, text in rows
        ]
        for rows in store.iter_contents(2)
    )
    assert store.replace_vectors(new_model, batches) == 5
    assert store.vectors_model() == new_model
    assert len(store.search_vector(flt(), np.array([1.0, 0.0], dtype=np.float32), 10)) == 5


def test_stats_counts(store: Store) -> None:
    now = datetime.now(UTC)
    put(
        store,
        (memory("a", kind="fact"), vec(1, 0, 0, 0)),
        (memory("b", kind="event"), vec(1, 0, 0, 0)),
        (memory("c", deleted_at=now), vec(1, 0, 0, 0)),
    )
    stats = store.stats(Scope(tenant="t1"), now)
    assert stats["memories"] == 2 and stats["deleted"] == 1
    assert stats["by_kind"] == {"event": 1, "fact": 1}
    assert stats["vectors"] == 3 and stats["versions"] == 3
    assert store.stats(Scope(tenant="t2"), now)["memories"] == 0


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
    found = {m.content for m in items if store.get(t1, m.id) is not None}
    assert found == {"superseded", "pending", "live"}
    assert all(store.get(t1, m.id, include_deleted=True) == m for m in items)
    stats = store.stats(t1, now)
    counts = [stats[k] for k in ("memories", "deleted", "superseded", "expired")]
    assert counts == [2, 1, 1, 3]  # each memory once: forgotten > expired > superseded
    assert stats["by_kind"] == {"f": 2}
    assert [m.id for m in store.expired(t1, now)] == [expired.id, both.id]


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
    found = store.search_vector(only_b, q, 7)
    got = store.fetch(only_b, [c.key for c in found])
    expected = [i for i in np.argsort(-(vectors @ q)) if i % 5 == 0][:7]
    assert [got[c.key].content for c in found] == [f"p{i}" for i in expected]
    nowhere = Filters.build(scope=Scope(tenant="t1", project="zzz"))
    assert store.search_vector(nowhere, q, 7) == []


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
    keys = {c.key: c for c in store.search_lexical(flt(), ["turn", "session", "fact"], 20)}
    by_content = {m.content: key for key, m in store.fetch(flt(), list(keys)).items()}
    k = [by_content[f"turn {i}"] for i in range(6)]
    found = store.neighbours(flt(), [k[0], k[3], by_content["other session"]], 2)
    assert found[k[0]] == [k[1], k[2]]
    assert found[k[3]] == [k[2], k[1], k[4], k[5]]  # nearest first on each side
    assert by_content["other session"] not in found  # alone in its thread
    assert store.neighbours(flt(), [k[0]], 0) == {}
    assert store.neighbours(flt(), [], 2) == {}


def test_placements_give_thread_time_and_text_of_live_memories(store: Store) -> None:
    chat = Scope(tenant="t1", project="p", session="s1")
    a = memory("turn one", minutes=1, kind="message", scope=chat)
    b = memory("turn two", minutes=2, kind="message", scope=chat)
    other = memory("turn elsewhere", minutes=1, kind="message", scope=Scope(tenant="t1"))
    note = memory("turn as a note", minutes=1, kind="note", scope=chat)
    gone = memory("turn forgotten", minutes=3, kind="message", scope=chat, deleted_at=T0)
    put(store, *[(m, vec(1, 0, 0, 0)) for m in (a, b, other, note, gone)])
    keys = [c.key for c in store.search_lexical(flt(), ["turn"], 20)]
    assert len(keys) == 4  # the forgotten one is not a candidate
    gone_key = max(keys) + 1  # written last: the next key
    placed = store.placements(flt(), [*keys, gone_key])
    by_text = {p.text: p for p in placed.values()}
    assert set(by_text) == {"turn one", "turn two", "turn elsewhere", "turn as a note"}
    assert by_text["turn one"].thread == by_text["turn two"].thread
    assert by_text["turn one"].thread != by_text["turn elsewhere"].thread  # other scope
    assert by_text["turn one"].thread != by_text["turn as a note"].thread  # other kind
    micros = by_text["turn two"].created_us - by_text["turn one"].created_us
    assert micros == 60_000_000
    project = Filters.build(scope=Scope(tenant="t1", project="p"))
    in_project = store.placements(project, keys)
    assert {p.text for p in in_project.values()} == {"turn one", "turn two", "turn as a note"}
    assert store.placements(flt(), []) == {}

"""The Python API, in the shape other tools rely on, against a real store file, a real
PostgreSQL store and a real memex server: ``memex.Client`` passes the same API tests as
the local ``Memex`` (the few that are about a local store say why they skip it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memex import (
    Client,
    ConfigError,
    Hit,
    Memex,
    Memory,
    NotFoundError,
    ScopeError,
    StoreCorruptError,
    ValidationError,
)

LOCAL = pytest.mark.local
"""A test of the local handle only; the reason is its argument."""


@pytest.fixture(params=["sqlite", "postgres", "server"])
def mx(request: pytest.FixtureRequest, store_path: Path) -> Iterator[Memex]:
    """A store of each backend, and a memex server (a tenant of its own on a server the
    session shares, through ``Client``): these tests hold for all three."""
    if request.param == "server":
        local = request.node.get_closest_marker("local")
        if local is not None:
            pytest.skip(local.args[0])
        _, key = request.getfixturevalue("memex_server").new_tenant()
        with Client(request.getfixturevalue("memex_server").url, key) as client:
            yield client  # type: ignore[misc]
        return
    location = (
        request.getfixturevalue("postgres_url") if request.param == "postgres" else store_path
    )
    with Memex.open(location) as handle:
        yield handle


def test_documented_shape(mx: Memex) -> None:
    m = mx.remember(
        "text",
        kind="fact",
        tags=["a"],
        metadata={"k": "v"},
        scope={"project": "p", "user": "u"},
        importance=0.5,
        created_at=None,
    )
    assert isinstance(m, Memory)
    assert m.kind == "fact" and m.tags == ("a",) and m.metadata == {"k": "v"}
    assert m.scope.project == "p" and m.scope.user == "u" and m.scope.tenant == mx.scope.tenant
    assert m.version == 1 and m.valid_from == m.created_at and len(m.content_hash) == 64
    ms = mx.remember_many([{"content": "one", "metadata": {"n": 1}}, {"content": "two"}])
    assert [x.content for x in ms] == ["one", "two"]
    hits = mx.recall(
        "text",
        k=10,
        scope={"project": "p"},
        kinds=["fact"],
        tags=["a"],
        since=None,
        until=None,
        metadata={"k": "v"},
    )
    assert [type(h) for h in hits] == [Hit] and hits[0].memory.id == m.id
    assert isinstance(hits[0].score, float)
    assert mx.get(m.id) == m
    updated = mx.update(m.id, content="new text", tags=["b"])
    assert updated.version == 2 and updated.tags == ("b",)
    forgotten = mx.forget(m.id)
    assert forgotten.deleted_at is not None
    assert [v.content for v in mx.history(m.id)] == ["text", "new text", "new text"]
    assert mx.stats().memories == 2 and mx.stats().read_only is None


def test_default_store_lives_in_memex_home(tmp_path: Path) -> None:
    with Memex.open() as mx:
        mx.remember("stored in the default place")
        assert Path(mx.location) == tmp_path / "home" / "memex.db"
        assert mx.scope.tenant == "default"


def test_recall_ranks_the_relevant_memory_first(mx: Memex) -> None:
    mx.remember_many(
        [
            {"content": "Melanie signed up for a pottery class to relax"},
            {"content": "Caroline went to an LGBTQ support group on Sunday"},
            {"content": "The team moved the deploy to Thursday afternoons"},
            {"content": "Bob is allergic to peanuts"},
        ]
    )
    assert mx.recall("What class did Melanie sign up for?", k=1)[0].memory.content.startswith(
        "Melanie signed up"
    )
    assert "deploy" in mx.recall("when are releases shipped", k=1)[0].memory.content
    lexical = mx.recall("peanuts", k=4, mode="lexical")
    assert [h.memory.content for h in lexical] == ["Bob is allergic to peanuts"]
    assert len(mx.recall("peanuts", k=4, mode="vector")) == 4


def test_recall_scores_descend_and_explain(mx: Memex) -> None:
    mx.remember_many([{"content": f"note number {i} about gardening"} for i in range(20)])
    hits = mx.recall("gardening notes", k=10)
    assert len(hits) == 10
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {"lexical", "vector"} <= hits[0].explain.keys()


def test_filters(mx: Memex) -> None:
    t = datetime(2024, 3, 1, tzinfo=UTC)
    mx.remember("alpha decision", kind="decision", tags=["x"], metadata={"team": "a"}, created_at=t)
    mx.remember(
        "alpha fact",
        kind="fact",
        tags=["y"],
        metadata={"team": "b"},
        created_at=t + timedelta(days=10),
    )

    def contents(**kw: object) -> set[str]:
        return {h.memory.content for h in mx.recall("alpha", **kw)}  # type: ignore[arg-type]

    assert contents(kinds=["decision"]) == {"alpha decision"}
    assert contents(tags=["y"]) == {"alpha fact"}
    assert contents(metadata={"team": "a"}) == {"alpha decision"}
    assert contents(since=t + timedelta(days=1)) == {"alpha fact"}
    assert contents(until=t + timedelta(days=1)) == {"alpha decision"}


# A server's client has its key's scope; narrower ones are other keys (docs/security.md).
@LOCAL("scoped() makes handles on other tenants and scopes: a Client is its key's scope")
def test_scoped_handle_cannot_leak(mx: Memex) -> None:
    mx.remember("shared default note")
    acme = mx.scoped(tenant="acme", project="web")
    secret = acme.remember("acme web secret")
    assert secret.scope.tenant == "acme" and secret.scope.project == "web"
    other = mx.scoped(tenant="acme", project="api")
    with pytest.raises(NotFoundError):
        other.get(secret.id)
    with pytest.raises(NotFoundError):
        mx.get(secret.id)
    assert all(h.memory.scope.tenant == "default" for h in mx.recall("secret note"))
    assert [h.memory.id for h in acme.recall("secret")] == [secret.id]
    with pytest.raises(ScopeError):
        acme.remember("escape", scope={"project": "api"})
    with pytest.raises(ScopeError):
        acme.recall("secret", scope={"project": "api"})
    with pytest.raises(ScopeError):
        acme.scoped(project="api")
    with pytest.raises(ScopeError):
        acme.scoped(tenant="default")
    with pytest.raises(NotFoundError):
        other.forget(secret.id)
    with pytest.raises(NotFoundError):
        other.purge(secret.id)
    assert acme.stats().memories == 1 and other.stats().memories == 0
    with pytest.raises(ScopeError):
        acme.reindex()


scope_values = st.sampled_from(["a", "b", "c"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(st.tuples(scope_values, scope_values, scope_values), min_size=1, max_size=12),
    view=st.tuples(scope_values, st.one_of(st.none(), scope_values)),
)
def test_property_scoped_reads_stay_in_scope(
    tmp_path_factory: pytest.TempPathFactory,
    writes: list[tuple[str, str, str]],
    view: tuple[str, str | None],
) -> None:
    path = tmp_path_factory.mktemp("prop") / "m.db"
    with Memex.open(path) as root:
        for tenant, project, user in writes:
            root.scoped(tenant=tenant, project=project, user=user).remember(
                f"memo {tenant} {project} {user}"
            )
        tenant, project = view
        handle = (
            root.scoped(tenant=tenant, project=project) if project else root.scoped(tenant=tenant)
        )
        expected = sum(1 for w in writes if w[0] == tenant and (project is None or w[1] == project))
        seen = handle.list(limit=100).items
        assert len(seen) == expected
        hits = handle.recall("memo", k=50)
        for m in [*seen, *(h.memory for h in hits)]:
            assert m.scope.tenant == tenant
            assert project is None or m.scope.project == project


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.text(min_size=1, max_size=300).filter(lambda s: s.strip() and "\x00" not in s),
    tags=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), max_size=4),
    meta=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.one_of(
            st.integers(-1000, 1000),
            st.text(max_size=20).filter(lambda s: "\x00" not in s),  # NUL is refused
            st.booleans(),
            st.none(),
        ),
        max_size=4,
    ),
    importance=st.floats(0, 1),
)
def test_property_round_trip(
    mx: Memex, content: str, tags: list[str], meta: dict[str, object], importance: float
) -> None:
    m = mx.remember(content, tags=tags, metadata=meta, importance=importance)
    got = mx.get(m.id)
    assert got.content == content
    assert list(got.tags) == list(dict.fromkeys(tags))
    assert got.metadata == meta
    assert got.importance == importance


def test_supersede_keeps_history_and_answers_as_of(mx: Memex) -> None:
    t1 = datetime(2024, 1, 1, tzinfo=UTC)
    t2 = datetime(2024, 6, 1, tzinfo=UTC)
    old = mx.remember("Alice works at Initech", kind="fact", created_at=t1)
    new = mx.remember("Alice works at Globex", kind="fact", created_at=t2, supersedes=old.id)
    assert [h.memory.id for h in mx.recall("where does Alice work")] == [new.id]
    then = mx.recall("where does Alice work", as_of=t1 + timedelta(days=30))
    assert [h.memory.id for h in then] == [old.id]
    both = {h.memory.id for h in mx.recall("Alice works", as_of=t2 + timedelta(days=1))}
    assert both == {new.id}
    history = mx.history(old.id)
    assert [v.version for v in history] == [1, 2]
    assert history[-1].superseded_by == new.id and history[-1].valid_until == t2
    assert mx.get(old.id).superseded_by == new.id  # still readable by id
    with pytest.raises(ValidationError):
        mx.remember("again", supersedes=old.id)
    third = mx.supersede(new.id, "Alice works at Hooli")
    assert third.kind == "fact" and mx.get(new.id).superseded_by == third.id


# Recording passed expiries is maintenance of the whole store, with no HTTP route.
@LOCAL("expire() is store maintenance, run where the store is")
def test_expiry(mx: Memex) -> None:
    keep = mx.remember("keep me")
    brief = mx.remember("brief memory", ttl=0.3)
    assert brief.expires_at is not None
    time.sleep(0.4)
    assert [h.memory.id for h in mx.recall("memory me", k=10)] == [keep.id]
    assert mx.stats().expired == 1
    assert mx.expire() == 1
    assert mx.history(brief.id)[-1].deleted_at is not None
    assert mx.expire() == 0


def test_forget_and_purge(mx: Memex) -> None:
    m = mx.remember("to be forgotten")
    mx.forget(m.id)
    with pytest.raises(NotFoundError):
        mx.get(m.id)
    with pytest.raises(NotFoundError):
        mx.forget(m.id)
    assert mx.recall("forgotten") == []
    assert len(mx.history(m.id)) == 2
    assert [x.id for x in mx.list(include_deleted=True).items] == [m.id]
    assert mx.purge(f" {m.id.upper()} ") == m.id  # the id as stored
    with pytest.raises(NotFoundError):
        mx.history(m.id)
    with pytest.raises(NotFoundError):
        mx.purge(m.id)


def test_list_and_range(mx: Memex) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    mx.remember_many(
        [
            {
                "content": f"event {i}",
                "created_at": base + timedelta(hours=i),
                "kind": "event" if i % 2 else "note",
                "tags": ["odd"] if i % 2 else [],
            }
            for i in range(30)
        ]
    )
    page = mx.list(limit=7, order="asc")
    ids = [m.id for m in page.items]
    while page.next_cursor:
        page = mx.list(limit=7, order="asc", cursor=page.next_cursor)
        ids.extend(m.id for m in page.items)
    assert len(ids) == 30 and len(set(ids)) == 30
    odd = mx.list(kinds=["event"], tags=["odd"], limit=100).items
    assert len(odd) == 15 and odd[0].content == "event 29"
    window = mx.range(base + timedelta(hours=5), base + timedelta(hours=8))
    assert [m.content for m in window] == ["event 5", "event 6", "event 7"]
    assert len(mx.range(limit=4)) == 4
    with pytest.raises(ValidationError):
        mx.range(base + timedelta(hours=2), base)
    with pytest.raises(ValidationError):
        mx.list(cursor="garbage!")


def test_reads_record_access_in_batches(store_path: Path) -> None:
    with Memex.open(store_path, access_flush_seconds=3600) as mx:
        m = mx.remember("count my reads")
        mx.get(m.id)
        mx.recall("reads")
        assert mx.get(m.id).access_count == 0  # still pending, not written per read
    with Memex.open(store_path) as mx:
        got = mx.get(m.id)
        assert got.access_count == 3 and got.last_accessed_at is not None
        assert got.version == 1 and len(mx.history(m.id)) == 1


# The server embeds; the client has no embedder whose calls could be counted.
@LOCAL("counts the calls of this process's embedder")
def test_embedding_cache_reuses_vectors(mx: Memex) -> None:
    calls: list[int] = []
    embedder = mx.embedder
    original = embedder.embed

    def counting(texts: list[str]) -> object:
        calls.append(len(texts))
        return original(texts)

    embedder.embed = counting  # type: ignore[method-assign]
    mx.remember_many([{"content": "same text"}, {"content": "other text"}])
    mx.remember_many([{"content": "same text"}, {"content": "third text"}])
    assert calls == [2, 1]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda mx: mx.remember(""), ValidationError),
        (lambda mx: mx.remember("x" * 70_000), ValidationError),
        (lambda mx: mx.remember("x", kind="Not A Kind"), ValidationError),
        (lambda mx: mx.remember("x", importance=2), ValidationError),
        (lambda mx: mx.remember("x", scope={"team": "x"}), ValidationError),
        (lambda mx: mx.remember("x", ttl=-1), ValidationError),
        (lambda mx: mx.remember("x", created_at="not a date"), ValidationError),
        (lambda mx: mx.remember_many([{"content": "x", "colour": "red"}]), ValidationError),
        (lambda mx: mx.recall(""), ValidationError),
        (lambda mx: mx.recall("x", k=0), ValidationError),
        (lambda mx: mx.recall("x", mode="fuzzy"), ValidationError),
        (lambda mx: mx.get("0190f0f0-0000-7000-8000-000000000000"), NotFoundError),
        (lambda mx: mx.update("0190f0f0-0000-7000-8000-000000000000", content="x"), NotFoundError),
        (lambda mx: mx.list(limit=0), ValidationError),
    ],
)
def test_bad_input(mx: Memex, call: object, error: type[Exception]) -> None:
    mx.remember("already here")
    with pytest.raises(error):
        call(mx)  # type: ignore[operator]
    assert mx.stats().memories == 1


def test_failed_batch_writes_nothing(mx: Memex) -> None:
    with pytest.raises(ValidationError):
        mx.remember_many([{"content": "fine"}, {"content": ""}])
    assert mx.stats().memories == 0
    m = mx.remember("exists")
    with pytest.raises(ValidationError):
        mx.remember_many([{"content": "new"}, {"content": "dup", "id": m.id}])
    assert mx.stats().memories == 1


def test_content_limit_is_configurable(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMEX_MAX_CONTENT_BYTES", "10")
    with Memex.open(store_path) as mx:
        with pytest.raises(ValidationError, match="over the limit of 10"):
            mx.remember("x" * 11)
        mx.remember("x" * 10)


def test_settings_errors(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMEX_BUSY_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="busy_timeout"):
        Memex.open(store_path)
    monkeypatch.delenv("MEMEX_BUSY_TIMEOUT")
    with pytest.raises(ConfigError, match="unknown embedder"):
        Memex.open(store_path, embedder="word2vec")


def test_corrupt_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    payload = b"this is not a database" * 100
    path.write_bytes(payload)
    with pytest.raises(StoreCorruptError):
        Memex.open(path)
    assert path.read_bytes() == payload


def _exported_ids(mx: Memex, **selection: object) -> list[str]:
    import json

    return [json.loads(line)["id"] for line in mx.export_lines(**selection)]  # type: ignore[arg-type]


def test_export_of_a_selection(mx: Memex, tmp_path: Path) -> None:
    """An export narrowed by ids, scope, kinds, tags and a time window holds exactly the
    memories a listing with those filters holds (superseded ones too), oldest first."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    a, b, c, d = mx.remember_many(
        [
            {"content": "alpha", "kind": "fact", "tags": ["x", "y"], "created_at": t0},
            {"content": "bravo", "kind": "note", "tags": ["x"], "created_at": t0 + timedelta(1)},
            {"content": "charlie", "kind": "fact", "scope": {"project": "p"},
             "created_at": t0 + timedelta(2)},
            {"content": "delta", "kind": "fact", "tags": ["x"], "created_at": t0 + timedelta(3)},
        ]
    )  # fmt: skip
    forgotten = mx.remember("echo", kind="fact", created_at=t0 + timedelta(4))
    mx.forget(forgotten.id)
    assert _exported_ids(mx, kinds=["fact"]) == [a.id, c.id, d.id]
    assert _exported_ids(mx, tags=["x"]) == [a.id, b.id, d.id]
    assert _exported_ids(mx, tags=["x", "y"]) == [a.id]
    assert _exported_ids(mx, scope={"project": "p"}) == [c.id]
    assert _exported_ids(mx, since=t0 + timedelta(1), until=t0 + timedelta(3)) == [b.id, c.id]
    assert _exported_ids(mx, ids=[d.id, a.id, "0190a0a0-0000-7000-8000-000000000000"]) == [
        a.id,
        d.id,
    ]
    assert _exported_ids(mx, ids=[d.id, a.id], kinds=["note"]) == []
    assert _exported_ids(mx, ids=[forgotten.id]) == []
    assert _exported_ids(mx, ids=[forgotten.id], include_deleted=True) == [forgotten.id]
    assert _exported_ids(mx, ids=[]) == []
    mx.update(a.id, content="alpha, edited")
    [line] = mx.export_lines(ids=[a.id], history=True)
    assert '"alpha, edited"' in line and '"history"' in line and '"alpha"' in line
    out = tmp_path / "selection.jsonl"
    assert mx.export(out, kinds=["fact"], tags=["x"]) == 2
    assert [line.split('"id": "')[1][:36] for line in out.read_text().splitlines()] == [a.id, d.id]
    with pytest.raises(ValidationError):
        list(mx.export_lines(ids="not a list"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        list(mx.export_lines(since="2024-02-01", until="2024-01-01"))

"""The privacy part of the Store contract (``Store.privacy()``), on every backend, and
on PostgreSQL what an erase leaves in the server's rows and relation files."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from memex import Memex
from memex.core.privacy import Selector
from memex.errors import ConflictError
from memex.storage.base import Store, WriteBatch

if TYPE_CHECKING:
    from conftest import PostgresForTests

from test_store_contract import MODEL, memory, vec

from memex.core.models import Scope


def put(store: Store, *memories: object) -> None:
    store.write(
        Scope(tenant="t1"),
        WriteBatch(inserts=[(m, vec(1, i + 1, 0, 0)) for i, m in enumerate(memories)]),
        MODEL,
    )


def test_erase_batch_takes_only_the_selected(store: Store) -> None:
    alice = [memory(f"alice {i}", scope=Scope(tenant="t1", user="alice")) for i in range(3)]
    bob = memory("bob", scope=Scope(tenant="t1", user="bob"))
    put(store, *alice, bob)
    privacy = store.privacy()
    selector = Selector.of("t1", user="alice")
    assert privacy.count(selector) == 3 and privacy.known(selector)
    assert not privacy.known(Selector.of("t2", user="alice"))
    assert privacy.superseding("t1", [m.id for m in alice]) == set()
    done = privacy.erase_batch(selector, [alice[0].id, alice[1].id, bob.id])
    assert sorted(done.ids) == sorted([alice[0].id, alice[1].id])
    assert done.counts == {"memories": 2, "versions": 2, "vectors": 2, "sessions": 0}
    assert privacy.scrub_pending()
    assert privacy.count(selector) == 1
    assert store.history(Scope(tenant="t1"), bob.id) != []
    privacy.scrub()
    assert not privacy.scrub_pending()


def test_erase_rest_removes_the_directory_entries(store: Store) -> None:
    from memex.security.admin import Admin

    admin = Admin(store.directory(), "t1")
    admin.create_user("t1", "alice")
    admin.create_key("t1", "read_only", user="alice")
    admin.create_key("t1", "read_only")
    before = store.directory().generation()
    rest = store.privacy().erase_rest(Selector.of("t1", user="alice"))
    assert (rest.counts["keys"], rest.counts["users"], rest.counts["sessions"]) == (1, 0 + 1, 0)
    assert store.directory().users("t1") == [] and len(store.directory().keys("t1")) == 1
    assert store.directory().generation() > before
    whole = store.privacy().erase_rest(Selector.of("t1"))
    assert (whole.counts["keys"], whole.counts["tenants"]) == (1, 1)
    assert store.directory().tenant("t1") is None


def test_anonymise_renames_every_version(store: Store) -> None:
    m = memory("alice's note", scope=Scope(tenant="t1", user="alice"))
    put(store, m)
    privacy = store.privacy()
    counts = privacy.anonymise(Selector.of("t1", user="alice"), "anon-1")
    assert counts["memories"] == 1
    assert [v.scope.user for v in store.history(Scope(tenant="t1"), m.id)] == ["anon-1"]
    put(store, memory("x", scope=Scope(tenant="t1", user="bob")))
    with pytest.raises(ConflictError, match="exists"):
        privacy.anonymise(Selector.of("t1", user="bob"), "anon-1")


# -- PostgreSQL: rows and relation files after an erase ----------------------------------------


@pytest.mark.parametrize("what", ["user", "project", "tenant"])
def test_postgres_erase_leaves_no_row_and_no_relation_file_with_the_text(
    postgres: PostgresForTests, postgres_url: str, what: str
) -> None:
    server = postgres.server
    if server is None:
        pytest.skip("the server's files are not on this machine")
    gone = [f"zqgone{i}x{secrets.token_hex(3)}" for i in range(30)]
    kept = [f"zqkept{i}x{secrets.token_hex(3)}" for i in range(10)]
    name = {"user": "alice", "project": "web", "tenant": "acme"}[what]
    where = {} if what == "tenant" else {what: name}
    with Memex.open(postgres_url) as mx:
        mx.admin.create_user("default", "alice")
        mx.admin.create_project("default", "web")
        target = mx.scoped(tenant="acme") if what == "tenant" else mx
        target.remember_many([{"content": f"about {g}", "scope": where} for g in gone])
        mx.remember_many([{"content": f"about {k}", "scope": {"user": "bob"}} for k in kept])
        first = target.list(scope=where, limit=1).items[0]
        target.update(first.id, content=f"{first.content} again")
        target.context("about", 2000, session="s", scope=where)
        receipt = mx.erase(**{what: name}, batch_size=7)
    assert receipt.counts["memories"] == 30
    # The application role may not CHECKPOINT: the receipt says so, and an operator runs it.
    assert any("CHECKPOINT" in note for note in receipt.notes)
    schema = postgres_url.split("search_path%3D", 1)[1].split("%2C", 1)[0]
    database = postgres_url.split("@/", 1)[1].split("?", 1)[0]
    server.psql("CHECKPOINT", database)  # type: ignore[attr-defined]
    tables = server.psql(  # type: ignore[attr-defined]
        f"SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 't', 'i')",
        database,
    ).split()
    rows = server.psql(  # type: ignore[attr-defined]
        "SELECT string_agg(t::text, ' ') FROM ("
        + " UNION ALL ".join(
            f"SELECT x::text AS t FROM {schema}.{name} x"
            for name in ("memories", "memory_history", "memory_terms", "context_sessions",
                         "tenant_users")
        )
        + ") s",
        database,
    )  # fmt: skip
    assert not any(g in rows for g in gone)
    if what == "user":
        assert "alice" not in rows
    assert all(k in rows for k in kept)
    data = Path(server.data)  # type: ignore[attr-defined]
    paths = [
        server.psql(f"SELECT pg_relation_filepath({oid})", database).strip()  # type: ignore[attr-defined]
        for oid in tables
    ]
    blobs = b"".join(
        f.read_bytes() for p in paths if p for f in sorted(data.glob(p + "*")) if f.is_file()
    )
    assert blobs
    assert [g for g in gone if g.encode() in blobs] == []
    assert [k for k in kept if k.encode() in blobs] == kept

"""The PostgreSQL directory's wall: its tables (key hashes among them) are seen only by
the directory's own transactions (``memex.directory = 'on'``), never by a transaction
about memories, whatever tenant it names, nor by whole-store work."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from test_store_contract import MODEL, memory, vec  # the contract suite's helpers

from memex import Settings
from memex.core.identity import ApiKey, Role, Tenant, User
from memex.core.models import Scope, utcnow
from memex.storage.base import Store, WriteBatch
from memex.storage.open import open_store
from memex.storage.postgres.migrate import LATEST

DIRECTORY = [
    "tenants",
    "tenant_users",
    "tenant_projects",
    "api_keys",
    "directory_generation",
    "tenant_quotas",
]
BINDINGS = {
    "nothing set": {},
    "a tenant": {"memex.tenant": "acme"},
    "the key's own tenant id": {"memex.tenant": "k1"},
    "whole-store work": {"memex.all_tenants": "on"},
    "the directory switched off": {"memex.directory": "off"},
}


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Store]:
    store = open_store(postgres_url, Settings())
    d = store.directory()
    d.add_tenant(Tenant("acme", utcnow()))
    d.add_user(User("acme", "alice", utcnow()))
    d.add_key(ApiKey("k1", "acme", Role.OWNER, "secret-hash-1", utcnow()))
    m = memory("acme's memory", tenant="acme")
    store.write(Scope(tenant="acme"), WriteBatch(inserts=[(m, vec(1, 0, 0, 0))]), MODEL)
    yield store
    store.close()


def bound(conn: psycopg.Connection[tuple[object, ...]], settings: dict[str, str]) -> None:
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


@pytest.mark.parametrize("binding", list(BINDINGS))
def test_key_hashes_are_out_of_reach_of_every_other_transaction(
    pg: Store, postgres_url: str, binding: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False)
        forced = conn.execute(
            "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity "
            "AND relnamespace = current_schema()::regnamespace"
        ).fetchall()
        assert {r[0] for r in forced} >= set(DIRECTORY)
        with conn.transaction(force_rollback=True):
            bound(conn, BINDINGS[binding])
            for table in DIRECTORY:
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
            assert conn.execute("SELECT hash FROM api_keys WHERE id = 'k1'").fetchall() == []
            assert conn.execute("UPDATE api_keys SET hash = 'mine'").rowcount == 0
            assert conn.execute("UPDATE directory_generation SET value = 0").rowcount == 0
            assert conn.execute("DELETE FROM tenant_users").rowcount == 0
        with conn.transaction(force_rollback=True):
            bound(conn, BINDINGS[binding])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    "INSERT INTO api_keys (id, tenant, role, hash, created_at) "
                    "VALUES ('k2', 'acme', 'owner', 'forged', 0)"
                )
        # The planner's statistics of the hashes are hidden from the role as well.
        conn.execute("ANALYZE api_keys")
        stats = conn.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'api_keys'")
        assert stats.fetchone() == (0,)
    assert pg.directory().key("k1").hash == "secret-hash-1"  # type: ignore[union-attr]


def test_the_directory_s_transactions_see_no_memories(pg: Store, postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with conn.transaction(force_rollback=True):
            bound(conn, {"memex.directory": "on"})
            # The gate the directory's statements open, and nothing else.
            assert conn.execute("SELECT hash FROM api_keys").fetchall() == [("secret-hash-1",)]
            for table in ("memories", "memory_history", "memory_terms", "change_counters"):
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        with conn.transaction(force_rollback=True):
            bound(conn, {"memex.tenant": "acme"})
            assert conn.execute("SELECT count(*) FROM memories").fetchone() == (1,)
        # The setting ends with its transaction.
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)


def test_a_schema_4_store_is_upgraded_to_an_empty_directory(postgres_url: str) -> None:
    store = open_store(postgres_url, Settings())
    m = memory("kept across the upgrade", tenant="acme")
    store.write(Scope(tenant="acme"), WriteBatch(inserts=[(m, vec(1, 0, 0, 0))]), MODEL)
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        # Back to schema 4: as a store written before the directory existed.
        conn.execute(f"DROP TABLE {', '.join(DIRECTORY)}, audit_entries, audit_heads")
        conn.execute("DROP TABLE tenant_keys")  # and the later schemas' changes
        for table in ("memories", "memory_history"):
            conn.execute(f"ALTER TABLE {table} DROP sealed_content, DROP sealed_metadata")
        conn.execute("ALTER TABLE context_sessions DROP sealed_text")
        bound(conn, {"memex.all_tenants": "on"})
        conn.execute("UPDATE memex_meta SET value = '4' WHERE key = 'schema_version'")
    store = open_store(postgres_url, Settings())
    try:
        assert store.info().schema_version == LATEST
        d = store.directory()
        assert (d.tenants(), d.keys(None), d.generation()) == ([], [], 0)
        d.add_tenant(Tenant("acme", utcnow()))
        assert d.generation() == 1 and [t.name for t in d.tenants()] == ["acme"]
        assert store.tenants() == ["acme"]  # the memories are where they were
    finally:
        store.close()

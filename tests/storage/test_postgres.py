"""What the PostgreSQL backend promises beyond the contract suite: row-level security,
many processes on one store, crashes mid-batch, and one-line errors for bad setups."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psycopg
import pytest
from clirun import run_cli

from memex import Settings
from memex.core.models import Scope
from memex.errors import ConfigError, SchemaVersionError, StoreError
from memex.storage.base import Store, WriteBatch
from memex.storage.open import open_store

if TYPE_CHECKING:
    from conftest import PostgresForTests

    from tests.storage.conftest import KillMidway

from test_store_contract import MODEL, memory, vec  # the contract suite's helpers

TABLES = ["memories", "memory_history", "change_counters", "context_sessions", "memory_terms",
          "memory_term_totals", "context_session_memories"]  # fmt: skip


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Store]:
    store = open_store(postgres_url, Settings())
    yield store
    store.close()


def own_server(postgres: PostgresForTests) -> object:
    if postgres.server is None:
        pytest.skip("needs the tests' own server (a superuser): MEMEX_TEST_POSTGRES_URL is set")
    return postgres.server


def fill_two_tenants(store: Store) -> None:
    for tenant in ("a", "b"):
        m = memory(f"{tenant} secret", tenant=tenant, tags=("x",))
        store.write(Scope(tenant=tenant), WriteBatch(inserts=[(m, vec(1, 0, 0, 0))]), MODEL)
        v2 = m.with_changes(content=f"{tenant} secret, changed", version=2)
        store.write(Scope(tenant=tenant), WriteBatch(updates=[(v2, None, 1)]), MODEL)


def test_the_application_role_is_bound_by_row_level_security(pg: Store, postgres_url: str) -> None:
    fill_two_tenants(pg)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False)
        forced = conn.execute(
            "SELECT relname FROM pg_class WHERE relrowsecurity AND relforcerowsecurity "
            "AND relnamespace = current_schema()::regnamespace"
        ).fetchall()
        assert {r[0] for r in forced} >= {*TABLES, "memex_meta"}
        # No tenant set: nothing to see, nothing to change.
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        assert conn.execute("UPDATE memories SET content = 'x'").rowcount == 0
        assert conn.execute("DELETE FROM memory_history").rowcount == 0
        # Tenant a's setting: a's rows only; b's can be neither read nor written.
        with conn.transaction():
            conn.execute("SELECT set_config('memex.tenant', 'a', true)")
            tenants = conn.execute("SELECT DISTINCT tenant FROM memories").fetchall()
            assert tenants == [("a",)]
            history = conn.execute("SELECT DISTINCT tenant FROM memory_history").fetchall()
            assert history == [("a",)]
            assert (
                conn.execute("UPDATE memories SET content = 'x' WHERE tenant = 'b'").rowcount == 0
            )
            assert conn.execute("DELETE FROM change_counters WHERE tenant = 'b'").rowcount == 0
        for forbidden in (
            "INSERT INTO change_counters (tenant, project, key, version) "
            "VALUES ('b', '', 'kind:fact', 1)",
            "UPDATE memories SET tenant = 'b' WHERE tenant = 'a'",
        ):
            with conn.transaction(force_rollback=True):
                conn.execute("SELECT set_config('memex.tenant', 'a', true)")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(forbidden)
        # The setting ends with its transaction.
        assert conn.execute("SELECT count(*) FROM memories").fetchone() == (0,)
    assert [m.content for m in pg.list(flt_b(), "asc", None, None)[0]] == ["b secret, changed"]


def flt_b() -> object:
    from memex.core.query import Filters

    return Filters(scope=Scope(tenant="b"))


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from memex import Settings
    from memex.core.models import Scope
    from memex.storage.base import WriteBatch
    from memex.storage.open import open_store
    from test_store_contract import MODEL, memory

    url, name, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = open_store(url, Settings())
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    ready_after = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    for b in range(batches):
        if b == ready_after:
            print("ready", flush=True)
        vectors = rng.normal(size=(size, 4)).astype(np.float32)
        items = [(memory(f"{name} batch {b} item {i}", kind="fact", tags=("shared",)), vectors[i])
                 for i in range(size)]
        store.write(Scope(tenant="t1"), WriteBatch(inserts=items), MODEL)
    store.close()
    """
)


def _env() -> dict[str, str]:
    import os

    tests = Path(__file__).parent
    path = os.pathsep.join([str(tests), str(tests.parent), str(tests.parent.parent)])
    return {**os.environ, "PYTHONPATH": path}


@pytest.mark.slow
def test_four_processes_write_1000_memories_each(pg: Store, postgres_url: str) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, postgres_url, f"w{n}", "20", "50"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for n in range(4)
    ]
    for child in children:
        _, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
    stats = pg.stats(Scope(tenant="t1"), memory("x").created_at)
    assert stats.memories == stats.versions == stats.vectors == 4000
    changes = pg.changes(Scope(tenant="t1"), ["kind:fact", "tag:shared"])
    assert changes == {"kind:fact": 4000, "tag:shared": 4000}  # no lost counter update


@pytest.mark.slow
def test_a_client_killed_mid_batch_leaves_it_wholly_in_or_out(
    pg: Store, postgres_url: str, kill_midway: KillMidway, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    # Each child says ready once its first batch is in, then is killed during a later one.
    kill_midway([WRITER, postgres_url, "killed", "1000", "400", "1"], "ready")
    stats = pg.stats(Scope(tenant="t1"), memory("x").created_at)
    assert stats.memories >= 3 * 400 and stats.memories % 400 == 0
    assert stats.vectors == stats.memories
    assert pg.changes(Scope(tenant="t1"), ["kind:fact"])["kind:fact"] == stats.memories


def test_a_dropped_connection_is_a_store_error_and_the_next_call_works(
    pg: Store, postgres: PostgresForTests
) -> None:
    server = own_server(postgres)
    put_one = WriteBatch(inserts=[(memory("before"), vec(1, 0, 0, 0))])
    pg.write(Scope(tenant="t1"), put_one, MODEL)
    server.psql(  # type: ignore[attr-defined]
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'memex'"
    )
    batch = WriteBatch(inserts=[(memory(f"after {i}"), vec(1, 0, 0, 0)) for i in range(50)])
    failed: list[StoreError] = []
    try:
        pg.write(Scope(tenant="t1"), batch, MODEL)
    except StoreError as exc:
        failed.append(exc)
    assert all("\n" not in str(exc) for exc in failed)
    again = WriteBatch(inserts=[(memory("again"), vec(1, 0, 0, 0))])
    pg.write(Scope(tenant="t1"), again, MODEL)
    count = pg.stats(Scope(tenant="t1"), memory("x").created_at).memories
    assert count in (2, 52)  # the dropped batch is wholly in or wholly out


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://memex:pw@/memex?host={tmp_path}"  # no server listens there
    with pytest.raises(StoreError) as caught:
        open_store(url, Settings())
    assert "could not reach" in one_line(caught.value)
    assert "pw" not in str(caught.value).replace("postgresql", "")
    result = run_cli(["--store", url, "list"])
    assert result.exit_code == 3
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_wrong_credentials_are_one_line(postgres: PostgresForTests) -> None:
    server = own_server(postgres)
    url = server.url("memex_tests", password="wrong")  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as caught:
        open_store(url, Settings())
    assert "password authentication failed" in one_line(caught.value)
    assert "wrong" not in str(caught.value)


def test_a_database_without_pgvector_is_refused(postgres: PostgresForTests) -> None:
    server = own_server(postgres)
    name = "memex_no_vector"
    url = server.create_database(name, with_vector=False)  # type: ignore[attr-defined]
    try:
        with pytest.raises(ConfigError) as caught:
            open_store(url, Settings())
        assert "CREATE EXTENSION vector" in one_line(caught.value)
        result = run_cli(["--store", url, "list"])
        assert result.exit_code == 3 and "pgvector" in result.stderr
    finally:
        server.drop_database(name)  # type: ignore[attr-defined]


def test_a_schema_from_a_newer_memex_is_refused(pg: Store, postgres_url: str) -> None:
    pg.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('memex.all_tenants', 'on', true)")
        conn.execute("UPDATE memex_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError) as caught:
        open_store(postgres_url, Settings())
    assert "999" in one_line(caught.value)


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with pytest.raises(ConfigError, match=r"memex\[postgres\]"):
        open_store(postgres_url, Settings())


def test_vectors_are_searched_through_hnsw_in_a_large_store(postgres_url: str) -> None:
    store = open_store(postgres_url, Settings(ann_min_vectors=100))
    try:
        rng = np.random.default_rng(5)
        vectors = rng.normal(size=(400, 4)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        items = [(memory(f"v{i}"), vectors[i]) for i in range(400)]
        store.write(Scope(tenant="t1"), WriteBatch(inserts=items), MODEL)
        store.build_indexes(None, lagging_only=True)
        with psycopg.connect(postgres_url) as conn:
            names = conn.execute("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%hnsw%'")
            assert [r[0] for r in names] == ["memories_embedding_hnsw_half_4"]
        from memex.core.query import Filters
        from memex.storage.base import CandidateQuery

        q = vectors[7]
        found = store.candidates(Filters(scope=Scope(tenant="t1")), CandidateQuery(vector=q))
        exact = np.argsort(-(vectors @ q))[:10]
        got = [found.facts[c.key].text for c in found.vector[:10]]
        assert len(set(got) & {f"v{i}" for i in exact}) >= 8  # approximate, but close
    finally:
        store.close()


def test_recording_reads_leaves_the_memory_row_alone(pg: Store, postgres_url: str) -> None:
    from memex.core.models import utcnow
    from memex.core.query import Filters

    m = memory("read me often", tenant="a")
    pg.write(Scope(tenant="a"), WriteBatch(inserts=[(m, vec(1, 0, 0, 0))]), MODEL)

    def row_version() -> object:
        with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT set_config('memex.tenant', 'a', true)")
            return conn.execute("SELECT ctid, xmin FROM memories").fetchall()

    before = row_version()
    at = utcnow()
    pg.record(Scope(tenant="a"), {m.id: (2, at)})
    pg.record(Scope(tenant="a"), {m.id: (1, at)})
    assert row_version() == before
    got = pg.fetch(Filters(scope=Scope(tenant="a")), [m.id])[m.id]
    assert (got.access_count, got.last_accessed_at) == (3, at)

"""Shared fixtures: real store files in temporary directories, and a real PostgreSQL
server (started once per session, or the one MEMEX_TEST_POSTGRES_URL names), over every
backend."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from memexserver import MemexServer
from redisserver import RedisServer, redis_binary

from memex import Memex, Settings
from memex.storage.base import Store
from memex.storage.open import open_store


@dataclass(frozen=True)
class Backend:
    """How the contract suite reaches one backend: a fresh store, another handle on it
    (as another process would open it) and a store made by ``Store.backup``."""

    name: str
    settings: Settings
    folder: Path
    url: str | None = None
    """A server's store (PostgreSQL); None: a store file in ``folder``."""

    @property
    def location(self) -> str | Path:
        return self.url if self.url is not None else self.folder / "contract.db"

    def open(self) -> Store:
        return open_store(self.location, self.settings)

    def reopen(self, *, read_only: bool = False) -> Store:
        return open_store(self.location, self.settings.with_changes(read_only=read_only))

    def backup_target(self) -> Path:
        return self.folder / "backup" / "contract-copy.db"

    def open_backup(self, target: Path) -> Store:
        return open_store(target, self.settings)


TEST_MASTER_KEY = "6d656d65782074657374206d6173746572206b657920666f722074657374732e"
"""A master key for tests only (32 bytes in hex)."""

BACKENDS = {
    "sqlite": Settings(),
    # The derived indexes from the first memory: the full-text (tantivy) and approximate
    # vector paths, which the defaults take only in large stores.
    "sqlite-indexed": Settings(lexical_index_min=1, ann_min_vectors=64),
    # Encryption at rest: every tenant's memories sealed with its own data key.
    "sqlite-encrypted": Settings(master_key=TEST_MASTER_KEY),
    "postgres": Settings(),
    "postgres-encrypted": Settings(master_key=TEST_MASTER_KEY),
}
SERVER_BACKENDS = {"postgres", "postgres-encrypted"}


class PostgresForTests:
    """Where the tests' PostgreSQL stores live: a server of our own (tests/pgserver.py) or
    the one MEMEX_TEST_POSTGRES_URL names. Each store gets a schema of its own."""

    def __init__(self) -> None:
        self.server = None
        self.base = os.environ.get("MEMEX_TEST_POSTGRES_URL")
        if self.base is None:
            import pgserver

            self.server = pgserver.start()
            self.base = self.server.create_database("memex_tests")
        self._names = itertools.count()

    def new_store(self) -> str:
        """A URL for a store in a new, empty schema."""
        import psycopg

        assert self.base is not None
        name = f"memex_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return self.in_schema(name)

    def in_schema(self, schema: str) -> str:
        assert self.base is not None
        joiner = "&" if "?" in self.base else "?"
        return f"{self.base}{joiner}options={quote(f'-csearch_path={schema},public', safe='')}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    """The PostgreSQL server of this test session."""
    found = PostgresForTests()
    yield found
    found.stop()


@pytest.fixture
def postgres_url(postgres: PostgresForTests) -> str:
    """A fresh PostgreSQL store's URL (an empty schema of its own)."""
    return postgres.new_store()


@pytest.fixture(scope="session")
def memex_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemexServer]:
    """A real ``memex serve`` on loopback, shared by the session's tests: each test
    takes a tenant of its own (``MemexServer.new_tenant``)."""
    server = MemexServer(tmp_path_factory.mktemp("memex-server"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real ``redis-server`` on loopback for one test module (skipped without one,
    except under CI)."""
    server = RedisServer(redis_binary(), tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real store or config."""
    monkeypatch.setenv("MEMEX_HOME", str(tmp_path / "home"))
    # Commands run in their own process unless a test asks for the warm one.
    monkeypatch.setenv("MEMEX_WARM", "0")
    # Tables are cut to the terminal's width: the same width whatever runs the tests.
    monkeypatch.setenv("COLUMNS", "100")
    for name in ("MEMEX_STORE", "MEMEX_EMBEDDER", "MEMEX_CONFIG", "MEMEX_TENANT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "memex.db"


@pytest.fixture
def mx(store_path: Path) -> Iterator[Memex]:
    with Memex.open(store_path) as handle:
        yield handle


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each backend the contract suite runs against (later backends register above)."""
    folder = tmp_path / request.param
    (folder / "backup").mkdir(parents=True)
    url = request.getfixturevalue("postgres_url") if request.param in SERVER_BACKENDS else None
    return Backend(request.param, BACKENDS[request.param], folder, url)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    """A fresh store of each backend; the contract suite runs against all of them."""
    opened = backend.open()
    yield opened
    opened.close()

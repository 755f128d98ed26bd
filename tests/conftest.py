"""Shared fixtures: real store files in temporary directories, over every backend."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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

    def open(self) -> Store:
        return open_store(self.folder / "contract.db", self.settings)

    def reopen(self, *, read_only: bool = False) -> Store:
        return open_store(
            self.folder / "contract.db", self.settings.with_changes(read_only=read_only)
        )

    def backup_target(self) -> Path:
        return self.folder / "backup" / "contract-copy.db"

    def open_backup(self, target: Path) -> Store:
        return open_store(target, self.settings)


BACKENDS = {
    "sqlite": Settings(),
    # The derived indexes from the first memory: the full-text (tantivy) and approximate
    # vector paths, which the defaults take only in large stores.
    "sqlite-indexed": Settings(lexical_index_min=1, ann_min_vectors=64),
}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real store or config."""
    monkeypatch.setenv("MEMEX_HOME", str(tmp_path / "home"))
    # Commands run in their own process unless a test asks for the warm one.
    monkeypatch.setenv("MEMEX_WARM", "0")
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
    return Backend(request.param, BACKENDS[request.param], folder)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    """A fresh store of each backend; the contract suite runs against all of them."""
    opened = backend.open()
    yield opened
    opened.close()

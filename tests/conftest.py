"""Shared fixtures: real store files in temporary directories, over every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memex import Memex, Settings
from memex.storage.base import Store
from memex.storage.open import open_store

BACKENDS = ["sqlite"]


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


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each backend; the contract suite runs against all of them."""
    if request.param == "sqlite":
        opened = open_store(tmp_path / "contract.db", Settings())
    else:  # pragma: no cover - later backends register here
        raise AssertionError(request.param)
    yield opened
    opened.close()

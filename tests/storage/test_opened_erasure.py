"""What an encrypted store keeps opened in memory (``storage.opened.Opened``) goes
when the memories it came from are purged or erased, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from memex import Memex

if TYPE_CHECKING:
    from conftest import Backend


def _kept(db: Memex) -> str:
    """Every text the store keeps opened in this process."""
    opened = db._engine.store._keyring.opened  # type: ignore[attr-defined]
    return "\n".join(opened.texts())


@pytest.mark.parametrize("backend", ["sqlite-encrypted", "postgres-encrypted"], indirect=True)
def test_opened_text_is_let_go_on_erase_and_purge(backend: Backend) -> None:
    location = backend.url or backend.folder / "memex.db"
    db = Memex.open(location, settings=backend.settings)
    try:
        alice = db.scoped(user="alice")
        bob = db.scoped(user="bob")
        kept = alice.remember("alice-only walrus diary").id
        purged = alice.remember("alice purged pelican note").id
        bob.remember("bob-only heron diary")
        for handle in (alice, bob):
            handle.recall("diary", 5)
        assert alice.get(purged).content == "alice purged pelican note"
        assert "walrus" in _kept(db) and "heron" in _kept(db) and "pelican" in _kept(db)
        alice.purge(purged)
        assert "pelican" not in _kept(db)
        assert alice.get(kept).content == "alice-only walrus diary"
        db.erase(user="alice")
        assert "walrus" not in _kept(db)
        assert bob.recall("diary", 5)[0].memory.content == "bob-only heron diary"
        db.erase(tenant="default")
        assert _kept(db) == ""
    finally:
        db.close()

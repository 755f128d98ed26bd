"""Stores made by older schema versions open and are upgraded; newer ones are refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from memex import Memex, SchemaVersionError, StoreCorruptError
from memex.core.ids import new_id
from memex.core.models import content_hash
from memex.embedders.wordllama import WordLlamaEmbedder
from memex.storage.sqlite.migrate import LATEST, migrations, upgrade


def make_v1_store(path: Path, contents: list[str]) -> list[str]:
    """A store exactly as schema version 1 wrote it, with a few memories."""
    conn = sqlite3.connect(path, isolation_level=None)
    assert upgrade(conn, str(path), target=1) == 1
    embedder = WordLlamaEmbedder()
    vectors = embedder.embed(contents)
    ids = []
    conn.execute("BEGIN")
    conn.execute("INSERT INTO meta VALUES ('vectors_model', ?)", (embedder.name,))
    conn.execute("INSERT INTO meta VALUES ('vectors_dimensions', '256')")
    for i, (content, vector) in enumerate(zip(contents, vectors, strict=True)):
        mid = new_id()
        ids.append(mid)
        created = 1_700_000_000_000_000 + i
        cur = conn.execute(
            "INSERT INTO memories (id, tenant, project, kind, content, tags, metadata, importance, "
            "content_hash, version, created_at, updated_at) "
            "VALUES (?, 'default', 'old', 'fact', ?, ?, '{}', 0.5, ?, 1, ?, ?)",
            (mid, content, json.dumps(["legacy"]), content_hash(content), created, created),
        )
        conn.execute(
            "INSERT INTO vectors VALUES (?, 'default', ?)",
            (cur.lastrowid, np.asarray(vector, dtype=np.float32).tobytes()),
        )
    conn.execute("COMMIT")
    conn.close()
    return ids


def test_migrations_are_numbered_in_sequence() -> None:
    assert [m.version for m in migrations()] == list(range(1, LATEST + 1))
    assert LATEST >= 2


def test_v1_store_opens_upgraded_with_data_intact(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    ids = make_v1_store(path, ["the old deploy ran on Mondays", "legacy fact about billing"])
    with Memex.open(path) as mx:
        assert mx.stats().schema_version == LATEST
        first = mx.get(ids[0])
        assert first.content == "the old deploy ran on Mondays"
        assert first.valid_from == first.created_at  # backfilled by migration 2
        assert first.tags == ("legacy",) and first.scope.project == "old"
        assert mx.recall("when did deploys run", k=1)[0].memory.id == ids[0]
        assert mx.list(tags=["legacy"]).items
        new = mx.supersede(ids[0], "deploys now run on Fridays")
        assert [v.version for v in mx.history(ids[0])] == [1, 2]
        assert mx.recall("deploys run", k=1)[0].memory.id == new.id
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with Memex.open(path) as mx:
        mx.remember("written by this version")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="upgrade memex"):
        Memex.open(path)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()
    with pytest.raises(StoreCorruptError, match="not a memex store"):
        Memex.open(path)
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema")]
    conn.close()
    assert tables == ["accounts"]


def test_history_keeps_every_version_after_upgrade_to_past_only(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    ids = make_v1_store(path, ["first words", "another memory"])
    conn = sqlite3.connect(path, isolation_level=None)
    assert upgrade(conn, str(path), target=3) == 3
    for version, content in ((2, "second words"), (3, "third words")):
        conn.execute(
            "UPDATE memories SET content = ?, version = ?, updated_at = updated_at + 1 "
            "WHERE id = ?",
            (content, version, ids[0]),
        )
    assert conn.execute("SELECT count(*) FROM memory_history").fetchone()[0] == 4
    conn.close()
    with Memex.open(path) as mx:
        versions = mx.history(ids[0])
        assert [(v.version, v.content) for v in versions] == [
            (1, "first words"),
            (2, "second words"),
            (3, "third words"),
        ]
        assert [v.version for v in mx.history(ids[1])] == [1]
        assert mx.stats().versions == 4
        mx.update(ids[0], content="fourth words")
        assert [v.content for v in mx.history(ids[0])][-2:] == ["third words", "fourth words"]
        assert mx.stats().versions == 5
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM memory_history").fetchone()[0] == 3  # past only
    conn.close()


def test_saved_contexts_are_dropped_by_the_upgrade_that_records_their_memories(
    tmp_path: Path,
) -> None:
    """A context saved before version 7 records no memories, so a purge could not tell
    whether it holds the purged text: the upgrade drops it (a session's next context
    then reports no reused prefix, once)."""
    path = tmp_path / "memex.db"
    ids = make_v1_store(path, ["the vault code is 4242", "the garden needs water"])
    conn = sqlite3.connect(path, isolation_level=None)
    upgrade(conn, str(path), target=6)
    conn.execute(
        "INSERT INTO context_sessions VALUES ('default', '#s1', 'h', '- the vault code is 4242', 1)"
    )
    conn.close()
    with Memex.open(path) as mx:
        assert mx.stats().schema_version == LATEST
        assert mx.context("vault code", 500, session="s1").prefix_tokens_reused is None
        again = mx.context("vault code", 500, session="s1")
        assert again.prefix_tokens_reused
        mx.purge(ids[0])  # the context just saved showed it: dropped again
        assert mx.context("vault code", 500, session="s1").prefix_tokens_reused is None
    with sqlite3.connect(path) as check:
        texts = [r[0] for r in check.execute("SELECT text FROM context_sessions")]
    assert all("4242" not in t for t in texts)


def test_an_upgraded_store_has_an_empty_directory_that_takes_tenants(tmp_path: Path) -> None:
    from memex.core.identity import Tenant
    from memex.core.models import utcnow
    from memex.storage.sqlite import SQLiteStore

    path = tmp_path / "v8.db"
    ids = make_v1_store(path, ["kept through the upgrade"])
    conn = sqlite3.connect(path, isolation_level=None)
    assert upgrade(conn, str(path), target=8) == 8
    conn.close()
    store = SQLiteStore(path)
    try:
        directory = store.directory()
        assert directory.generation() == 0 and directory.tenants() == []
        directory.add_tenant(Tenant("default", utcnow()))
        assert [t.name for t in directory.tenants()] == ["default"]
        assert directory.generation() == 1
    finally:
        store.close()
    with Memex.open(path) as mx:
        assert mx.get(ids[0]).content == "kept through the upgrade"

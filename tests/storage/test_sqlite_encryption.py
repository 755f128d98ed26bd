"""Encryption at rest on a real SQLite store file: what is sealed stays unreadable in
every file of the store, everything reads back through memex, rotation, wrong or
missing keys, tampering, destroying a key, and encrypting a tenant that was plain."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from memex import Memex, Settings
from memex.errors import StoreKeyError
from memex.storage.encryption import master_key_file

MARKER = "quokka-Z7Q3X9-marmalade"
SECRET_META = "meta-W4K8P2-secret"


def _sentence(n: int) -> str:
    return f"the {MARKER} number {n} met a lantern by the river"


def _files(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def _open(path: Path, **settings: object) -> Memex:
    return Memex.open(path, settings=Settings(**settings))  # type: ignore[arg-type]


@pytest.fixture
def key_hex() -> str:
    return os.urandom(32).hex()


def _fill(db: Memex) -> list[str]:
    ids = [
        db.remember(_sentence(n), tags=["river"], metadata={"note": SECRET_META, "n": n}).id
        for n in range(30)
    ]
    db.update(ids[0], content=_sentence(100) + " revised")  # a past version
    db.context(MARKER, 400, session="s1")  # a saved session context holding the text
    return ids


@pytest.mark.parametrize("indexed", [False, True])
def test_sealed_text_is_in_no_file_of_the_store(
    tmp_path: Path, key_hex: str, indexed: bool
) -> None:
    # lexical_index_min=1: the tantivy folder and approximate index are written too.
    extra = {"lexical_index_min": 1, "ann_min_vectors": 8} if indexed else {}
    db = _open(tmp_path / "m.db", master_key=key_hex, **extra)
    try:
        ids = _fill(db)
        db.build_indexes()
        # Everything still reads back through memex.
        assert db.get(ids[1]).content == _sentence(1)
        assert db.get(ids[1]).metadata == {"note": SECRET_META, "n": 1}
        assert db.get(ids[1]).content_hash == hashlib.sha256(_sentence(1).encode()).hexdigest()
        hits = db.recall("lantern revised", 3)
        assert hits[0].memory.id == ids[0]
        assert [m.content for m in db.history(ids[0])] == [
            _sentence(0),
            _sentence(100) + " revised",
        ]
        assert len(db.list(metadata={"n": 7}).items) == 1
        assert len(db.list(metadata={"note": SECRET_META}, limit=100).items) == 30
        lines = list(db.export_lines(history=True))
        exported = {json.loads(line)["content"] for line in lines}
        assert exported >= {_sentence(5), _sentence(100) + " revised"}
        assert json.dumps(_sentence(0)) in "".join(lines)  # the past version
        raw = _files(tmp_path)  # the store, its -wal and the index folders, while open
    finally:
        db.close()
    raw += _files(tmp_path)
    for secret in (MARKER, SECRET_META, "met a lantern by the river"):
        assert secret.encode() not in raw
        assert secret.encode("utf-16-le") not in raw
    # What is derived stays: the full-text index's terms (lower-cased tokens).
    assert b"lantern" in raw


def test_plain_store_keeps_plain_rows_and_hashes(tmp_path: Path) -> None:
    db = _open(tmp_path / "m.db")
    try:
        memory = db.remember(_sentence(1))
    finally:
        db.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    row = conn.execute("SELECT typeof(content), content_hash FROM memories").fetchone()
    assert row == ("text", memory.content_hash)
    assert conn.execute("SELECT count(*) FROM tenant_keys").fetchone()[0] == 0
    conn.close()


def test_encrypted_rows_are_sealed_and_hashes_keyed(tmp_path: Path, key_hex: str) -> None:
    db = _open(tmp_path / "m.db", master_key=key_hex)
    try:
        memory = db.remember(_sentence(1))
        again = db.remember(_sentence(1))  # the embedding cache still finds it by hash
    finally:
        db.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    rows = conn.execute("SELECT typeof(content), typeof(metadata), content_hash FROM memories")
    for kind, meta_kind, chash in rows:
        assert (kind, meta_kind) == ("blob", "blob")
        assert chash != memory.content_hash  # keyed: not guessable from the text
    assert again.content_hash == memory.content_hash
    conn.close()


def test_missing_or_wrong_master_key_is_one_clear_error(tmp_path: Path, key_hex: str) -> None:
    db = _open(tmp_path / "m.db", master_key=key_hex)
    memory_id = db.remember(_sentence(1)).id
    db.close()
    for settings in ({}, {"master_key": os.urandom(32).hex()}):
        other = _open(tmp_path / "m.db", **settings)
        try:
            for call in (
                lambda o=other: o.get(memory_id),
                lambda o=other: o.recall("lantern", 3),
                lambda o=other: o.list().items,
                lambda o=other: o.remember("more"),
                lambda o=other: list(o.export_lines()),
            ):
                with pytest.raises(StoreKeyError) as caught:
                    call()
                assert "\n" not in str(caught.value)
                assert "master key" in str(caught.value)
        finally:
            other.close()


def test_a_swapped_or_edited_ciphertext_is_detected(tmp_path: Path, key_hex: str) -> None:
    db = _open(tmp_path / "m.db", master_key=key_hex)
    first, second = db.remember(_sentence(1)).id, db.remember(_sentence(2)).id
    db.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    a, b = (
        conn.execute("SELECT content FROM memories WHERE id = ?", (i,)).fetchone()[0]
        for i in (first, second)
    )
    conn.execute("DROP TRIGGER memories_fts_au")  # a raw edit cannot call memex_plain
    conn.execute("UPDATE memories SET content = ? WHERE id = ?", (b, first))  # swapped
    edited = bytearray(a)
    edited[-1] ^= 1
    conn.execute("UPDATE memories SET content = ? WHERE id = ?", (bytes(edited), second))
    conn.commit()
    conn.close()
    db = _open(tmp_path / "m.db", master_key=key_hex)
    try:
        for memory_id in (first, second):
            with pytest.raises(StoreKeyError, match="fails authentication"):
                db.get(memory_id)
    finally:
        db.close()


def test_rotation_rewraps_every_key_and_keeps_every_memory(tmp_path: Path, key_hex: str) -> None:
    db = _open(tmp_path / "m.db", master_key=key_hex)
    contents = {}
    for tenant in ("a", "b", "c"):
        handle = db.scoped(tenant=tenant)
        for n in range(5):
            contents[handle.remember(f"{tenant} {n} {MARKER}").id] = (
                tenant,
                f"{tenant} {n} {MARKER}",
            )
    new_file = tmp_path / "new.key"
    new_file.write_text(os.urandom(32).hex())
    keys = db._engine.store.tenant_keys()
    old_ids = {k for _, k in keys.encrypted()}
    assert keys.rotate(master_key_file(new_file)) == 3
    assert {k for _, k in keys.encrypted()} == {master_key_file(new_file).key_id} != old_ids
    db.close()
    stale = _open(tmp_path / "m.db", master_key=key_hex)
    try:
        with pytest.raises(StoreKeyError, match="wrapped by master key"):
            stale.scoped(tenant="a").list()
    finally:
        stale.close()
    db = _open(tmp_path / "m.db", master_key_file=str(new_file))
    try:
        for memory_id, (tenant, content) in contents.items():
            assert db.scoped(tenant=tenant).get(memory_id).content == content
    finally:
        db.close()


def test_destroying_a_key_makes_the_tenant_unreadable(tmp_path: Path, key_hex: str) -> None:
    db = _open(tmp_path / "m.db", master_key=key_hex)
    try:
        gone = db.scoped(tenant="gone")
        memory_id = gone.remember(_sentence(1)).id
        kept = db.scoped(tenant="kept").remember(_sentence(2)).id
        assert db._engine.store.tenant_keys().destroy("gone") is True
        assert db._engine.store.tenant_keys().destroy("gone") is False
        with pytest.raises(StoreKeyError, match="destroyed"):
            gone.get(memory_id)
        assert db.scoped(tenant="kept").get(kept).content == _sentence(2)
    finally:
        db.close()


def test_encrypting_a_plain_tenant(tmp_path: Path, key_hex: str) -> None:
    db = _open(tmp_path / "m.db")
    ids = _fill(db)
    db.close()
    db = _open(tmp_path / "m.db", master_key=key_hex)
    try:
        assert db.get(ids[3]).content == _sentence(3)  # plain, and stays plain ...
        db.remember("written before encrypting")
        sealed = db._engine.store.tenant_keys().encrypt("default")  # ... until encrypted
        assert sealed == 31 + 1 + 1  # memories, a past version, a saved context
        assert db._engine.store.tenant_keys().encrypt("default") == 0  # resumable: nothing left
        assert db.get(ids[3]).content == _sentence(3)
        assert db.recall("lantern", 1)[0].memory.content.startswith("the " + MARKER)
        assert db.history(ids[0])[0].content == _sentence(0)
    finally:
        db.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    assert (
        conn.execute("SELECT count(*) FROM memories WHERE typeof(content) = 'text'").fetchone()[0]
        == 0
    )
    assert (
        conn.execute(
            "SELECT count(*) FROM memory_history WHERE typeof(content) = 'text'"
        ).fetchone()[0]
        == 0
    )
    conn.close()


def _fulltext_blocks(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM memories_fts_data").fetchone()[0])
    finally:
        conn.close()


def test_encrypting_a_tenant_leaves_its_full_text_index_merged(
    tmp_path: Path, key_hex: str
) -> None:
    db = _open(tmp_path / "m.db")
    for n in range(40):  # one full-text segment per write: many of them
        db.remember(_sentence(n))
    db.close()
    db = _open(tmp_path / "m.db", master_key=key_hex)
    try:
        db._engine.store.tenant_keys().encrypt("default")
        after = _fulltext_blocks(tmp_path / "m.db")
        conn = sqlite3.connect(tmp_path / "m.db")
        conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
        conn.commit()
        conn.close()
        assert _fulltext_blocks(tmp_path / "m.db") == after  # merged already: nothing to do
        assert [h.memory.content for h in db.recall("lantern river", 40)].count(_sentence(7)) == 1
    finally:
        db.close()


def _kept(db: Memex) -> str:
    """Every text the store keeps opened in this process (``storage.opened.Opened``)."""
    opened = db._engine.store._keyring.opened  # type: ignore[attr-defined]
    return "\n".join(opened.texts())


def test_a_ciphertext_swapped_after_it_was_read_is_still_detected(
    tmp_path: Path, key_hex: str
) -> None:
    db = _open(tmp_path / "m.db", master_key=key_hex)
    try:
        first, second = db.remember(_sentence(1)).id, db.remember(_sentence(2)).id
        assert db.get(first).content == _sentence(1)  # both opened, and kept
        assert db.get(second).content == _sentence(2)
        assert _sentence(1) in _kept(db)
        conn = sqlite3.connect(tmp_path / "m.db")
        b = conn.execute("SELECT content FROM memories WHERE id = ?", (second,)).fetchone()[0]
        conn.execute("DROP TRIGGER memories_fts_au")  # a raw edit cannot call memex_plain
        conn.execute("UPDATE memories SET content = ? WHERE id = ?", (b, first))
        conn.commit()
        conn.close()
        with pytest.raises(StoreKeyError, match="fails authentication"):
            db.get(first)
        assert db.get(second).content == _sentence(2)
    finally:
        db.close()

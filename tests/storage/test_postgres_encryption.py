"""Encryption at rest on a real PostgreSQL store: what is sealed is in no column's bytes
(read as the superuser, past row-level security) and in no file of the tables, everything
reads back through memex, rotation, wrong or missing keys, tampering, destroying a key,
encrypting a plain tenant, backups, and migrations to and from SQLite."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import psycopg
import pytest

from memex import Memex, Settings
from memex.errors import StoreKeyError
from memex.storage.encryption import master_key_file

MARKER = "quokka-Z7Q3X9-marmalade"
SECRET_META = "meta-W4K8P2-secret"
SEALED_TABLES = ("memories", "memory_history", "context_sessions")


def _sentence(n: int) -> str:
    return f"the {MARKER} number {n} met a lantern by the river"


def _open(location: str | Path, **settings: object) -> Memex:
    return Memex.open(location, settings=Settings(**settings))  # type: ignore[arg-type]


@pytest.fixture
def key_hex() -> str:
    return os.urandom(32).hex()


@pytest.fixture
def owner(postgres: Any, postgres_url: str) -> Iterator[psycopg.Connection]:
    """The store's schema as the server's superuser: row-level security does not apply."""
    server = postgres.server
    if server is None:
        pytest.skip("needs the tests' own PostgreSQL server (its superuser and data folder)")
    schema = parse_qs(urlsplit(postgres_url).query)["options"][0].split("=")[1].split(",")[0]
    url = server.url("memex_tests", role="postgres")
    with psycopg.connect(
        f"{url}&options={quote(f'-csearch_path={schema},public', safe='')}", autocommit=True
    ) as conn:
        yield conn


def _fill(db: Memex) -> list[str]:
    ids = [
        db.remember(_sentence(n), tags=["river"], metadata={"note": SECRET_META, "n": n}).id
        for n in range(30)
    ]
    db.update(ids[0], content=_sentence(100) + " revised")  # a past version
    db.context(MARKER, 400, session="s1")  # a saved session context holding the text
    return ids


def _raw(conn: psycopg.Connection, table: str) -> bytes:
    """Every column of every row of ``table``, as stored."""
    out = bytearray()
    for row in conn.execute(f"SELECT * FROM {table}"):
        for value in row:
            out += bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
    return bytes(out)


def _relation_files(postgres: Any, conn: psycopg.Connection, table: str) -> bytes:
    """The bytes of the table's files: its heap, its TOAST table and their indexes."""
    assert postgres.server is not None
    found = conn.execute(
        "SELECT pg_relation_filepath(c.oid) FROM pg_class c WHERE c.oid IN ("
        "SELECT %s::regclass UNION SELECT reltoastrelid FROM pg_class WHERE oid = %s::regclass "
        "UNION SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass "
        "OR indrelid = (SELECT reltoastrelid FROM pg_class WHERE oid = %s::regclass))",
        (table, table, table, table),
    ).fetchall()
    data = postgres.server.data
    out = b""
    for (path,) in found:
        if path:
            out += b"".join(p.read_bytes() for p in sorted(data.glob(f"{path}*")))
    return out


def _wal_file(conn: psycopg.Connection) -> str:
    """The write-ahead log segment being written now."""
    row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
    assert row is not None
    return str(row[0])


def test_sealed_text_is_in_no_column_and_no_table_file(
    postgres: Any, postgres_url: str, owner: psycopg.Connection, key_hex: str
) -> None:
    wal_from = _wal_file(owner)
    db = _open(postgres_url, master_key=key_hex)
    try:
        ids = _fill(db)
        # Everything still reads back through memex.
        assert db.get(ids[1]).content == _sentence(1)
        assert db.get(ids[1]).metadata == {"note": SECRET_META, "n": 1}
        assert db.get(ids[1]).content_hash == hashlib.sha256(_sentence(1).encode()).hexdigest()
        assert db.recall("lantern revised", 3)[0].memory.id == ids[0]
        assert [m.content for m in db.history(ids[0])] == [
            _sentence(0),
            _sentence(100) + " revised",
        ]
        assert [m.id for m in db.list(metadata={"n": 7}).items] == [ids[7]]
        assert len(db.list(metadata={"note": SECRET_META}, limit=100).items) == 30
        assert [h.memory.id for h in db.recall("lantern", 5, metadata={"n": 3})] == [ids[3]]
        lines = list(db.export_lines(history=True))
        assert json.dumps(_sentence(0)) in "".join(lines)  # the past version
    finally:
        db.close()
    keys = owner.execute("SELECT tenant, length(data_key) FROM tenant_keys").fetchall()
    assert keys == [("default", 1 + 12 + 32 + 16)]  # wrapped: format, nonce, key, tag
    owner.execute("CHECKPOINT")
    assert b"river" in _relation_files(postgres, owner, "memories")  # tags are not sealed
    for table in SEALED_TABLES:
        stored = _raw(owner, table) + _relation_files(postgres, owner, table)
        for secret in (MARKER, MARKER.lower(), SECRET_META, "met a lantern by the river"):
            assert secret.encode() not in stored, (table, secret)
    # The write-ahead log holds what the tables and postings hold: lexemes, not the text.
    wal_to = _wal_file(owner)
    wal = b"".join(
        p.read_bytes()
        for p in sorted((postgres.server.data / "pg_wal").glob("0*"))
        if wal_from <= p.name <= wal_to
    )
    assert b"river" in wal
    for secret in (MARKER, SECRET_META, "met a lantern by the river"):
        assert secret.encode() not in wal, secret
    # What is derived stays: the postings hold the (lower-cased, stemmed) lexemes.
    assert b"lantern" in _raw(owner, "memory_terms")
    assert (MARKER.lower().encode()) in _raw(owner, "memory_terms")


def test_a_plain_store_keeps_plain_rows(postgres_url: str, owner: psycopg.Connection) -> None:
    db = _open(postgres_url)
    try:
        memory = db.remember(_sentence(1), metadata={"n": 1})
        assert [m.id for m in db.list(metadata={"n": 1}).items] == [memory.id]
    finally:
        db.close()
    row = owner.execute(
        "SELECT content, metadata, content_hash, sealed_content, sealed_metadata FROM memories"
    ).fetchone()
    assert row == (_sentence(1), {"n": 1}, memory.content_hash, None, None)
    assert owner.execute("SELECT count(*) FROM tenant_keys").fetchone() == (0,)


def test_missing_or_wrong_master_key_is_one_clear_error(postgres_url: str, key_hex: str) -> None:
    db = _open(postgres_url, master_key=key_hex)
    memory_id = db.remember(_sentence(1), metadata={"n": 1}).id
    db.close()
    for settings in ({}, {"master_key": os.urandom(32).hex()}):
        other = _open(postgres_url, **settings)
        try:
            for call in (
                lambda o=other: o.get(memory_id),
                lambda o=other: o.recall("lantern", 3),
                lambda o=other: o.list().items,
                lambda o=other: o.list(metadata={"n": 1}).items,
                lambda o=other: o.remember("more"),
                lambda o=other: list(o.export_lines()),
            ):
                with pytest.raises(StoreKeyError) as caught:
                    call()
                assert "\n" not in str(caught.value)
                assert "master key" in str(caught.value)
        finally:
            other.close()


def test_a_swapped_or_edited_ciphertext_is_detected(
    postgres_url: str, owner: psycopg.Connection, key_hex: str
) -> None:
    db = _open(postgres_url, master_key=key_hex)
    first, second = db.remember(_sentence(1)).id, db.remember(_sentence(2)).id
    db.close()
    a, b = (
        bytes(
            owner.execute("SELECT sealed_content FROM memories WHERE id = %s", (i,)).fetchone()[0]
        )
        for i in (first, second)
    )
    owner.execute("UPDATE memories SET sealed_content = %s WHERE id = %s", (b, first))  # swapped
    edited = bytearray(a)
    edited[-1] ^= 1
    owner.execute("UPDATE memories SET sealed_content = %s WHERE id = %s", (bytes(edited), second))
    db = _open(postgres_url, master_key=key_hex)
    try:
        for memory_id in (first, second):
            with pytest.raises(StoreKeyError, match="fails authentication"):
                db.get(memory_id)
    finally:
        db.close()


def test_rotation_rewraps_every_key_and_keeps_every_memory(
    postgres_url: str, tmp_path: Path, key_hex: str
) -> None:
    db = _open(postgres_url, master_key=key_hex)
    contents = {}
    for tenant in ("a", "b", "c"):
        handle = db.scoped(tenant=tenant)
        for n in range(5):
            made = handle.remember(f"{tenant} {n} {MARKER}", metadata={"n": n})
            handle.update(made.id, content=f"{tenant} {n} {MARKER} again")
            contents[made.id] = (tenant, f"{tenant} {n} {MARKER} again")
    new_file = tmp_path / "new.key"
    new_file.write_text(os.urandom(32).hex())
    keys = db._engine.store.tenant_keys()
    old_ids = {k for _, k in keys.encrypted()}
    assert keys.rotate(master_key_file(new_file)) == 3
    assert {k for _, k in keys.encrypted()} == {master_key_file(new_file).key_id} != old_ids
    db.close()
    stale = _open(postgres_url, master_key=key_hex)
    try:
        with pytest.raises(StoreKeyError, match="wrapped by master key"):
            stale.scoped(tenant="a").list()
    finally:
        stale.close()
    db = _open(postgres_url, master_key_file=str(new_file))
    try:
        for memory_id, (tenant, content) in contents.items():
            handle = db.scoped(tenant=tenant)
            assert handle.get(memory_id).content == content
            assert [m.version for m in handle.history(memory_id)] == [1, 2]
    finally:
        db.close()


def test_destroying_a_key_makes_the_tenant_unreadable(postgres_url: str, key_hex: str) -> None:
    db = _open(postgres_url, master_key=key_hex)
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


def test_encrypting_a_plain_tenant(
    postgres_url: str, owner: psycopg.Connection, key_hex: str
) -> None:
    db = _open(postgres_url)
    ids = _fill(db)
    db.close()
    db = _open(postgres_url, master_key=key_hex)
    try:
        assert db.get(ids[3]).content == _sentence(3)  # plain, and stays plain ...
        db.remember("written before encrypting")
        sealed = db._engine.store.tenant_keys().encrypt("default")  # ... until encrypted
        assert sealed == 31 + 1 + 1  # memories, a past version, a saved context
        assert db._engine.store.tenant_keys().encrypt("default") == 0  # resumable: nothing left
        assert db.get(ids[3]).content == _sentence(3)
        assert db.get(ids[3]).metadata == {"note": SECRET_META, "n": 3}
        assert db.recall("lantern", 1)[0].memory.content.startswith("the " + MARKER)
        assert db.history(ids[0])[0].content == _sentence(0)
        assert [m.id for m in db.list(metadata={"n": 4}).items] == [ids[4]]
        assert db.update(ids[5], content="rewritten lantern").version == 2
        assert db.recall("rewritten", 1)[0].memory.id == ids[5]
    finally:
        db.close()
    for table in SEALED_TABLES:
        assert MARKER.encode() not in _raw(owner, table)


def test_backup_carries_the_keys_and_never_the_text(
    postgres_url: str, tmp_path: Path, key_hex: str
) -> None:
    db = _open(postgres_url, master_key=key_hex)
    try:
        ids = _fill(db)
        db.scoped(tenant="plain-later").remember("another tenant's lantern")
    finally:
        db.close()
    keyless = _open(postgres_url)
    try:
        with pytest.raises(StoreKeyError, match="master key"):
            keyless._engine.store.backup(tmp_path / "refused.db")
    finally:
        keyless.close()
    assert not (tmp_path / "refused.db").exists()
    db = _open(postgres_url, master_key=key_hex)
    try:
        assert db._engine.store.backup(tmp_path / "copy.db") == 31
    finally:
        db.close()
    assert MARKER.encode() not in (tmp_path / "copy.db").read_bytes()
    conn = sqlite3.connect(tmp_path / "copy.db")
    assert conn.execute("SELECT count(*) FROM tenant_keys").fetchone() == (2,)
    assert conn.execute(
        "SELECT count(*) FROM memories WHERE typeof(content) = 'text'"
    ).fetchone() == (0,)
    conn.close()
    copy = _open(tmp_path / "copy.db", master_key=key_hex)
    try:
        assert copy.get(ids[2]).content == _sentence(2)
        assert copy.history(ids[0])[0].content == _sentence(0)
    finally:
        copy.close()


def test_migrating_sqlite_to_postgres_and_back_stays_encrypted(
    postgres_url: str, owner: psycopg.Connection, tmp_path: Path, key_hex: str
) -> None:
    first, last = tmp_path / "first.db", tmp_path / "last.db"
    db = _open(first, master_key=key_hex)
    try:
        ids = _fill(db)
    finally:
        db.close()
    settings = Settings(master_key=key_hex)
    assert Memex.migrate(first, postgres_url, settings).ok
    assert owner.execute("SELECT tenant FROM tenant_keys").fetchall() == [("default",)]
    for table in ("memories", "memory_history"):
        assert MARKER.encode() not in _raw(owner, table)
    assert Memex.migrate(postgres_url, last, settings).ok
    assert MARKER.encode() not in last.read_bytes()
    back = _open(last, master_key=key_hex)
    try:
        assert back.get(ids[7]).content == _sentence(7)
        assert back.get(ids[7]).metadata == {"note": SECRET_META, "n": 7}
        assert back.history(ids[0])[0].content == _sentence(0)
        assert back.recall("lantern revised", 1)[0].memory.id == ids[0]
    finally:
        back.close()


def _kept(db: Memex) -> str:
    """Every text the store keeps opened in this process (``storage.opened.Opened``)."""
    opened = db._engine.store._keyring.opened  # type: ignore[attr-defined]
    return "\n".join(opened.texts())


def test_a_ciphertext_swapped_after_it_was_read_is_still_detected(
    postgres_url: str, owner: psycopg.Connection, key_hex: str
) -> None:
    db = _open(postgres_url, master_key=key_hex)
    try:
        first, second = db.remember(_sentence(1)).id, db.remember(_sentence(2)).id
        assert db.get(first).content == _sentence(1)  # both opened, and kept
        assert db.get(second).content == _sentence(2)
        assert _sentence(1) in _kept(db)
        row = owner.execute("SELECT sealed_content FROM memories WHERE id = %s", (second,))
        b = bytes(row.fetchone()[0])
        owner.execute("UPDATE memories SET sealed_content = %s WHERE id = %s", (b, first))
        with pytest.raises(StoreKeyError, match="fails authentication"):
            db.get(first)
        assert db.get(second).content == _sentence(2)
    finally:
        db.close()

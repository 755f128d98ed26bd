"""API keys: their form, their randomness, and that only a hash of them is kept."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from memex.core.identity import Role, Tenant, key_prefix, split_key
from memex.core.models import utcnow
from memex.security.keys import hash_key, issue_key, matches
from memex.storage.sqlite import SQLiteStore


def test_a_key_reads_mxk_id_secret_with_256_random_bits() -> None:
    record, whole = issue_key("acme", Role.READ_WRITE)
    mark, key_id, secret = whole.split("_")
    assert mark == "mxk" and key_id == record.id and whole.startswith(key_prefix(record.id))
    assert len(key_id) >= 12 and key_id.isalnum() and key_id == key_id.lower()
    assert "_" not in secret and secret == secret.lower()
    raw = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    assert len(raw) * 8 >= 256
    assert split_key(whole) == (record.id, whole)


def test_keys_differ_every_time() -> None:
    made = [issue_key("acme", Role.READ_ONLY) for _ in range(200)]
    assert len({r.id for r, _ in made}) == 200
    assert len({w.split("_")[2] for _, w in made}) == 200


def test_only_the_sha256_of_the_whole_key_is_kept() -> None:
    record, whole = issue_key("acme", Role.OWNER, name="ops", allow=("10.0.0.0/8",))
    assert record.hash == hashlib.sha256(whole.encode()).hexdigest() == hash_key(whole)
    assert whole not in repr(record) and whole.split("_")[2] not in repr(record)
    assert matches(whole, record.hash)
    assert not matches(whole[:-1] + ("a" if whole[-1] != "a" else "b"), record.hash)
    assert (record.role, record.name, record.allow) == (Role.OWNER, "ops", ("10.0.0.0/8",))
    assert "hash" not in record.public() and record.public()["prefix"] == key_prefix(record.id)


def test_the_store_file_never_holds_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "memex.db"
    store = SQLiteStore(path)
    secrets = []
    try:
        store.directory().add_tenant(Tenant("acme", utcnow()))
        for _ in range(5):
            record, whole = issue_key("acme", Role.ADMIN)
            store.directory().add_key(record)
            secrets.append((record, whole))
    finally:
        store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for record, whole in secrets:
        assert record.hash.encode() in stored  # the hash is there: the check can find it
        assert whole.split("_")[2].encode() not in stored

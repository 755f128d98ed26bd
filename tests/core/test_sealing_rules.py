"""The pure rules of encryption at rest: which write is sealed, master keys' text,
associated data."""

from __future__ import annotations

import base64

import pytest

from memex.core.encryption import Sealing, key_id, memory_data, parse_master_key, sealing
from memex.errors import ConfigError, StoreKeyError


@pytest.mark.parametrize(
    ("master_key", "has_key", "has_memories", "expected"),
    [
        (True, True, True, Sealing.SEAL),
        (True, True, False, Sealing.SEAL),
        (True, False, False, Sealing.CREATE),
        (True, False, True, Sealing.PLAIN),  # plain until `memex admin encrypt`
        (False, False, True, Sealing.PLAIN),
        (False, False, False, Sealing.PLAIN),
    ],
)
def test_sealing(master_key: bool, has_key: bool, has_memories: bool, expected: Sealing) -> None:
    found = sealing(master_key=master_key, has_key=has_key, has_memories=has_memories, tenant="t")
    assert found is expected


@pytest.mark.parametrize("has_memories", [True, False])
def test_an_encrypted_tenant_without_the_master_key_is_refused(has_memories: bool) -> None:
    with pytest.raises(StoreKeyError, match=r"'acme' is encrypted.*MEMEX_MASTER_KEY"):
        sealing(master_key=False, has_key=True, has_memories=has_memories, tenant="acme")


KEY = bytes(range(32))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (KEY.hex(), KEY),
        (KEY.hex().upper() + "\n", KEY),
        (base64.b64encode(KEY).decode(), KEY),
        ("  " + base64.b64encode(KEY).decode() + "\n", KEY),
        ("00" * 31, None),  # 31 bytes
        (base64.b64encode(KEY[:16]).decode(), None),
        ("not a key", None),
        ("", None),
    ],
)
def test_parse_master_key(text: str, expected: bytes | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="must be 32 bytes"):
            parse_master_key(text, "the test")
    else:
        assert parse_master_key(text, "the test") == expected


def test_associated_data_differs_by_every_part() -> None:
    base = memory_data("t", "m1", 1, "content")
    others = [
        memory_data("u", "m1", 1, "content"),
        memory_data("t", "m2", 1, "content"),
        memory_data("t", "m1", 2, "content"),
        memory_data("t", "m1", 1, "metadata"),
        memory_data("t\x00m1", "", 1, "content"),
    ]
    assert len({base, *others}) == len(others) + 1


def test_key_ids_tell_keys_apart_without_showing_them() -> None:
    assert key_id(KEY) == key_id(bytes(KEY))
    assert key_id(KEY) != key_id(bytes(32))
    assert KEY.hex()[:16] not in key_id(KEY)

"""``Opened``, the memory fields a store opened lately: found again only for the same
row and the very same sealed bytes, bounded in size and in age, dropped by tenant."""

from __future__ import annotations

import pytest

from memex.storage import encryption
from memex.storage import opened as opened_module
from memex.storage.opened import OPENED_LARGEST, Opened


def _key(n: int, tenant: str = "t") -> tuple[str, str, int, str]:
    return (tenant, f"m{n}", 1, "content")


def _ciphers(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[encryption.TenantCipher, encryption.TenantCipher, Opened, list[bytes]]:
    """A sealer, a cipher of the same data key keeping what it opens, what it keeps, and
    the sealed values decrypted from now on, in order."""
    import os

    sealer = encryption.TenantCipher("t", os.urandom(32))
    kept = Opened()
    cipher = encryption.TenantCipher("t", sealer.data_key(), kept)
    decrypted: list[bytes] = []
    real = encryption._open
    monkeypatch.setattr(encryption, "_open", lambda *a: decrypted.append(a[1]) or real(*a))
    return sealer, cipher, kept, decrypted


def _sealed_row(
    sealer: encryption.TenantCipher, memory_id: str, version: int, text: str, meta: str
) -> tuple[bytes, bytes, tuple[str, str, str]]:
    """A row's sealed content and metadata, and what opening it gives."""
    import hashlib

    content = sealer.seal_memory(memory_id, version, "content", text)
    metadata = sealer.seal_memory(memory_id, version, "metadata", meta)
    return content, metadata, (text, meta, hashlib.sha256(text.encode()).hexdigest())


def test_a_value_is_found_again_only_for_the_same_sealed_bytes() -> None:
    opened = Opened()
    opened.put(_key(1), b"sealed-1", "one")
    assert opened.get(_key(1), b"sealed-1") == "one"
    assert opened.get(_key(1), memoryview(b"sealed-1")) == "one"  # as PostgreSQL gives it
    assert opened.get(_key(1), b"sealed-X") is None  # changed on disk since
    assert opened.get(_key(2), b"sealed-1") is None  # moved to another row
    assert opened.get(("t", "m1", 2, "content"), b"sealed-1") is None  # another version
    assert opened.get(("t", "m1", 1, "metadata"), b"sealed-1") is None  # another field
    assert opened.get(_key(1, "u"), b"sealed-1") is None  # another tenant


def test_size_is_bounded_by_two_generations() -> None:
    opened = Opened(budget=100)
    for n in range(50):
        opened.put(_key(n), b"x" * 10, "y" * 10)  # 20 characters each
    assert len(opened) <= 10  # this generation's and the one before's, 5 each at most
    assert opened.get(_key(49), b"x" * 10) == "y" * 10
    assert opened.get(_key(0), b"x" * 10) is None


def test_a_value_read_from_the_older_generation_is_kept_on() -> None:
    opened = Opened(budget=100)
    opened.put(_key(0), b"x" * 10, "y" * 10)
    for n in range(1, 5):
        opened.put(_key(n), b"x" * 10, "y" * 10)
    opened.put(_key(5), b"x" * 10, "y" * 10)  # the first generation is now the older
    assert opened.get(_key(0), b"x" * 10) == "y" * 10  # read: moved to the newer
    for n in range(6, 14):
        opened.put(_key(n), b"x" * 10, "y" * 10)
    assert opened.get(_key(0), b"x" * 10) == "y" * 10
    assert opened.get(_key(1), b"x" * 10) is None


def test_a_value_larger_than_the_limit_is_not_kept() -> None:
    opened = Opened()
    big = "z" * OPENED_LARGEST
    opened.put(_key(1), b"s", big)
    assert opened.get(_key(1), b"s") is None
    assert len(opened) == 0


def test_values_age_out(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(opened_module.time, "monotonic", lambda: now[0])
    opened = Opened(seconds=60)
    opened.put(_key(1), b"s1", "one")
    now[0] += 61
    assert opened.get(_key(1), b"s1") == "one"  # past one age: in the older generation
    opened.put(_key(2), b"s2", "two")
    now[0] += 121  # past two ages: both generations go
    opened.put(_key(3), b"s3", "three")
    assert opened.get(_key(1), b"s1") is None
    assert opened.get(_key(2), b"s2") is None
    assert opened.get(_key(3), b"s3") == "three"


def test_dropping_a_tenant_keeps_the_others() -> None:
    opened = Opened()
    opened.put(_key(1, "a"), b"s", "of a")
    opened.put(_key(1, "b"), b"s", "of b")
    opened.drop("a")
    assert opened.get(_key(1, "a"), b"s") is None
    assert opened.get(_key(1, "b"), b"s") == "of b"
    assert opened.texts() == ["of b"]
    opened.drop()
    assert len(opened) == 0


def test_a_contents_hash_is_kept_with_it_for_the_same_sealed_bytes_only() -> None:
    import hashlib

    opened = Opened()
    assert opened.hash_of(_key(1), b"sealed-1") is None  # nothing kept
    opened.put(_key(1), b"sealed-1", "one")
    expected = hashlib.sha256(b"one").hexdigest()
    assert opened.hash_of(_key(1), b"sealed-1") == expected
    assert opened.hash_of(_key(1), b"sealed-1") == expected  # asked again: the kept one
    assert opened.hash_of(_key(1), b"sealed-X") is None  # changed on disk since
    assert opened.hash_of(_key(2), b"sealed-1") is None  # another row


def test_a_row_is_found_in_one_look_once_both_fields_and_the_hash_are_kept() -> None:
    import hashlib

    opened = Opened()
    content, metadata = ("t", "m1", 1, "content"), ("t", "m1", 1, "metadata")
    opened.put(content, b"sealed-c", "one")
    assert opened.row("t", "m1", 1, b"sealed-c", b"sealed-m") is None  # no metadata yet
    opened.put(metadata, b"sealed-m", '{"a": 1}')
    assert opened.row("t", "m1", 1, b"sealed-c", b"sealed-m") is None  # no hash yet
    expected = hashlib.sha256(b"one").hexdigest()
    assert opened.hash_of(content, b"sealed-c") == expected
    assert opened.row("t", "m1", 1, b"sealed-c", b"sealed-m") == ("one", '{"a": 1}', expected)
    assert opened.row("t", "m1", 1, b"sealed-X", b"sealed-m") is None  # changed since
    assert opened.row("t", "m1", 1, b"sealed-c", b"sealed-X") is None
    assert opened.row("t", "m1", 2, b"sealed-c", b"sealed-m") is None  # another version
    assert opened.row("u", "m1", 1, b"sealed-c", b"sealed-m") is None  # another tenant
    opened.drop("t")
    assert opened.row("t", "m1", 1, b"sealed-c", b"sealed-m") is None


def test_a_cipher_opens_a_row_as_it_opens_each_field_and_decrypts_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealer, cipher, _, decrypted = _ciphers(monkeypatch)
    content, metadata, expected = _sealed_row(sealer, "m1", 3, "the text", '{"k": "v"}')
    assert cipher.open_row("m1", 3, content, metadata) == expected
    assert sorted(decrypted) == sorted([content, metadata])
    assert cipher.open_row("m1", 3, content, metadata) == expected  # kept: no decryption
    assert len(decrypted) == 2
    with pytest.raises(encryption.StoreKeyError, match="fails authentication"):
        cipher.open_row("m1", 4, content, metadata)  # moved to another version


def test_found_answers_as_get_does_for_each_item() -> None:
    opened = Opened(budget=100)
    opened.put(_key(0), b"s0", "zero")
    for n in range(1, 5):
        opened.put(_key(n), b"x" * 10, "y" * 10)
    opened.put(_key(5), b"s5", "five")  # the first generation is now the older
    items = [("m0", 1, b"s0"), ("m5", 1, b"s5"), ("m5", 1, b"sX"), ("m9", 1, b"s9")]
    expected = [opened.get(("t", m, v, "content"), s) for m, v, s in items]
    assert expected == ["zero", "five", None, None]
    assert opened.found("t", "content", items) == expected
    assert opened.found("u", "content", items) == [None] * 4  # another tenant
    assert opened.found("t", "metadata", items) == [None] * 4  # another field


def test_put_many_keeps_each_as_put_does_within_the_budget() -> None:
    opened = Opened(budget=100)
    opened.put_many([(_key(n), b"x" * 10, "y" * 10) for n in range(50)])
    assert len(opened) <= 10
    assert opened.get(_key(49), b"x" * 10) == "y" * 10
    assert opened.get(_key(0), b"x" * 10) is None
    opened.put_many([(_key(99), b"s", "z" * OPENED_LARGEST)])  # too large
    assert opened.get(_key(99), b"s") is None


def test_a_cipher_opens_contents_as_it_opens_each_and_decrypts_each_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealer, cipher, _, decrypted = _ciphers(monkeypatch)
    sealed = [sealer.seal_memory(f"m{n}", n, "content", f"text {n}") for n in range(4)]
    assert cipher.open_memory("m1", 1, "content", sealed[1]) == "text 1"  # kept already
    items = [(f"m{n}", n, s) for n, s in enumerate(sealed)]
    assert cipher.open_contents(items) == [f"text {n}" for n in range(4)]
    assert sorted(decrypted) == sorted(sealed)  # each once: the second was kept
    assert cipher.open_contents(items) == [f"text {n}" for n in range(4)]  # all kept now
    assert len(decrypted) == 4
    assert cipher.open_contents([]) == []
    with pytest.raises(encryption.StoreKeyError, match="fails authentication"):
        cipher.open_contents([("m0", 0, sealed[0]), ("m2", 3, sealed[2])])  # moved version
    unkept = encryption.TenantCipher("t", sealer.data_key())
    with pytest.raises(encryption.StoreKeyError, match="fails authentication"):
        unkept.open_contents([("m1", 1, sealed[2])])  # moved to another id


def test_a_row_not_kept_is_opened_once_and_kept_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealer, cipher, kept, decrypted = _ciphers(monkeypatch)
    content, metadata, expected = _sealed_row(sealer, "m1", 1, "the text", "{}")
    large, large_metadata, plain_large = _sealed_row(sealer, "m2", 1, "x" * OPENED_LARGEST, "{}")
    # A recall kept the content (without its hash): only the metadata is decrypted.
    assert cipher.open_contents([("m1", 1, content)]) == ["the text"]
    assert cipher.open_row("m1", 1, content, metadata) == expected
    assert decrypted == [content, metadata]
    # Both fields are kept now, the content with its hash: found in one look.
    assert kept.row("t", "m1", 1, content, metadata) == expected
    # A value too large to keep is opened right, and again on every read.
    assert cipher.open_row("m2", 1, large, large_metadata) == plain_large
    assert cipher.open_row("m2", 1, large, large_metadata) == plain_large
    assert decrypted.count(large) == 2
    assert kept.get(("t", "m2", 1, "content"), large) is None
    # Metadata moved from another row fails authentication, though it is kept there.
    with pytest.raises(encryption.StoreKeyError, match="metadata of memory m2"):
        cipher.open_row("m2", 1, large, metadata)

"""Encryption at rest: master keys, tenants' data keys and sealed values
(docs/security.md; the pure rules are in ``memex.core.encryption``).

Envelope encryption: each encrypted tenant has a random 256-bit data key, stored only
wrapped by the master key (AES-256-GCM, bound to the tenant) together with the master
key's id. A memory's content and metadata are sealed with the data key (AES-256-GCM, a
fresh 96-bit nonce each time, bound to the tenant, memory id, version and field). A
sealed value reads ``0x01 | nonce | ciphertext and tag``. The master key is a
``KeyProvider``: a key from a file or the environment here; a KMS fits the same protocol.

``cryptography`` is imported only when a key is used (the ``encryption`` extra).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from memex.core import encryption
from memex.core.models import content_hash
from memex.errors import ConfigError, StoreKeyError
from memex.storage.opened import Field, Opened

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from memex.core.progress import Progress
    from memex.settings import Settings

FORMAT = b"\x01"
_NONCE = 12
SEALED_OVERHEAD = len(FORMAT) + _NONCE + 16
"""The bytes a sealed value holds beyond its plaintext: format, nonce and GCM tag."""


class KeyProvider(Protocol):
    """A master key: wraps and unwraps tenants' data keys (a local key or a KMS)."""

    @property
    def key_id(self) -> str:
        """Which master key this is (stored beside every data key it wraps)."""

    def wrap(self, data_key: bytes, tenant: str) -> bytes:
        """The data key, encrypted for ``tenant``."""

    def unwrap(self, wrapped: bytes, tenant: str) -> bytes:
        """The data key back; StoreKeyError if it was not wrapped by this key for ``tenant``."""


_INVALID_TAG: tuple[type[Exception], ...] = ()
"""What a failed authentication raises (``cryptography.exceptions.InvalidTag``), imported
with the cipher: an import statement on every open would cost as much as the decryption."""


def _aesgcm(key: bytes) -> AESGCM:
    global _INVALID_TAG
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise ConfigError(
            "encryption at rest needs the cryptography package: pip install 'memex[encryption]'"
        ) from exc
    _INVALID_TAG = (InvalidTag,)
    return AESGCM(key)


def _seal(aead: AESGCM, plaintext: bytes, data: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return FORMAT + nonce + aead.encrypt(nonce, plaintext, data)


def _open(aead: AESGCM, sealed: bytes, data: bytes) -> bytes | None:
    """The plaintext, or None when the value fails authentication."""
    if sealed[:1] != FORMAT or len(sealed) < 1 + _NONCE + 16:
        return None
    try:
        return aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], data)
    except _INVALID_TAG:
        return None


class LocalMasterKey:
    """A master key held in this process (from a file or the environment)."""

    def __init__(self, key: bytes) -> None:
        self._aead = _aesgcm(key)
        self._id = encryption.key_id(key)

    @property
    def key_id(self) -> str:
        """The key's fingerprint."""
        return self._id

    def wrap(self, data_key: bytes, tenant: str) -> bytes:
        """The data key sealed with the master key, bound to the tenant."""
        return _seal(self._aead, data_key, encryption.data_key_data(tenant))

    def unwrap(self, wrapped: bytes, tenant: str) -> bytes:
        """The data key; StoreKeyError for another key's or another tenant's."""
        found = _open(self._aead, wrapped, encryption.data_key_data(tenant))
        if found is None:
            raise StoreKeyError(
                f"tenant {tenant!r}'s data key does not unwrap with master key {self._id}"
            )
        return found


def master_key_from(settings: Settings) -> KeyProvider | None:
    """The master key the settings name: ``master_key`` (the key's text) or
    ``master_key_file`` (a file holding it); None when neither is set."""
    if settings.master_key and settings.master_key_file:
        raise ConfigError("set either master_key or master_key_file, not both")
    if settings.master_key:
        return LocalMasterKey(encryption.parse_master_key(settings.master_key, "MEMEX_MASTER_KEY"))
    if settings.master_key_file:
        return master_key_file(Path(settings.master_key_file))
    return None


def master_key_file(path: Path) -> KeyProvider:
    """The master key in the file at ``path``."""
    try:
        text = path.expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a key file"
        raise ConfigError(f"cannot read the master key file {path}: {reason}") from exc
    return LocalMasterKey(encryption.parse_master_key(text, str(path)))


def new_data_key() -> bytes:
    """A fresh random data key."""
    return os.urandom(encryption.KEY_BYTES)


class TenantCipher:
    """One tenant's data key in use: seals and opens its values, keys its hashes;
    memory fields it opens are kept in ``opened`` (if given) to be found again."""

    __slots__ = ("_aead", "_data_key", "_hash_key", "_opened", "tenant")

    def __init__(self, tenant: str, data_key: bytes, opened: Opened | None = None) -> None:
        self.tenant = tenant
        self._data_key = data_key
        self._aead = _aesgcm(data_key)
        self._opened = opened
        # A key of its own for hashes, derived from the data key (HMAC as a KDF).
        self._hash_key = hmac.new(data_key, b"memex content hash", hashlib.sha256).digest()

    def data_key(self) -> bytes:
        """The raw data key (to wrap it again with another master key)."""
        return self._data_key

    def seal(self, plaintext: str, data: bytes) -> bytes:
        """``plaintext`` sealed, bound to ``data``."""
        return _seal(self._aead, plaintext.encode("utf-8"), data)

    def open(self, sealed: bytes, data: bytes, what: str) -> str:
        """A sealed value's text; StoreKeyError when it fails authentication."""
        found = _open(self._aead, bytes(sealed), data)
        if found is None:
            raise self._failed(what)
        return found.decode("utf-8")

    def _failed(self, what: str) -> StoreKeyError:
        return StoreKeyError(
            f"{what} of tenant {self.tenant!r} fails authentication: it was changed or "
            "moved from another row"
        )

    def seal_memory(self, memory_id: str, version: int, field: str, text: str) -> bytes:
        """A memory's field sealed (and kept as opened: the full-text index's trigger
        opens the content as it is written, and a memory is often read soon after)."""
        sealed = self.seal(text, encryption.memory_data(self.tenant, memory_id, version, field))
        if self._opened is not None:
            self._opened.put((self.tenant, memory_id, version, field), sealed, text)
        return sealed

    def open_memory(self, memory_id: str, version: int, field: str, sealed: bytes) -> str:
        """A memory's sealed field opened (or found again among those opened lately);
        ``field`` ``content_hash``: the SHA-256 of the content (``sealed``), as an
        unsealed memory reports it."""
        if field == "content_hash":
            return self._content_hash(memory_id, version, sealed)
        opened = self._opened
        key = (self.tenant, memory_id, version, field)
        if opened is not None:
            text = opened.get(key, sealed)
            if text is not None:
                return text
        sealed = bytes(sealed)
        text = self._decrypt(key, sealed)
        if opened is not None:
            opened.put(key, sealed, text)
        return text

    def open_contents(self, items: Sequence[tuple[str, int, bytes]]) -> list[str]:
        """The sealed contents of (memory id, version, sealed bytes) opened: ``open_memory``
        of each, with one look for all of them among those opened lately (and one to keep
        those opened now)."""
        opened = self._opened
        kept = (
            [None] * len(items) if opened is None else opened.found(self.tenant, "content", items)
        )
        if None not in kept:
            return kept  # type: ignore[return-value]  # no None in it
        tenant, aead = self.tenant, self._aead
        out: list[str] = []
        new: list[tuple[Field, bytes, str]] = []
        for text, (memory_id, version, sealed) in zip(kept, items, strict=True):
            if text is None:
                data = encryption.memory_data(tenant, memory_id, version, "content")
                found = _open(aead, sealed, data)
                if found is None:
                    raise self._failed(f"the content of memory {memory_id} (version {version})")
                text = found.decode("utf-8")
                new.append(((tenant, memory_id, version, "content"), sealed, text))
            out.append(text)
        if opened is not None:
            opened.put_many(new)
        return out

    def open_row(
        self, memory_id: str, version: int, content: bytes, metadata: bytes
    ) -> tuple[str, str, str]:
        """A memory's sealed content and metadata opened, and its content's SHA-256:
        ``open_memory`` of each, in one look when they are kept."""
        opened, tenant = self._opened, self.tenant
        if opened is not None:
            found = opened.row(tenant, memory_id, version, content, metadata)
            if found is not None:
                return found
        text = meta = None
        content_key = (tenant, memory_id, version, "content")
        metadata_key = (tenant, memory_id, version, "metadata")
        if opened is not None:
            text = opened.get(content_key, content)
            meta = opened.get(metadata_key, metadata)
        # What is not kept is opened here, and both fields kept (the content with its
        # hash) under one hold of the lock: a read by id of a memory not read lately.
        if text is None:
            text = self._decrypt(content_key, content)
        if meta is None:
            meta = self._decrypt(metadata_key, metadata)
        digest = content_hash(text)
        if opened is not None:
            content, metadata = bytes(content), bytes(metadata)  # as SQLite gives them: no copy
            opened.put_row(content_key, content, text, digest, metadata_key, metadata, meta)
        return text, meta, digest

    def _decrypt(self, key: Field, sealed: bytes) -> str:
        """A memory's field (``key``) opened from ``sealed``, not looked for among those
        opened lately nor kept; StoreKeyError when it fails authentication."""
        _, memory_id, version, field = key
        data = encryption.memory_data(self.tenant, memory_id, version, field)
        found = _open(self._aead, sealed if type(sealed) is bytes else bytes(sealed), data)
        if found is None:
            raise self._failed(f"the {field} of memory {memory_id} (version {version})")
        return found.decode("utf-8")

    def _content_hash(self, memory_id: str, version: int, sealed: bytes) -> str:
        """The SHA-256 of a memory's sealed content, kept with the opened content."""
        opened = self._opened
        key = (self.tenant, memory_id, version, "content")
        found = None if opened is None else opened.hash_of(key, sealed)
        if found is None:
            text = self.open_memory(memory_id, version, "content", sealed)
            found = None if opened is None else opened.hash_of(key, sealed)
            if found is None:  # not kept (too large, or nowhere to keep it)
                found = content_hash(text)
        return found

    def digest(self, content_hash: str) -> str:
        """The stored form of a content hash: keyed, so it cannot be guessed from text."""
        return hmac.digest(self._hash_key, content_hash.encode(), "sha256").hex()


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A tenant's data key as stored: wrapped, and by which master key."""

    tenant: str
    wrapped: bytes
    key_id: str


class TenantKeys(Protocol):
    """A store's tenant data keys, for administration (``Store.tenant_keys``)."""

    def encrypted(self) -> list[tuple[str, str]]:
        """Every encrypted tenant, with the id of the master key that wraps its data key."""

    def rotate(self, new: KeyProvider) -> int:
        """Re-wrap every data key with the master key ``new``, atomically; how many."""

    def destroy(self, tenant: str) -> bool:
        """Destroy a tenant's data key for good (crypto-shredding); whether it had one."""

    def encrypt(self, tenant: str, progress: Progress | None = None) -> int:
        """Seal a plain tenant's stored text in batches; how many rows were sealed."""


class KeyNeededError(Exception):
    """A sealed value was met for a tenant whose key is not loaded yet (internal)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        super().__init__(tenant)


class Keyring:
    """A store's master key and the data keys it has unwrapped, by tenant.

    A sealed value met in SQL (through ``plain``) needs its tenant's key loaded first;
    ``plain`` records what it lacked so the store can load it and run the read again.
    """

    def __init__(self, provider: KeyProvider | None) -> None:
        self.provider = provider
        self.opened = Opened()
        """Memory fields opened lately, of every tenant (``Opened``)."""
        self._ciphers: dict[str, tuple[bytes, TenantCipher]] = {}
        self._local = threading.local()

    def cipher(self, tenant: str) -> TenantCipher | None:
        """The tenant's loaded cipher, if any."""
        found = self._ciphers.get(tenant)
        return None if found is None else found[1]

    def load(self, stored: StoredKey) -> TenantCipher:
        """The cipher of a stored data key (unwrapped once per wrapped value)."""
        found = self._ciphers.get(stored.tenant)
        if found is not None and found[0] == stored.wrapped:
            return found[1]
        if self.provider is None:
            raise StoreKeyError(encryption.no_master_key(stored.tenant))
        if stored.key_id != self.provider.key_id:
            raise StoreKeyError(
                f"tenant {stored.tenant!r}'s data key is wrapped by master key {stored.key_id}, "
                f"not by the configured one ({self.provider.key_id})"
            )
        data_key = self.provider.unwrap(stored.wrapped, stored.tenant)
        cipher = TenantCipher(stored.tenant, data_key, self.opened)
        self._ciphers[stored.tenant] = (stored.wrapped, cipher)
        return cipher

    def forget(self, tenant: str) -> None:
        """Drop a tenant's key from memory (it was destroyed), and what it opened."""
        self._ciphers.pop(tenant, None)
        self.opened.drop(tenant)

    def new_key(self, tenant: str) -> tuple[StoredKey, TenantCipher]:
        """A fresh data key for ``tenant``, wrapped, and its cipher."""
        if self.provider is None:
            raise StoreKeyError(encryption.no_master_key(tenant))
        data_key = new_data_key()
        stored = StoredKey(tenant, self.provider.wrap(data_key, tenant), self.provider.key_id)
        cipher = TenantCipher(tenant, data_key, self.opened)
        self._ciphers[tenant] = (stored.wrapped, cipher)
        return stored, cipher

    def open_field(
        self, tenant: str, memory_id: str, version: int, field: str, value: bytes
    ) -> str:
        """A sealed memory field's text (``field`` ``content_hash``: the SHA-256 of the
        content, as an unsealed memory reports it); KeyNeededError when the tenant's key
        is not loaded yet."""
        found = self._ciphers.get(tenant)
        if found is None:
            raise KeyNeededError(tenant)
        return found[1].open_memory(memory_id, version, field, value)

    def open_contents(self, tenant: str, items: Sequence[tuple[str, int, bytes]]) -> list[str]:
        """The texts of a tenant's sealed contents, each given as (memory id, version,
        sealed bytes) (``TenantCipher.open_contents``); KeyNeededError when the tenant's
        key is not loaded yet."""
        found = self._ciphers.get(tenant)
        if found is None:
            raise KeyNeededError(tenant)
        return found[1].open_contents(items)

    def open_row(
        self, tenant: str, memory_id: str, version: int, content: bytes, metadata: bytes
    ) -> tuple[str, str, str]:
        """A sealed row's content, metadata and content hash (``TenantCipher.open_row``);
        KeyNeededError when the tenant's key is not loaded yet."""
        found = self._ciphers.get(tenant)
        if found is None:
            raise KeyNeededError(tenant)
        return found[1].open_row(memory_id, version, content, metadata)

    def plain(self, tenant: str, memory_id: str, version: int, field: str, value: bytes) -> str:
        """``open_field`` as SQL calls it (``memex_plain``): what it fails with is kept
        for ``failure``, since SQLite reports only that the function failed."""
        try:
            return self.open_field(tenant, memory_id, version, field, value)
        except BaseException as exc:
            self._local.failure = exc
            raise

    def failure(self) -> BaseException | None:
        """What ``plain`` last failed with on this thread (then cleared)."""
        found: BaseException | None = getattr(self._local, "failure", None)
        self._local.failure = None
        return found

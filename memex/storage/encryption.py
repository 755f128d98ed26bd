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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from memex.core import encryption
from memex.errors import ConfigError, StoreKeyError

if TYPE_CHECKING:
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


def _aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise ConfigError(
            "encryption at rest needs the cryptography package: pip install 'memex[encryption]'"
        ) from exc
    return AESGCM(key)


def _seal(aead: AESGCM, plaintext: bytes, data: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return FORMAT + nonce + aead.encrypt(nonce, plaintext, data)


def _open(aead: AESGCM, sealed: bytes, data: bytes) -> bytes | None:
    """The plaintext, or None when the value fails authentication."""
    from cryptography.exceptions import InvalidTag

    if sealed[:1] != FORMAT or len(sealed) < 1 + _NONCE + 16:
        return None
    try:
        return aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], data)
    except InvalidTag:
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
    """One tenant's data key in use: seals and opens its values, keys its hashes."""

    __slots__ = ("_aead", "_data_key", "_hash_key", "tenant")

    def __init__(self, tenant: str, data_key: bytes) -> None:
        self.tenant = tenant
        self._data_key = data_key
        self._aead = _aesgcm(data_key)
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
            raise StoreKeyError(
                f"{what} of tenant {self.tenant!r} fails authentication: it was changed or "
                "moved from another row"
            )
        return found.decode("utf-8")

    def seal_memory(self, memory_id: str, version: int, field: str, text: str) -> bytes:
        """A memory's field sealed."""
        return self.seal(text, encryption.memory_data(self.tenant, memory_id, version, field))

    def open_memory(self, memory_id: str, version: int, field: str, sealed: bytes) -> str:
        """A memory's sealed field opened."""
        data = encryption.memory_data(self.tenant, memory_id, version, field)
        return self.open(sealed, data, f"the {field} of memory {memory_id} (version {version})")

    def digest(self, content_hash: str) -> str:
        """The stored form of a content hash: keyed, so it cannot be guessed from text."""
        return hmac.new(self._hash_key, content_hash.encode(), hashlib.sha256).hexdigest()


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
        cipher = TenantCipher(stored.tenant, self.provider.unwrap(stored.wrapped, stored.tenant))
        self._ciphers[stored.tenant] = (stored.wrapped, cipher)
        return cipher

    def forget(self, tenant: str) -> None:
        """Drop a tenant's key from memory (it was destroyed)."""
        self._ciphers.pop(tenant, None)

    def new_key(self, tenant: str) -> tuple[StoredKey, TenantCipher]:
        """A fresh data key for ``tenant``, wrapped, and its cipher."""
        if self.provider is None:
            raise StoreKeyError(encryption.no_master_key(tenant))
        data_key = new_data_key()
        stored = StoredKey(tenant, self.provider.wrap(data_key, tenant), self.provider.key_id)
        cipher = TenantCipher(tenant, data_key)
        self._ciphers[tenant] = (stored.wrapped, cipher)
        return stored, cipher

    def plain(self, tenant: str, memory_id: str, version: int, field: str, value: bytes) -> str:
        """A sealed memory field's text, for SQL (``field`` ``content_hash``: the SHA-256
        of the content, as an unsealed memory reports it)."""
        try:
            cipher = self.cipher(tenant)
            if cipher is None:
                raise KeyNeededError(tenant)
            local = self._local
            if field == "content_hash":
                # A row's content is opened just before its hash (``COLUMNS`` order).
                last = getattr(local, "last", None)
                if last is not None and last[0] == (tenant, memory_id, version, value):
                    text = last[1]
                else:
                    text = cipher.open_memory(memory_id, version, "content", value)
                return hashlib.sha256(text.encode("utf-8")).hexdigest()
            text = cipher.open_memory(memory_id, version, field, value)
            if field == "content":
                local.last = ((tenant, memory_id, version, value), text)
            return text
        except BaseException as exc:
            self._local.failure = exc  # SQLite reports only that the function failed
            raise

    def failure(self) -> BaseException | None:
        """What ``plain`` last failed with on this thread (then cleared)."""
        found: BaseException | None = getattr(self._local, "failure", None)
        self._local.failure = None
        return found

    def sql_function(self) -> Callable[[str, str, int, str, bytes], str]:
        """``plain`` as SQLite calls it."""
        return self.plain

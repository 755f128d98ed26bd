"""Encryption at rest, the pure part: what a sealed value is bound to, how a master key
is written, and whether a tenant's write is sealed (docs/security.md).

A sealed value is bound by its associated data to where it belongs: the tenant, the
memory's id and version and the field (or the tenant and session of a saved context),
so a ciphertext copied into another row, version or field fails authentication
instead of decrypting there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from enum import Enum

from memex.errors import ConfigError, StoreKeyError

KEY_BYTES = 32
"""AES-256: data keys and master keys are 256 bits."""
SEALED_FIELDS = ("content", "metadata")
"""The columns of a memory stored sealed for an encrypted tenant."""


def memory_data(tenant: str, memory_id: str, version: int, field: str) -> bytes:
    """The associated data of a memory's sealed field: its tenant, id, version and field."""
    return f"memex:memory\x00{tenant}\x00{memory_id}\x00{version}\x00{field}".encode()


def context_data(tenant: str, session: str) -> bytes:
    """The associated data of a saved session context's sealed text."""
    return f"memex:context\x00{tenant}\x00{session}".encode()


def data_key_data(tenant: str) -> bytes:
    """The associated data of a tenant's wrapped data key: it unwraps for that tenant only."""
    return f"memex:data-key\x00{tenant}".encode()


def key_id(master_key: bytes) -> str:
    """A master key's public id: a fingerprint that tells keys apart, not the key."""
    return hashlib.sha256(b"memex master key id\x00" + master_key).hexdigest()[:16]


def parse_master_key(text: str, origin: str) -> bytes:
    """A master key from its text: 32 bytes as 64 hex digits or as base64 (``origin``
    names where it came from, for the error)."""
    raw = text.strip()
    try:
        key = (
            bytes.fromhex(raw)
            if len(raw) == 2 * KEY_BYTES
            else base64.b64decode(raw, validate=True)
        )
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"the master key in {origin} must be 32 bytes, written as 64 hex digits or as "
            "base64 (make one with: openssl rand -hex 32)"
        )
    return key


class Sealing(Enum):
    """What a write does with a tenant's text."""

    PLAIN = "plain"
    """Stored as given: the tenant has no data key."""
    SEAL = "seal"
    """Sealed with the tenant's data key."""
    CREATE = "create"
    """A data key is made for the tenant now, and the write sealed with it."""


def sealing(*, master_key: bool, has_key: bool, has_memories: bool, tenant: str) -> Sealing:
    """Whether a write to ``tenant`` is sealed.

    A tenant with a data key is always sealed, and needs the master key; with a master
    key configured, a tenant without memories gets a data key at its first write; a
    tenant that already holds plain memories stays plain until it is encrypted on
    purpose (``memex admin encrypt``).
    """
    if has_key:
        if not master_key:
            raise StoreKeyError(no_master_key(tenant))
        return Sealing.SEAL
    if master_key and not has_memories:
        return Sealing.CREATE
    return Sealing.PLAIN


def no_master_key(tenant: str) -> str:
    """The error for an encrypted tenant used without the master key."""
    return (
        f"tenant {tenant!r} is encrypted and this store was opened without its master key; "
        "set MEMEX_MASTER_KEY or MEMEX_MASTER_KEY_FILE"
    )

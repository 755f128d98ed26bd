"""API keys: made from the operating system's randomness, kept only as a hash.

A key reads ``mxk_<id>_<secret>``: the id (16 lowercase letters and digits) finds the
stored key, the secret (256 random bits, base32) proves it. Only the SHA-256 of the
whole key is stored: a key is as strong as 256 random bits, which no guessing can
search, so a slow password hash would add cost to every request and no safety.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Sequence
from datetime import datetime

from memex.core.identity import ApiKey, Role, key_prefix
from memex.core.models import utcnow

ID_LENGTH = 16
SECRET_BYTES = 32
_ID_ALPHABET = string.ascii_lowercase + string.digits

DUMMY_HASH = hashlib.sha256(b"mxk_no_such_key").hexdigest()
"""What a presented key is compared with when its id is unknown, so that a refusal
takes as long whether or not the id exists."""


def new_key_id() -> str:
    """A new key id: 16 random lowercase letters and digits (about 82 bits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def new_secret() -> str:
    """A new secret: 256 random bits as 52 lowercase base32 characters (no ``_``)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=").lower()


def hash_key(key: str) -> str:
    """The stored form of a whole key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def matches(key: str, stored_hash: str) -> bool:
    """Whether ``key`` is the key stored as ``stored_hash`` (in constant time)."""
    return hmac.compare_digest(hash_key(key), stored_hash)


def issue_key(
    tenant: str,
    role: Role,
    *,
    user: str | None = None,
    project: str | None = None,
    name: str | None = None,
    expires_at: datetime | None = None,
    allow: Sequence[str] = (),
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key: the record to store (with the hash only) and the whole key, which is
    shown once and never stored."""
    key_id = new_key_id()
    secret = f"{key_prefix(key_id)}_{new_secret()}"
    record = ApiKey(
        id=key_id,
        tenant=tenant,
        role=role,
        hash=hash_key(secret),
        created_at=now or utcnow(),
        user=user,
        project=project,
        name=name,
        expires_at=expires_at,
        allow=tuple(allow),
    )
    return record, secret

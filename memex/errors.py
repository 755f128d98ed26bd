"""The memex error tree.

Every error memex raises on purpose derives from :class:`MemexError`; each
interface maps these classes to exit codes or HTTP statuses in one place::

    MemexError
    ├── ValidationError          bad input: a wrong argument, oversized content, a bad filter
    │   └── ImportFormatError    a malformed JSON Lines record (carries the line number)
    ├── NotFoundError            no memory with that id in this scope
    ├── ScopeError               a write or read outside the handle's scope
    ├── ConflictError            a memory changed in another process since it was read, or
    │                            a name or key id that exists
    ├── ConfigError              bad settings, or an optional extra that is not installed
    ├── EmbedderError            the embedder failed or does not match the store
    │   └── EmbedderMismatchError  the store's vectors were made by another model
    ├── OutputError              an export or backup file could not be written
    ├── AuthError                a request the server refuses for who sent it
    │   ├── AuthenticationError  no credential, or one that is unknown, revoked or expired
    │   └── PermissionDeniedError  a credential whose role, project or address does not allow it
    ├── RateLimitError           too many requests: try again after ``retry_after`` seconds
    ├── QuotaExceededError       a tenant at a hard quota (``quota`` names it): nothing written
    │   └── CallQuotaExceededError  its calls this hour: try again after ``retry_after``
    └── StoreError               the storage backend failed
        ├── StoreCorruptError    the store file is not a readable memex store
        ├── StoreLockedError     another process held the store past the busy timeout
        ├── StoreReadOnlyError   a write to a store that is open read-only (asked, or forced
        │                        by a file or folder this process cannot write)
        ├── StoreFullError       no space left on the device holding the store
        ├── StoreKeyError        an encrypted tenant's master key is missing or wrong, its
        │                        data key destroyed, or a sealed value fails authentication
        └── SchemaVersionError   the store was made by a newer memex
"""

from __future__ import annotations


class MemexError(Exception):
    """Base class of every error memex raises on purpose."""


class ValidationError(MemexError, ValueError):
    """Input that memex refuses: a wrong argument, oversized content, a bad filter."""


class ImportFormatError(ValidationError):
    """A malformed JSON Lines record during import."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}")


class NotFoundError(MemexError, LookupError):
    """No memory with that id is visible in this scope."""


class ScopeError(MemexError):
    """An operation reached outside the scope of the handle it was called on."""


class ConflictError(MemexError):
    """A memory changed (or vanished) in another process since it was read."""


class ConfigError(MemexError):
    """Bad settings, or an optional dependency that is not installed."""


class EmbedderError(MemexError):
    """The embedder failed, or produced vectors memex cannot use."""


class EmbedderMismatchError(EmbedderError):
    """The store's vectors were made by another embedding model."""


class OutputError(MemexError):
    """An output file (an export, a backup) could not be written: no space, no permission."""


class AuthError(MemexError):
    """A request refused because of who sent it; ``reason`` names why, for metrics.
    ``key_id`` and ``tenant`` name the key presented, as far as it is known (a
    well-formed key's public id; its tenant once the whole key was verified), for the
    audit trail."""

    def __init__(
        self,
        message: str,
        reason: str = "denied",
        *,
        key_id: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self.reason = reason
        self.key_id = key_id
        self.tenant = tenant
        super().__init__(message)


class AuthenticationError(AuthError):
    """No credential, or one that is malformed, unknown, revoked or expired."""


class PermissionDeniedError(AuthError):
    """A valid credential whose role, project grant or client address does not allow this."""


class RateLimitError(MemexError):
    """Too many requests; ``retry_after`` says how many seconds to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class QuotaExceededError(MemexError):
    """A tenant at one of its hard quotas: ``quota`` names it (``memories``,
    ``storage_mb``, ``projects``, ``users``, ``calls_per_hour``); nothing was written."""

    def __init__(self, message: str, quota: str, retry_after: float | None = None) -> None:
        self.quota = quota
        self.retry_after = retry_after
        super().__init__(message)


class CallQuotaExceededError(QuotaExceededError):
    """A tenant's calls this hour are at its hard quota; ``retry_after`` says how many
    seconds until the next hour."""


class StoreError(MemexError):
    """The storage backend failed."""


class StoreCorruptError(StoreError):
    """The store file is not a readable memex store."""


class StoreLockedError(StoreError):
    """Another process held the store for longer than the busy timeout."""


class StoreReadOnlyError(StoreError):
    """The store is open read-only: asked for, or its file or folder cannot be written."""

    @classmethod
    def refused(cls, location: str, reason: str) -> StoreReadOnlyError:
        """A write refused by a store that is read-only for ``reason``."""
        return cls(f"store {location} is read-only ({reason}); nothing was written")


class StoreFullError(StoreError):
    """No space is left on the device that holds the store."""


class StoreKeyError(StoreError):
    """An encrypted tenant whose key is missing, wrong or destroyed, or whose stored
    ciphertext fails authentication (tampered with, or moved from another row)."""


class SchemaVersionError(StoreError):
    """The store's schema is newer than this version of memex understands."""

"""What travels between the HTTP server and its clients: error codes and statuses.

One table serves both ends: the server turns an error into a status and a code, the
client turns the code back into the same error class (``docs/http.md`` lists them).
Pure.
"""

from __future__ import annotations

from memex.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    EmbedderError,
    ImportFormatError,
    MemexError,
    NotFoundError,
    OutputError,
    PermissionDeniedError,
    RateLimitError,
    SchemaVersionError,
    ScopeError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
    ValidationError,
)

ERRORS: tuple[tuple[type[MemexError], int, str], ...] = (
    # most specific first: the first class an error is an instance of decides
    (ImportFormatError, 422, "import_format_error"),
    (ValidationError, 422, "validation_error"),
    (NotFoundError, 404, "not_found"),
    (ScopeError, 403, "scope_error"),
    (ConflictError, 409, "conflict"),
    (AuthenticationError, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "permission_denied"),
    (RateLimitError, 429, "rate_limited"),
    (StoreReadOnlyError, 409, "store_read_only"),
    (StoreLockedError, 503, "store_locked"),
    (StoreFullError, 507, "store_full"),
    (SchemaVersionError, 503, "store_unavailable"),
    (StoreCorruptError, 503, "store_unavailable"),
    (StoreError, 503, "store_unavailable"),
    (EmbedderError, 500, "internal_error"),
    (ConfigError, 500, "internal_error"),
    (OutputError, 500, "internal_error"),
)
"""(error class, HTTP status, code), most specific first."""

REQUEST_ERRORS: dict[str, tuple[int, type[MemexError]]] = {
    "malformed_json": (400, ValidationError),
    "bad_request": (400, ValidationError),
    "method_not_allowed": (405, ValidationError),
    "payload_too_large": (413, ValidationError),
    "unsupported_media_type": (415, ValidationError),
}
"""Codes for requests refused before they reach memex: (status, the client's error class)."""


def status_and_code(exc: MemexError) -> tuple[int, str]:
    """The HTTP status and stable code of ``exc``."""
    for cls, status, code in ERRORS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def error_class(code: str, status: int) -> type[MemexError]:
    """The error class a client raises for a response's ``code`` (or, for an unknown
    code, its ``status``)."""
    for cls, _, known in ERRORS:
        if known == code:
            return StoreError if code == "store_unavailable" else cls
    if code in REQUEST_ERRORS:
        return REQUEST_ERRORS[code][1]
    if code == "internal_error" or status >= 500:
        return StoreError
    if status == 404:
        return NotFoundError
    if status in (401, 403):
        return PermissionDeniedError if status == 403 else AuthenticationError
    return ValidationError

"""What travels between the HTTP server and its clients: error codes and statuses, and
the values the API answers with.

One table serves both ends: the server turns an error into a status and a code, the
client turns the code back into the same error class (``docs/http.md`` lists them).
The server answers with each value's ``to_dict``; the ``*_from_dict`` functions read
it back into the same value. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from memex.core.assembled import Context, ContextSection
from memex.core.context import Entry
from memex.core.models import Hit, Memory, Page, Scope, Stats
from memex.errors import (
    AuthenticationError,
    CallQuotaExceededError,
    ConfigError,
    ConflictError,
    EmbedderError,
    ImportFormatError,
    MemexError,
    NotFoundError,
    OutputError,
    PermissionDeniedError,
    QuotaExceededError,
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
    (CallQuotaExceededError, 429, "quota_exceeded"),
    (QuotaExceededError, 409, "quota_exceeded"),
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
    code, its ``status``); a code two statuses share is told apart by the status."""
    for cls, known_status, known in ERRORS:
        if known == code and (code != "quota_exceeded" or known_status == status):
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


# -- values: the JSON ``to_dict`` writes, read back ---------------------------------------

_TIMES = frozenset(
    {
        "created_at",
        "updated_at",
        "expires_at",
        "last_accessed_at",
        "valid_from",
        "valid_until",
        "deleted_at",
    }
)


def memory_from_dict(data: Mapping[str, Any]) -> Memory:
    """The memory ``Memory.to_dict`` wrote: its exact inverse (fields it does not know
    are left out, so a newer server's additions do no harm)."""
    values: dict[str, Any] = {}
    for name in _MEMORY_FIELDS:
        value = data[name]
        if name in _TIMES:
            value = None if value is None else _time(value)
        elif name == "scope":
            value = Scope(**value)
        elif name == "tags":
            value = tuple(value)
        elif name == "metadata":
            value = dict(value)
        elif name == "importance":
            value = float(value)
        values[name] = value
    return Memory(**values)


def _time(value: str) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"a time must be a string, not {type(value).__name__}")
    return datetime.fromisoformat(value)


_MEMORY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Memory))


def hit_from_dict(data: Mapping[str, Any]) -> Hit:
    """The hit ``Hit.to_dict`` wrote."""
    return Hit(
        memory=memory_from_dict(data["memory"]),
        score=float(data["score"]),
        lexical_rank=data["lexical_rank"],
        vector_rank=data["vector_rank"],
        explain=dict(data["explain"]),
    )


def page_from_dict(data: Mapping[str, Any]) -> Page:
    """A page of a listing: ``{"items": [...], "next_cursor": ...}``."""
    return Page([memory_from_dict(m) for m in data["items"]], data["next_cursor"])


def stats_from_dict(data: Mapping[str, Any]) -> Stats:
    """The stats ``Stats.to_dict`` wrote."""
    values = {f.name: data[f.name] for f in fields(Stats)}
    values["by_kind"] = dict(values["by_kind"])
    return Stats(**values)


def entry_from_dict(data: Mapping[str, Any]) -> Entry:
    """A manifest entry as ``Context.to_dict`` wrote it."""
    return Entry(
        memory_id=data["id"],
        section=data["section"],
        included=data["included"],
        reason=data["reason"],
        tokens=data["tokens"],
        score=float(data["score"]),
        why=dict(data["why"]),
        content_chars=data["content_chars"],
        shown_chars=data["shown_chars"],
    )


def section_from_dict(data: Mapping[str, Any]) -> ContextSection:
    """A context's section as ``ContextSection.to_dict`` wrote it."""
    return ContextSection(
        name=data["name"],
        title=data["title"],
        stable=data["stable"],
        memories=[memory_from_dict(m) for m in data["memories"]],
        tokens=data["tokens"],
        allowance=data["allowance"],
        text=data["text"],
        cached=data["cached"],
        skipped=data["skipped"],
    )


def context_from_dict(data: Mapping[str, Any]) -> Context:
    """The context ``Context.to_dict`` wrote."""
    return Context(
        text=data["text"],
        tokens=data["tokens"],
        budget_tokens=data["budget_tokens"],
        format=data["format"],
        sections=[section_from_dict(s) for s in data["sections"]],
        manifest=[entry_from_dict(e) for e in data["manifest"]],
        breakpoints=list(data["breakpoints"]),
        prefix_hash=data["prefix_hash"],
        prefix_tokens_reused=data["prefix_tokens_reused"],
        stats=dict(data["stats"]),
    )

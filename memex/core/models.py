"""Domain values: memories, scopes, search hits, pages and store statistics."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from memex.core.validate import KNOWN_KINDS as KNOWN_KINDS
from memex.core.validate import shown
from memex.core.validate import validate_content as validate_content
from memex.core.validate import validate_metadata as validate_metadata
from memex.core.validate import validate_tags as validate_tags
from memex.core.visibility import State, state_at
from memex.errors import ValidationError

SCOPE_FIELDS: tuple[str, ...] = ("tenant", "project", "user", "agent", "session")
DEFAULT_TENANT = "default"
MIN_YEAR, MAX_YEAR = 1970, 9999
"""The years a time may fall in, once converted to UTC."""

_SCOPE_VALUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def to_micros(value: datetime) -> int:
    """A datetime as integer microseconds since the Unix epoch (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(value: int) -> datetime:
    """Integer microseconds since the Unix epoch as a UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


def parse_time(value: datetime | str | float | int, what: str = "time") -> datetime:
    """Accept a datetime, an ISO 8601 string or Unix seconds; return an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValidationError(f"{what} must be a datetime or ISO 8601 string, not {shown(value)}")
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, int | float):
        try:
            result = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise _out_of_range(what, value) from exc
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            result = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValidationError(f"{what} is not an ISO 8601 time: {shown(value)}") from exc
    else:
        raise ValidationError(f"{what} must be a datetime or ISO 8601 string, not {shown(value)}")
    if result.tzinfo is None:
        result = result.replace(tzinfo=UTC)
    try:  # an offset can carry a time in year 9999 or 1 past the calendar's end
        result = result.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise _out_of_range(what, value) from exc
    if not MIN_YEAR <= result.year <= MAX_YEAR:
        raise _out_of_range(what, value)
    return result


def _out_of_range(what: str, value: object) -> ValidationError:
    return ValidationError(
        f"{what} is out of range (years {MIN_YEAR} to {MAX_YEAR} in UTC): {shown(value)}"
    )


def content_hash(content: str) -> str:
    """The SHA-256 hex digest of a memory's content: the key of the embedding cache."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a memory belongs: any subset of tenant, project, user, agent and session.

    As a filter, a field left as ``None`` matches any value.
    """

    tenant: str | None = None
    project: str | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None

    def __post_init__(self) -> None:
        for name in SCOPE_FIELDS:
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, str) or not _SCOPE_VALUE_RE.fullmatch(value)
            ):
                raise ValidationError(
                    f"scope {name} must be 1-128 characters of letters, digits and _.:@/- "
                    f"starting with a letter or digit, not {shown(value)}"
                )

    @classmethod
    def of(cls, value: Scope | Mapping[str, Any] | None) -> Scope:
        """Build a scope from a mapping (unknown keys are an error) or pass one through."""
        if value is None:
            return cls()
        if isinstance(value, Scope):
            return value
        if not isinstance(value, Mapping):
            raise ValidationError(f"scope must be a mapping of {', '.join(SCOPE_FIELDS)}")
        unknown = set(value) - set(SCOPE_FIELDS)
        if unknown:
            raise ValidationError(
                f"unknown scope field {shown(min(unknown, key=str))}; "
                f"expected any of {', '.join(SCOPE_FIELDS)}"
            )
        return cls(**{k: v for k, v in value.items() if v is not None})

    def items(self) -> list[tuple[str, str]]:
        """The fields that are set, in canonical order."""
        return [(n, v) for n in SCOPE_FIELDS if (v := getattr(self, n)) is not None]

    def as_dict(self) -> dict[str, str]:
        """The fields that are set, as a plain dict."""
        return dict(self.items())

    def narrow(self, other: Scope) -> Scope:
        """This scope with ``other``'s fields added; a field set to another value is an error."""
        values = self.as_dict()
        for name, value in other.items():
            current = values.get(name)
            if current is not None and current != value:
                raise _scope_error(name, current, value)
            values[name] = value
        return Scope(**values)

    def contains(self, other: Scope) -> bool:
        """Whether every field set here is set to the same value in ``other``."""
        return all(getattr(other, name) == value for name, value in self.items())


def _scope_error(name: str, current: str, value: str) -> Exception:
    from memex.errors import ScopeError

    return ScopeError(f"scope {name} is fixed to {current!r} on this handle; got {value!r}")


class _Stored:
    """Memory's base: one slot for the stored record a memory read from a store waits to be
    built from (see ``stored_memories``)."""

    __slots__ = ("_stored",)


@dataclass(frozen=True, slots=True)
class Memory(_Stored):
    """One stored memory, at one version."""

    id: str
    content: str
    kind: str
    scope: Scope
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    importance: float
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_accessed_at: datetime | None
    access_count: int
    source: str | None
    content_hash: str
    version: int
    valid_from: datetime
    valid_until: datetime | None = None
    superseded_by: str | None = None
    deleted_at: datetime | None = None

    def state(self, at: datetime | None = None) -> State:
        """Forgotten, expired, superseded, pending or current at ``at`` (default: now;
        naive means UTC); the rule every read follows, see ``memex.core.visibility``."""
        return state_at(
            at or utcnow(), deleted_at=self.deleted_at, expires_at=self.expires_at,
            valid_from=self.valid_from, valid_until=self.valid_until,
        )  # fmt: skip

    def is_current(self, at: datetime | None = None) -> bool:
        """Whether ``recall`` with ``as_of=at`` (default: now) may return the memory."""
        return self.state(at) == "current"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: times as ISO 8601 strings, scope as a dict, tags as a list."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Scope):
                value = value.as_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def with_changes(self, **changes: Any) -> Memory:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute

        def __getattr__(self, name: str) -> Any:
            # Reached only when a slot is empty: a memory read from a store, not built yet.
            return _build_field(self, name)


@dataclass(frozen=True, slots=True)
class Hit:
    """A recalled memory with its fused score (higher is better) and how it was reached."""

    memory: Memory
    score: float
    lexical_rank: int | None = None
    vector_rank: int | None = None
    explain: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "score": self.score,
            "lexical_rank": self.lexical_rank,
            "vector_rank": self.vector_rank,
            "explain": dict(self.explain),
            "memory": self.memory.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; pass ``next_cursor`` back to get the next one."""

    items: list[Memory]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts and sizes of a store, within a scope."""

    memories: int
    deleted: int
    superseded: int
    expired: int
    versions: int
    by_kind: dict[str, int]
    embedder: str | None
    dimensions: int | None
    vectors: int
    schema_version: int
    size_bytes: int
    path: str
    read_only: str | None = None
    """Why the store refuses writes (as ``Memex.read_only``), None when it takes them."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- memories read from a store ------------------------------------------------------------


class Decoder(Protocol):
    """How a backend decodes its own stored records into memories (see ``stored_memories``)."""

    def fields(self, record: Any) -> tuple[Any, ...]:
        """Every field of the memory but ``metadata``, in ``BUILT_FIELDS`` order."""
        ...

    def metadata(self, record: Any) -> dict[str, Any]:
        """The memory's metadata."""
        ...


BUILT_FIELDS: tuple[str, ...] = (
    *(f.name for f in fields(Memory) if f.name not in ("id", "metadata")),
    "id",
)
"""The fields ``Decoder.fields`` returns, in order: every one but metadata, id last."""

_new = object.__new__
_record = _Stored.__dict__["_stored"]
_set_stored = _record.__set__
_get = {f.name: Memory.__dict__[f.name].__get__ for f in fields(Memory)}
_set = {f.name: Memory.__dict__[f.name].__set__ for f in fields(Memory)}
# Bound slot setters, looked up once: building a memory is 18 plain calls.
(
    _set_content, _set_kind, _set_scope, _set_tags, _set_importance, _set_created_at,
    _set_updated_at, _set_expires_at, _set_last_accessed_at, _set_access_count, _set_source,
    _set_content_hash, _set_version, _set_valid_from, _set_valid_until, _set_superseded_by,
    _set_deleted_at, _set_id,
) = (_set[name] for name in BUILT_FIELDS)  # fmt: skip
_get_id, _get_metadata, _set_metadata = _get["id"], _get["metadata"], _set["metadata"]
_metadata_lock = threading.Lock()


def stored_memories(records: Sequence[Any], decoder: Decoder) -> list[Memory]:
    """Memories for a backend's stored records, each built on first use by ``decoder``.

    Records were validated when written, so nothing is checked again. Reading any field
    builds every field but ``metadata``, whose JSON is decoded on its own first read:
    a recall builds its page's memories, and often never reads their metadata.
    """
    out: list[Memory] = []
    append = out.append
    for record in records:
        memory = _new(Memory)
        _set_stored(memory, (decoder, record))
        append(memory)
    return out


def _build_field(memory: Memory, name: str) -> Any:
    if name not in _get:
        raise AttributeError(f"'Memory' object has no attribute {name!r}")
    try:
        decoder, record = _record.__get__(memory)
    except AttributeError:  # built meanwhile by another thread, or never had a record
        return _get[name](memory)
    if name == "metadata":
        with _metadata_lock:  # one dict per memory, even if two threads ask at once
            try:
                return _get_metadata(memory)
            except AttributeError:
                value = decoder.metadata(record)
                _set_metadata(memory, value)
            try:  # both groups built: the record is no longer needed
                _get_id(memory)
                _record.__delete__(memory)
            except AttributeError:
                pass
            return value
    (
        content, kind, scope, tags, importance, created_at, updated_at, expires_at,
        last_accessed_at, access_count, source, chash, version, valid_from, valid_until,
        superseded_by, deleted_at, mid,
    ) = decoder.fields(record)  # fmt: skip
    _set_content(memory, content)
    _set_kind(memory, kind)
    _set_scope(memory, scope)
    _set_tags(memory, tags)
    _set_importance(memory, importance)
    _set_created_at(memory, created_at)
    _set_updated_at(memory, updated_at)
    _set_expires_at(memory, expires_at)
    _set_last_accessed_at(memory, last_accessed_at)
    _set_access_count(memory, access_count)
    _set_source(memory, source)
    _set_content_hash(memory, chash)
    _set_version(memory, version)
    _set_valid_from(memory, valid_from)
    _set_valid_until(memory, valid_until)
    _set_superseded_by(memory, superseded_by)
    _set_deleted_at(memory, deleted_at)
    _set_id(memory, mid)  # last: a set id tells the metadata path every field is built
    with _metadata_lock:  # metadata built first: the record is no longer needed either
        try:
            _get_metadata(memory)
            _record.__delete__(memory)
        except AttributeError:
            pass
    return _get[name](memory)

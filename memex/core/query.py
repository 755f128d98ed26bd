"""Query values shared by every backend: filters, orderings and cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from memex.core.models import (
    Scope,
    parse_time,
    validate_kind,
    validate_metadata_filter,
    validate_tags,
)
from memex.errors import ValidationError

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Filters:
    """What a read may return. ``scope`` always carries a tenant once it reaches a store.

    ``as_of`` asks for what was valid at that time (superseded memories included);
    without it only memories valid now are returned. Deleted and expired memories are
    left out unless ``include_deleted`` is set (history and export use it).
    ``superseded_by`` keeps only the memories that this memory superseded.
    """

    scope: Scope = field(default_factory=Scope)
    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None
    include_deleted: bool = False
    include_superseded: bool = False
    superseded_by: str | None = None

    def pool(self, limit: int, indexed: tuple[str, ...]) -> int:
        """How many hits an index should return for ``limit`` to pass these filters.

        Four times ``limit`` when something beyond the scope fields in ``indexed`` may
        drop hits (kinds, tags, metadata, time, another scope field); otherwise only
        forgotten, expired or superseded memories can, so an eighth more is enough (the
        caller retries with a larger pool if too few pass).
        """
        scope_left = any(name not in indexed for name, _ in self.scope.items())
        narrow = self.kinds or self.tags or self.metadata or self.since or self.until
        if narrow or scope_left or self.as_of is not None or self.superseded_by is not None:
            return limit * 4
        return limit + limit // 8 + 8

    @classmethod
    def build(
        cls,
        *,
        scope: Scope,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        as_of: datetime | str | None = None,
        include_deleted: bool = False,
        include_superseded: bool = False,
    ) -> Filters:
        """Validate raw filter arguments into a ``Filters``."""
        if isinstance(kinds, str):
            kinds = [kinds]
        since_t = parse_time(since, "since") if since is not None else None
        until_t = parse_time(until, "until") if until is not None else None
        if since_t and until_t and since_t > until_t:
            raise ValidationError("since must not be later than until")
        return cls(
            scope=scope,
            kinds=tuple(validate_kind(k) for k in (kinds or ())),
            tags=validate_tags(tags),
            metadata=validate_metadata_filter(metadata),
            since=since_t,
            until=until_t,
            as_of=parse_time(as_of, "as_of") if as_of is not None else None,
            include_deleted=include_deleted,
            include_superseded=include_superseded,
        )


def encode_cursor(created_at_micros: int, rowid: int) -> str:
    """An opaque keyset cursor for the position after a listed memory."""
    raw = json.dumps([created_at_micros, rowid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The keyset position inside a cursor; a malformed cursor is a ValidationError."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created, rowid = value
        if not isinstance(created, int) or not isinstance(rowid, int):
            raise TypeError
        return created, rowid
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"malformed cursor {cursor!r}") from exc

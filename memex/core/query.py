"""Query values shared by every backend: filters and orderings (cursors are each
backend's own opaque strings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from memex.core.models import Memory, Scope, parse_time
from memex.core.pool import first_pool
from memex.core.validate import (
    validate_kind,
    validate_metadata_filter,
    validate_tags,
)
from memex.errors import ValidationError

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Filters:
    """What a read may return. ``scope`` always carries a tenant once it reaches a store.

    Visibility follows ``memex.core.visibility`` at ``as_of`` (default: now): forgotten
    memories, and those expired by then, are left out unless ``include_deleted`` is set
    (export uses it); so are superseded memories and those whose validity has not begun,
    unless ``include_superseded`` is set without ``as_of`` (with ``as_of``, only what was
    valid at that time). Times without a zone are UTC.
    ``superseded_by`` keeps only the memories that this memory superseded;
    ``expired_by`` only those whose expiry time has passed by then and that no version
    records as gone yet (``deleted_at`` unset): what ``expire`` records.
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
    expired_by: datetime | None = None

    def pool(self, limit: int, indexed: tuple[str, ...]) -> int:
        """How many hits an index should return for ``limit`` to pass these filters
        (``pool.first_pool``): narrow when something beyond the scope fields in
        ``indexed`` may drop hits (kinds, tags, metadata, time, another scope field)."""
        scope_left = any(name not in indexed for name, _ in self.scope.items())
        narrow = self.kinds or self.tags or self.metadata or self.since or self.until
        others = (
            self.expired_by is not None
            or scope_left
            or self.as_of is not None
            or self.superseded_by is not None
        )
        return first_pool(limit, narrow=bool(narrow or others))

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
        elif kinds is not None and (isinstance(kinds, Mapping) or not isinstance(kinds, Iterable)):
            raise ValidationError("kinds must be a list of kind names")
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


def metadata_matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` holds every key of a metadata filter with an equal value, as
    the stores compare in SQL: None matches a JSON null only, true and false equal 1 and
    0, numbers compare by value, text only equals the same text."""
    for key, value in wanted.items():
        if key not in metadata:
            return False
        found = metadata[key]
        if value is None or found is None:
            if found is not value:
                return False
        elif isinstance(value, str) or isinstance(found, str):
            if not (isinstance(value, str) and isinstance(found, str) and found == value):
                return False
        elif not (isinstance(found, int | float) and found == value):
            return False
    return True


def selects(filters: Filters, memory: Memory) -> bool:
    """Whether ``memory`` passes the kinds, tags and creation-time window of ``filters``
    (as a listing's query does): what an export of a selection checks of each memory its
    scope holds."""
    if filters.kinds and memory.kind not in filters.kinds:
        return False
    if filters.tags and not set(filters.tags) <= set(memory.tags):
        return False
    if filters.since is not None and memory.created_at < filters.since:
        return False
    return filters.until is None or memory.created_at < filters.until

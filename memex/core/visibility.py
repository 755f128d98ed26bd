"""What a read sees: the state of a stored memory at a time, as one pure rule.

A memory is in exactly one state at a time ``at``, the first of these that holds:

``forgotten``
    ``forget`` ran (``deleted_at`` is set and is not a recorded expiry, see
    ``is_forgotten``). Hidden from every read but ``history``, at every ``at``.
``expired``
    ``expires_at`` has come (``expires_at <= at``), whether or not ``expire`` has
    recorded it yet. Hidden from ``get``, ``list``, ``range``, ``recall`` and
    ``context`` as if forgotten at ``expires_at``; a read of an earlier ``at`` (``recall``
    with ``as_of``) still sees it.
``superseded``
    Its validity has ended (``valid_until <= at``). ``get`` returns it, ``list`` only
    with ``include_superseded``, ``recall`` only with an ``as_of`` inside its validity.
``pending``
    Its validity has not begun (``valid_from > at``). ``get`` returns it, ``list`` only
    with ``include_superseded``; ``recall`` once ``at`` reaches ``valid_from``.
``current``
    Everything else: every read returns it.

The SQL of every backend (``memex.storage.visibility_sql``) spells the same rule; a
test holds the two to agree on a table of cases. Naive datetimes are taken as UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

State = Literal["forgotten", "expired", "superseded", "pending", "current"]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def is_forgotten(deleted_at: datetime | None, expires_at: datetime | None) -> bool:
    """Whether a memory's ``deleted_at`` comes from ``forget`` rather than ``expire``.

    ``expire`` records an expiry with ``deleted_at`` at or after ``expires_at``;
    ``forget`` refuses an expired memory, so what it writes is always earlier than
    ``expires_at`` (or the memory has none). An exported record keeps both times, so
    the distinction survives export and import.
    """
    if deleted_at is None:
        return False
    return expires_at is None or _utc(deleted_at) < _utc(expires_at)


def state_at(
    at: datetime,
    *,
    deleted_at: datetime | None,
    expires_at: datetime | None,
    valid_from: datetime,
    valid_until: datetime | None,
) -> State:
    """The state of a memory with these times at ``at`` (see the module docstring)."""
    at = _utc(at)
    if is_forgotten(deleted_at, expires_at):
        return "forgotten"
    if expires_at is not None and _utc(expires_at) <= at:
        return "expired"
    if valid_until is not None and _utc(valid_until) <= at:
        return "superseded"
    if _utc(valid_from) > at:
        return "pending"
    return "current"


def is_hidden(state: State) -> bool:
    """Whether ``get`` (and every write naming the memory) treats it as not there."""
    return state in ("forgotten", "expired")


STATS_BUCKETS: dict[State, str] = {
    "forgotten": "deleted",
    "expired": "expired",
    "superseded": "superseded",
    "pending": "memories",
    "current": "memories",
}
"""Where ``stats`` counts a memory in each state (pending ones count as memories)."""


def count_states(
    rows: Iterable[tuple[str, State, int]],
) -> tuple[dict[str, int], dict[str, int]]:
    """Counts by ``stats`` bucket, and of the ``memories`` bucket by kind, from rows of
    (kind, state, how many)."""
    counts = {"memories": 0, "deleted": 0, "superseded": 0, "expired": 0}
    by_kind: dict[str, int] = {}
    for kind, state, count in rows:
        bucket = STATS_BUCKETS[state]
        counts[bucket] += count
        if bucket == "memories":
            by_kind[kind] = by_kind.get(kind, 0) + count
    return counts, by_kind


def content_bytes(rows: Iterable[tuple[str, State, int]]) -> int:
    """The content bytes of the memories that are not forgotten, from rows of (kind,
    state, bytes)."""
    return sum(int(size) for _, state, size in rows if STATS_BUCKETS[state] != "deleted")

"""The visibility rule and the filters every backend spells alike, in SQL.

``memex.core.visibility`` is the rule; this is its SQL twin, one text for every
backend (they differ only in how a parameter is marked: ``?`` or ``%s``), so that the
backends cannot drift apart. A test holds it to the rule on a table of cases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memex.core.models import to_micros
from memex.core.query import Filters


def forgotten_sql(alias: str = "m") -> str:
    """True for a forgotten row, false otherwise (never NULL): the SQL of
    ``memex.core.visibility.is_forgotten``. A ``deleted_at`` at or after ``expires_at``
    is ``expire``'s record of an expiry, not a forget."""
    return (
        f"({alias}.deleted_at IS NOT NULL AND "
        f"({alias}.expires_at IS NULL OR {alias}.deleted_at < {alias}.expires_at))"
    )


def state_sql(alias: str, mark: str) -> str:
    """A row's state at a time given three times as parameters (marked ``mark``): the
    SQL of ``memex.core.visibility.state_at`` (a NULL time makes its comparison fall
    through)."""
    return (
        f"CASE WHEN {forgotten_sql(alias)} THEN 'forgotten' "
        f"WHEN {alias}.expires_at <= {mark} THEN 'expired' "
        f"WHEN {alias}.valid_until <= {mark} THEN 'superseded' "
        f"WHEN {alias}.valid_from > {mark} THEN 'pending' ELSE 'current' END"
    )


def time_and_state_clauses(
    filters: Filters, now: datetime, alias: str, mark: str
) -> tuple[list[str], list[Any]]:
    """The conditions of ``filters`` on times, supersession and visibility (at
    ``filters.as_of`` or ``now``), and their parameters: forgotten and expired rows are
    left out unless ``include_deleted``; superseded and pending ones unless
    ``include_superseded`` without ``as_of``."""
    parts: list[str] = []
    params: list[Any] = []
    if filters.since is not None:
        parts.append(f"{alias}.created_at >= {mark}")
        params.append(to_micros(filters.since))
    if filters.until is not None:
        parts.append(f"{alias}.created_at < {mark}")
        params.append(to_micros(filters.until))
    if filters.superseded_by is not None:
        parts.append(f"{alias}.superseded_by = {mark}")
        params.append(filters.superseded_by)
    if filters.expired_by is not None:
        parts.append(
            f"{alias}.deleted_at IS NULL AND {alias}.expires_at IS NOT NULL "
            f"AND {alias}.expires_at <= {mark}"
        )
        params.append(to_micros(filters.expired_by))
    at = to_micros(filters.as_of or now)
    if not filters.include_deleted:
        parts.append(f"NOT {forgotten_sql(alias)}")
        parts.append(f"({alias}.expires_at IS NULL OR {alias}.expires_at > {mark})")
        params.append(at)
    if filters.as_of is not None or not filters.include_superseded:
        parts.append(f"{alias}.valid_from <= {mark}")
        parts.append(f"({alias}.valid_until IS NULL OR {alias}.valid_until > {mark})")
        params.extend([at, at])
    return parts, params

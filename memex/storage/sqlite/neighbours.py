"""The memories next to given ones in their thread: same scope and kind, creation order."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from memex.core.query import Filters
from memex.storage.sqlite import sql

_SAME_THREAD = (
    "n.tenant = m.tenant AND n.project IS m.project AND n.user_id IS m.user_id "
    "AND n.agent IS m.agent AND n.session IS m.session AND n.kind = m.kind"
)
_SIDES = (
    "(n.created_at, n.seq) < (m.created_at, m.seq) ORDER BY n.created_at DESC, n.seq DESC",
    "(n.created_at, n.seq) > (m.created_at, m.seq) ORDER BY n.created_at, n.seq",
)


def thread_neighbours(
    conn: sqlite3.Connection,
    filters: Filters,
    keys: Sequence[int],
    radius: int,
    now: datetime,
) -> dict[int, list[int]]:
    """Up to ``radius`` memories before and after each key that pass ``filters``.

    Two range scans of the (tenant, project, created_at) index per key, each stopping
    after ``radius`` rows of the thread: about 35 µs a side on LoCoMo. The index is
    named because the planner, without statistics, picks (tenant, kind, created_at),
    which walks every project's memories of that kind.
    """
    where, params = sql.filter_clause(filters, now, alias="n")
    queries = [
        f"SELECT n.seq FROM memories m JOIN memories n INDEXED BY memories_tenant_project "
        f"ON {_SAME_THREAD} "
        f"WHERE m.seq = ? AND {where} AND {side} LIMIT ?"
        for side in _SIDES
    ]
    out: dict[int, list[int]] = {}
    for key in keys:
        found = [row[0] for query in queries for row in conn.execute(query, [key, *params, radius])]
        if found:
            out[key] = found
    return out

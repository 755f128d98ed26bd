"""The memories next to given ones in their thread: same scope and kind, creation order."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memex.core.query import Filters
from memex.storage.sqlite import sql

_SAME_THREAD = (
    "n.tenant = m.tenant AND n.project IS m.project AND n.user_id IS m.user_id "
    "AND n.agent IS m.agent AND n.session IS m.session AND n.kind = m.kind"
)
# Each side: its number, the sign that makes its sort key ascend nearest first, its scan.
_BEFORE = "(n.created_at, n.seq) < (m.created_at, m.seq) ORDER BY n.created_at DESC, n.seq DESC"
_AFTER = "(n.created_at, n.seq) > (m.created_at, m.seq) ORDER BY n.created_at, n.seq"
_SIDES = ((0, "-", _BEFORE), (1, "", _AFTER))


def neighbour_query(
    filters: Filters, keys: Sequence[int], radius: int, now: datetime
) -> tuple[str, list[Any]]:
    """One statement finding every key's neighbours, and its parameters.

    Rows are (position of the key in ``keys``, side, sort key, sort key, the
    neighbour's key and id), in no particular order: ``thread_neighbours`` sorts the few
    it gets, without a temporary index. Each side of each key is one
    range scan of the thread index (tenant, project, kind, created_at) that stops after
    ``radius`` rows of the thread. The index is named because the planner, without
    statistics, may pick (tenant, kind, created_at), which walks every project's
    memories of that kind.
    """
    where, params = sql.filter_clause(filters, now, alias="n")
    arms = [
        f"SELECT k.i, {side}, {sign}x.created_at, {sign}x.seq, x.seq, x.id "
        "FROM k JOIN memories m ON m.seq = k.seq JOIN memories x ON x.seq IN ("
        "SELECT n.seq FROM memories n INDEXED BY memories_thread "
        f"WHERE {_SAME_THREAD} AND {where} AND {scan} LIMIT ?)"
        for side, sign, scan in _SIDES
    ]
    query = "WITH k(i, seq) AS (SELECT key, value FROM json_each(?)) " + " UNION ALL ".join(arms)
    return query, [json.dumps([int(k) for k in keys]), *params, radius, *params, radius]


def _order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[:4]


def thread_neighbours(
    conn: sqlite3.Connection,
    filters: Filters,
    keys: Sequence[int],
    radius: int,
    now: datetime,
    ids: dict[int, str] | None = None,
) -> dict[int, list[int]]:
    """Up to ``radius`` memories before and after each key that pass ``filters`` (with
    ``ids``, their ids go there).

    Nearest first on each side, before then after; keys without any are left out.
    All keys are asked in one statement, which saves the per-statement cost of two
    statements a key; each scan reads only rows of its key's thread (other users,
    agents or sessions of the same project and kind are still read and skipped).
    """
    unique = list(dict.fromkeys(keys))
    query, params = neighbour_query(filters, unique, radius, now)
    out: dict[int, list[int]] = {}
    rows = conn.execute(query, params).fetchall()
    rows.sort(key=_order)
    for row in rows:
        out.setdefault(unique[row[0]], []).append(row[4])
    if ids is not None:
        ids.update((row[4], row[5]) for row in rows)
    return out

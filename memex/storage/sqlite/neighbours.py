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
# Each side: its comparison with the key's place and the scan's direction, nearest first.
_SIDES = (("<", "DESC"), (">", ""))


def neighbour_query(
    filters: Filters, keys: Sequence[int], radius: int, now: datetime
) -> tuple[str, list[Any]]:
    """One statement finding every key's neighbours, and its parameters.

    Its one row is a JSON array of [position of the key in ``keys``, before, after],
    each side a list of [created_at, key] in no promised order (``thread_neighbours``
    sorts the few it gets). Each side of each key is one range
    scan of the thread index (tenant, project, kind, created_at) that stops after
    ``radius`` rows of the thread, and reads nothing but those rows: no row is looked
    up again to learn its place. The index is named because the planner, without
    statistics, may pick (tenant, kind, created_at), which walks every project's
    memories of that kind.
    """
    where, params = sql.filter_clause(filters, now, alias="n")
    sides = [
        "(SELECT json_group_array(json_array(s.created_at, s.seq)) FROM ("
        "SELECT n.created_at, n.seq FROM memories n INDEXED BY memories_thread "
        f"WHERE {_SAME_THREAD} AND {where} AND (n.created_at, n.seq) {op} (m.created_at, m.seq) "
        f"ORDER BY n.created_at {order}, n.seq {order} LIMIT ?) s)"
        for op, order in _SIDES
    ]
    query = (
        f"SELECT json_group_array(json_array(k.key, json({sides[0]}), json({sides[1]}))) "
        "FROM json_each(?) k JOIN memories m ON m.seq = k.value"
    )
    return query, [*params, radius, *params, radius, json.dumps([int(k) for k in keys])]


def thread_neighbours(
    conn: sqlite3.Connection,
    filters: Filters,
    keys: Sequence[int],
    radius: int,
    now: datetime,
) -> dict[int, list[int]]:
    """Up to ``radius`` memories before and after each key that pass ``filters``.

    Nearest first on each side, before then after; keys without any are left out, the
    others come in the order given. All keys are asked in one statement, which saves
    the per-statement cost of two statements a key; each scan reads only rows of its
    key's thread (other users, agents or sessions of the same project and kind are
    still read and skipped).
    """
    unique = list(dict.fromkeys(keys))
    query, params = neighbour_query(filters, unique, radius, now)
    found: dict[int, list[int]] = {}
    for i, before, after in json.loads(conn.execute(query, params).fetchone()[0]):
        before.sort(reverse=True)  # nearest first: (created_at, key) descending
        after.sort()
        if before or after:
            found[i] = [key for _, key in before] + [key for _, key in after]
    return {unique[i]: found[i] for i in sorted(found)}

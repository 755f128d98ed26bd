"""The nearest vectors that pass a recall's filters: oversample and check, or pre-filter."""

from __future__ import annotations

import sqlite3

import numpy as np

from memex.core.models import utcnow
from memex.core.pool import next_pool
from memex.core.query import Filters
from memex.core.ranking import Candidate
from memex.errors import ValidationError
from memex.storage.base import Vector
from memex.storage.sqlite import reads, sql
from memex.storage.sqlite.vectors import VectorIndex
from memex.storage.sqlite.visibility import Check


def nearest(
    conn: sqlite3.Connection,
    index: VectorIndex,
    tenant: str,
    filters: Filters,
    vector: Vector,
    limit: int,
    check: Check | None = None,
) -> list[Candidate]:
    """The ``limit`` memories nearest to ``vector`` among those ``filters`` pass (``check``
    tells which keys pass; default: SQL).

    Broad filters: the nearest few times ``limit`` rows usually pass, so check just
    those; if too few pass, try once more with a pool sized by the share that passed.
    Narrow filters: score only the rows SQL says may be returned.
    """
    if vector.shape != (index.dims,):
        raise ValidationError(
            f"query vector has shape {vector.shape}; the store's vectors have {index.dims} "
            "dimensions"
        )
    total = index.count(conn, tenant)
    pool = min(filters.pool(limit, ("tenant", "project")), total)
    project = filters.scope.project
    for _ in range(2):
        found = index.search(conn, tenant, vector, pool, project=project, refresh=False)
        keys = [c.key for c in found]
        passing = check(keys) if check is not None else reads.passing(conn, filters, keys)
        kept = [c for c in found if c.key in passing]
        if len(kept) >= limit or pool >= total:
            return kept[:limit]
        grown = next_pool(limit, len(found), len(kept), total)
        if grown is None:
            break
        pool = grown
    where, params = sql.filter_clause(filters, utcnow())
    allowed = np.fromiter(
        (r[0] for r in conn.execute(f"SELECT m.seq FROM memories m WHERE {where}", params)),
        dtype=np.int64,
    )
    return index.search(
        conn, tenant, vector, limit, allowed=allowed, project=project, refresh=False
    )

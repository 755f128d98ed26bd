"""A recall's candidates from the PostgreSQL store: both legs, the seeds' thread
neighbours and the facts ranking wants, in as few round trips as ranking allows.

Both legs go out together, each row carrying the facts ranking reads, so a recall
without neighbours is one round trip. The seeds' neighbours (with their facts) are a
second, as ranking picks the seeds from the legs. A store large enough to prune common
terms (``core.text.prune_common``) first counts the terms, with the vector leg alongside.
Each round trip is a transaction of its own: each leg's candidates pass the filters as it
finds them, the neighbours when they are read (``Store.candidates``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memex.core import text
from memex.core.models import utcnow
from memex.core.query import Filters
from memex.storage.base import CandidateQuery, Candidates, Vector
from memex.storage.postgres import lexical, sql

if TYPE_CHECKING:
    from memex.core.ranking import Facts
    from memex.storage.postgres.connection import Database
    from memex.storage.postgres.keys import ReadKeys

Statement = tuple[str, list[Any]]


def gather(
    db: Database,
    filters: Filters,
    query: CandidateQuery,
    *,
    approximate: int | None,
    size: int,
    keys: ReadKeys,
    sealed: Sequence[int] | None = None,
) -> Candidates:
    """Everything a recall asks of the store (``Store.candidates``). ``approximate``: the
    dimensions of the HNSW index to search, or None for an exact scan; ``keys`` open an
    encrypted tenant's content; ``sealed``: as ``sql.filter_clause`` takes it."""
    from memex.core.ranking import Candidate

    tenant = str(filters.scope.tenant)
    where, params = sql.filter_clause(filters, utcnow(), sealed=sealed)
    terms = list(query.terms) if query.limit > 0 else []
    threshold = text.common_threshold(size)
    prune = bool(terms) and threshold is not None and len(terms) > 1
    first: list[Statement] = []
    if prune:
        assert threshold is not None
        first.append(lexical.frequencies(tenant, terms, threshold))
    elif terms:
        first.append(lexical.search(tenant, where, params, terms, query.limit))
    settings: dict[str, str] = {}
    with_vector = query.vector is not None and query.limit > 0
    if query.vector is not None and with_vector:
        first.append(nearest(where, params, query.vector, query.limit, approximate))
        if approximate is not None:
            settings = {
                "hnsw.iterative_scan": "relaxed_order",
                "hnsw.ef_search": str(max(40, min(1000, 2 * query.limit))),
            }
    results = db.run(tenant, first, settings=settings) if first else []
    lex_rows: list[tuple[Any, ...]] = []
    vec_rows: list[tuple[Any, ...]] = results[-1] if with_vector else []
    if prune and results:
        counts = {str(term): int(n) for term, n in results[0]}
        kept = text.prune_common(terms, size, lambda term, _: counts[term])
        [lex_rows] = db.run(tenant, [lexical.search(tenant, where, params, kept, query.limit)])
    elif terms:
        lex_rows = results[0]
    lex = [Candidate(int(row[0]), float(row[1])) for row in lex_rows]
    vec = [Candidate(int(row[0]), float(row[1])) for row in vec_rows]
    ids: dict[int, str] = {}
    facts: dict[int, Facts] = {}
    for row in (*lex_rows, *vec_rows):
        key = int(row[0])
        ids[key] = str(row[2])
        facts[key] = _facts(row, tenant, keys)
    neighbours: dict[int, list[int]] = {}
    if not ids:
        return Candidates(lex, vec, neighbours, ids, {})
    if query.radius > 0 and query.seeds is not None:
        seeds = list(query.seeds(lex, vec))
        if seeds:
            neighbours = thread_neighbours(
                db, filters, seeds, query.radius, ids, facts, keys, sealed
            )
    if query.wanted is None:
        return Candidates(lex, vec, neighbours, ids, facts)
    wanted = set(query.wanted(lex, vec, neighbours))
    return Candidates(lex, vec, neighbours, ids, {k: f for k, f in facts.items() if k in wanted})


def _facts(row: Sequence[Any], tenant: str, keys: ReadKeys) -> Facts:
    """A candidate row's facts (the row: key, score or side, id, ``lexical.FACTS``)."""
    from memex.core.ranking import Facts

    mid, project, user, agent, session, kind, created, importance, content, version, sealed = row[
        2:
    ]
    if sealed is not None:
        content = keys.content(tenant, mid, version, sealed, content)
    return Facts((project, user, agent, session, kind), created, importance, content)


def nearest(
    where: str, params: list[Any], vector: Vector, limit: int, approximate: int | None
) -> Statement:
    """A statement of the ``limit`` rows passing ``where`` nearest to ``vector`` by inner
    product: key, score, id and facts, best first. Exact (a scan of the filtered rows)
    unless ``approximate`` names the dimensions of the HNSW index, which is then walked
    until enough rows pass (pgvector's iterative scan)."""
    import numpy as np

    q = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    if approximate is None:
        return (
            f"SELECT m.seq, -(m.embedding <#> %s) AS score, m.id, {lexical.FACTS} "
            f"FROM memories m WHERE {where} AND m.embedding IS NOT NULL "
            "ORDER BY m.embedding <#> %s, m.seq LIMIT %s",
            [q, *params, q, limit],
        )
    dims = int(approximate)
    column = f"(m.embedding::halfvec({dims}))"  # the HNSW index's expression
    return (
        f"SELECT * FROM (SELECT m.seq, -(m.embedding <#> %s::vector({dims})) AS score, m.id, "
        f"{lexical.FACTS} FROM memories m WHERE {where} AND m.embedding IS NOT NULL "
        f"ORDER BY {column} <#> %s::halfvec({dims}) LIMIT %s) x ORDER BY score DESC, seq",
        [q, *params, q, limit],
    )


_SAME_THREAD = "n.tenant = m.tenant AND n.thread = m.thread"
"""The thread of ``m`` (the generated column ``thread`` spells out its scope and kind)."""
_NEIGHBOUR = f"n.seq, n.id, {lexical.FACTS.replace('m.', 'n.')}"


def thread_neighbours(
    db: Database,
    filters: Filters,
    keys: Sequence[int],
    radius: int,
    ids: dict[int, str],
    facts: dict[int, Facts],
    opener: ReadKeys,
    sealed: Sequence[int] | None = None,
) -> dict[int, list[int]]:
    """Up to ``radius`` memories before and after each key, in its thread, that pass
    ``filters``: nearest first on each side, before then after (their ids go to ``ids``,
    their facts to ``facts``, an encrypted tenant's content opened with ``opener``). Each
    side of each key is one range scan of the thread index."""
    unique = list(dict.fromkeys(int(k) for k in keys))
    where, params = sql.filter_clause(filters, utcnow(), alias="n", sealed=sealed)
    [rows] = db.run(
        filters.scope.tenant,
        [
            (
                "SELECT k.i, x.* FROM unnest(%s::bigint[]) WITH ORDINALITY AS k(seq, i) "
                "JOIN memories m ON m.tenant = %s AND m.seq = k.seq CROSS JOIN LATERAL ("
                f"(SELECT 0 AS side, {_NEIGHBOUR} FROM memories n "
                f"WHERE {_SAME_THREAD} AND {where} "
                "AND (n.created_at, n.seq) < (m.created_at, m.seq) "
                "ORDER BY n.created_at DESC, n.seq DESC LIMIT %s) UNION ALL "
                f"(SELECT 1, {_NEIGHBOUR} FROM memories n WHERE {_SAME_THREAD} AND {where} "
                "AND (n.created_at, n.seq) > (m.created_at, m.seq) "
                "ORDER BY n.created_at, n.seq LIMIT %s)) x",
                [unique, filters.scope.tenant, *params, radius, *params, radius],
            )
        ],
    )

    def nearest_first(row: tuple[Any, ...]) -> tuple[Any, ...]:
        i, side, seq, created = row[0], row[1], row[2], row[9]
        sign = -1 if side == 0 else 1
        return (i, side, sign * created, sign * seq)

    out: dict[int, list[int]] = {}
    for row in sorted(rows, key=nearest_first):
        seq = int(row[2])
        out.setdefault(unique[row[0] - 1], []).append(seq)
        ids[seq] = str(row[3])
        facts[seq] = _facts(row[1:], str(filters.scope.tenant), opener)
    return out

"""A recall's candidates from the PostgreSQL store: both legs, the seeds' thread
neighbours and the facts ranking wants, read in one transaction (one snapshot)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memex.core.models import utcnow
from memex.core.query import Filters
from memex.storage.base import CandidateQuery, Candidates, Vector
from memex.storage.postgres import lexical, sql

if TYPE_CHECKING:
    import psycopg

    from memex.core.ranking import Candidate, Facts

    Conn = psycopg.Connection[Any]


def gather(
    conn: Conn,
    filters: Filters,
    query: CandidateQuery,
    *,
    approximate: int | None,
    size: int,
) -> Candidates:
    """Everything a recall asks of the store (``Store.candidates``), inside the caller's
    transaction. ``approximate``: the dimensions of the HNSW index to search, or None for
    an exact scan."""
    from memex.core.ranking import Candidate

    ids: dict[int, str] = {}
    now = utcnow()
    where, params = sql.filter_clause(filters, now)
    lex: list[Candidate] = []
    if query.terms and query.limit > 0:
        found = lexical.search(conn, where, params, query.terms, query.limit, size)
        lex = [Candidate(key, score) for key, score, _ in found]
        ids.update((key, mid) for key, _, mid in found)
    vec: list[Candidate] = []
    if query.vector is not None and query.limit > 0:
        rows = nearest(conn, where, params, query.vector, query.limit, approximate)
        vec = [Candidate(key, score) for key, score, _ in rows]
        ids.update((key, mid) for key, _, mid in rows)
    neighbours: dict[int, list[int]] = {}
    facts: dict[int, Facts] = {}
    everything = [c.key for c in (*lex, *vec)]
    if not everything:
        return Candidates(lex, vec, neighbours, ids, facts)
    if query.radius > 0 and query.seeds is not None:
        seeds = list(query.seeds(lex, vec))
        if seeds:
            neighbours = thread_neighbours(conn, filters, seeds, query.radius, ids)
    if query.wanted is None:
        wanted = [*everything, *(key for around in neighbours.values() for key in around)]
    else:
        wanted = list(query.wanted(lex, vec, neighbours))
    if wanted:
        read_facts(conn, where, params, wanted, facts)
    return Candidates(lex, vec, neighbours, ids, facts)


def nearest(
    conn: Conn,
    where: str,
    params: list[Any],
    vector: Vector,
    limit: int,
    approximate: int | None,
) -> list[tuple[int, float, str]]:
    """The ``limit`` memories passing ``where`` nearest to ``vector`` by inner product:
    (key, score, id). Exact (a scan of the filtered rows) unless ``approximate`` names
    the dimensions of the HNSW index, which is then walked until enough rows pass."""
    import numpy as np

    q = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    if approximate is None:
        return [
            (int(k), float(s), str(i))
            for k, s, i in conn.execute(
                "SELECT m.seq, -(m.embedding <#> %s) AS score, m.id FROM memories m "
                f"WHERE {where} AND m.embedding IS NOT NULL "
                "ORDER BY m.embedding <#> %s, m.seq LIMIT %s",
                [q, *params, q, limit],
            )
        ]
    dims = int(approximate)
    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    conn.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, 2 * limit))}")
    rows = conn.execute(
        "SELECT seq, score, id FROM (SELECT m.seq, m.id, "
        f"-((m.embedding::vector({dims})) <#> %s::vector({dims})) AS score FROM memories m "
        f"WHERE {where} AND m.embedding IS NOT NULL "
        f"ORDER BY (m.embedding::vector({dims})) <#> %s::vector({dims}) LIMIT %s) x "
        "ORDER BY score DESC, seq",
        [q, *params, q, limit],
    ).fetchall()
    return [(int(k), float(s), str(i)) for k, s, i in rows]


_SAME_THREAD = (
    "n.tenant = m.tenant AND coalesce(n.project, '') = coalesce(m.project, '') "
    "AND n.project IS NOT DISTINCT FROM m.project AND n.user_id IS NOT DISTINCT FROM m.user_id "
    "AND n.agent IS NOT DISTINCT FROM m.agent AND n.session IS NOT DISTINCT FROM m.session "
    "AND n.kind = m.kind"
)


def thread_neighbours(
    conn: Conn, filters: Filters, keys: Sequence[int], radius: int, ids: dict[int, str]
) -> dict[int, list[int]]:
    """Up to ``radius`` memories before and after each key, in its thread, that pass
    ``filters``: nearest first on each side, before then after (their ids go to ``ids``).
    Each side of each key is one range scan of the thread index."""
    unique = list(dict.fromkeys(int(k) for k in keys))
    where, params = sql.filter_clause(filters, utcnow(), alias="n")
    rows = conn.execute(
        "SELECT k.i, x.side, x.created_at, x.seq, x.id "
        "FROM unnest(%s::bigint[]) WITH ORDINALITY AS k(seq, i) "
        "JOIN memories m ON m.tenant = %s AND m.seq = k.seq CROSS JOIN LATERAL ("
        "(SELECT 0 AS side, n.created_at, n.seq, n.id FROM memories n "
        f"WHERE {_SAME_THREAD} AND {where} AND (n.created_at, n.seq) < (m.created_at, m.seq) "
        "ORDER BY n.created_at DESC, n.seq DESC LIMIT %s) UNION ALL "
        "(SELECT 1, n.created_at, n.seq, n.id FROM memories n "
        f"WHERE {_SAME_THREAD} AND {where} AND (n.created_at, n.seq) > (m.created_at, m.seq) "
        "ORDER BY n.created_at, n.seq LIMIT %s)) x",
        [unique, filters.scope.tenant, *params, radius, *params, radius],
    ).fetchall()

    def nearest_first(row: tuple[Any, ...]) -> tuple[Any, ...]:
        i, side, created, seq, _ = row
        sign = -1 if side == 0 else 1
        return (i, side, sign * created, sign * seq)

    out: dict[int, list[int]] = {}
    for i, _, _, seq, mid in sorted(rows, key=nearest_first):
        out.setdefault(unique[i - 1], []).append(int(seq))
        ids[int(seq)] = str(mid)
    return out


def read_facts(
    conn: Conn, where: str, params: list[Any], keys: Sequence[int], into: dict[int, Facts]
) -> None:
    """The facts (thread, time, importance, text) of the keys that pass ``where``."""
    from memex.core.ranking import Facts

    for seq, project, user, agent, session, kind, created, importance, content in conn.execute(
        "SELECT m.seq, m.project, m.user_id, m.agent, m.session, m.kind, m.created_at, "
        f"m.importance, m.content FROM memories m WHERE m.seq = ANY(%s) AND {where}",
        [list(dict.fromkeys(int(k) for k in keys)), *params],
    ):
        into[int(seq)] = Facts((project, user, agent, session, kind), created, importance, content)

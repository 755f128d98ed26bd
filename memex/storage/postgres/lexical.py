"""The full-text leg of recall on PostgreSQL: a disjunctive tsquery over the stored
``lexemes`` (a GIN index), ranked by cover density (``ts_rank_cd``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memex.core import text

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[Any]

CONFIG = "memex_english"
"""The text search configuration of the ``lexemes`` column (English stems, no stop words)."""


def tsquery(terms: Sequence[str]) -> tuple[str, list[str]]:
    """SQL for a tsquery matching any of ``terms``, and its parameters."""
    one = f"plainto_tsquery('{CONFIG}', %s)"
    return "(" + " || ".join([one] * len(terms)) + ")", list(terms)


def prune(conn: Conn, where: str, params: list[Any], terms: Sequence[str], size: int) -> list[str]:
    """The terms worth a query in a store of ``size`` (``text.prune_common``), each counted
    among the rows ``where`` selects only up to the threshold of a common term."""
    match, _ = tsquery(["x"])

    def frequency(term: str, threshold: int) -> int:
        row = conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM memories m WHERE m.lexemes @@ {match} "
            f"AND {where} LIMIT %s) x",
            [term, *params, threshold],
        ).fetchone()
        return int(row[0]) if row else 0

    return text.prune_common(terms, size, frequency)


def search(
    conn: Conn, where: str, params: list[Any], terms: Sequence[str], limit: int, size: int
) -> list[tuple[int, float, str]]:
    """The ``limit`` best memories passing ``where`` for any of ``terms``: (key, score, id)."""
    kept = prune(conn, where, params, terms, size)
    if not kept:
        return []
    match, words = tsquery(kept)
    rows = conn.execute(
        f"SELECT m.seq, ts_rank_cd(m.lexemes, q.query) AS score, m.id "
        f"FROM memories m, (SELECT {match} AS query) q "
        f"WHERE m.lexemes @@ q.query AND {where} ORDER BY score DESC, m.seq LIMIT %s",
        [*words, *params, limit],
    ).fetchall()
    return [(int(k), float(s), str(i)) for k, s, i in rows]

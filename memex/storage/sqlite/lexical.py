"""The full-text leg of recall: a disjunctive FTS5 query ranked by BM25."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memex.core import text
from memex.core.models import utcnow
from memex.core.query import Filters
from memex.storage.sqlite import sql

if TYPE_CHECKING:
    from memex.core.ranking import Candidate


def quote(term: str) -> str:
    """A term as an FTS5 string literal."""
    return '"' + term.replace('"', '""') + '"'


def search(
    conn: sqlite3.Connection,
    filters: Filters,
    terms: Sequence[str],
    limit: int,
    size: int,
    *,
    after: int | None = None,
    among: Sequence[int] | None = None,
) -> list[Candidate]:
    """The ``limit`` best memories for any of ``terms``, by BM25, among those ``filters`` pass.

    ``after`` and ``among`` restrict the search to keys above a key or to listed keys
    (FTS5 then seeks by rowid instead of walking every posting).
    """
    if not terms:
        return []
    match = " OR ".join(quote(t) for t in prune_common(conn, terms, size))
    where, params = sql.filter_clause(filters, utcnow())
    if after is not None:
        where += " AND memories_fts.rowid > ?"
        params.append(after)
    if among is not None:
        if not among:
            return []
        where += f" AND memories_fts.rowid IN ({','.join('?' * len(among))})"
        params.extend(among)
    query = (
        "SELECT m.seq, -bm25(memories_fts) AS score FROM memories_fts "
        "JOIN memories m ON m.seq = memories_fts.rowid "
        f"WHERE memories_fts MATCH ? AND {where} ORDER BY score DESC, m.seq LIMIT ?"
    )
    rows = conn.execute(query, [match, *params, limit]).fetchall()
    from memex.core.ranking import Candidate

    return list(map(Candidate._make, rows))  # (int, float) rows from SQLite


def prune_common(conn: sqlite3.Connection, terms: Sequence[str], size: int) -> list[str]:
    """The terms worth a query in a store of ``size`` (the rule is ``text.prune_common``),
    each counted in the FTS5 index only up to the threshold of a common term."""
    query = "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)"

    def frequency(term: str, threshold: int) -> int:
        return int(conn.execute(query, (quote(term), threshold)).fetchone()[0])

    return text.prune_common(terms, size, frequency)

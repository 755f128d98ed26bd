"""The full-text leg of recall: a disjunctive FTS5 query ranked by BM25."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memex.core.models import utcnow
from memex.core.query import Filters
from memex.storage.sqlite import sql

if TYPE_CHECKING:
    from memex.core.ranking import Candidate

PRUNE_MIN_MEMORIES = 20_000
PRUNE_MIN_POSTINGS = 2_000
PRUNE_SHARE = 0.02


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

    return [Candidate(int(seq), float(score)) for seq, score in rows]


def prune_common(conn: sqlite3.Connection, terms: Sequence[str], size: int) -> Sequence[str]:
    """Drop terms that occur in a large share of a large store.

    A disjunctive full-text query costs in proportion to the postings it walks, and a
    term found in a few percent of memories adds little to BM25 (its idf is near 0)
    but can cost hundreds of milliseconds at a million memories. Small stores keep
    every term. Counting stops at the threshold, so the check itself stays cheap.
    """
    if size < PRUNE_MIN_MEMORIES or len(terms) < 2:
        return terms
    limit = max(PRUNE_MIN_POSTINGS, int(size * PRUNE_SHARE))
    query = "SELECT count(*) FROM (SELECT 1 FROM memories_fts WHERE memories_fts MATCH ? LIMIT ?)"
    common = {t for t in terms if conn.execute(query, (quote(t), limit)).fetchone()[0] >= limit}
    return [t for t in terms if t not in common] or terms

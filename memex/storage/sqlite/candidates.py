"""A recall's candidates with what ranking needs about each: facts and thread neighbours."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.models import utcnow
from memex.core.query import Filters
from memex.storage.base import CandidateQuery, Candidates
from memex.storage.sqlite import reads, sql
from memex.storage.sqlite.neighbours import thread_neighbours

if TYPE_CHECKING:
    from memex.core.ranking import Candidate, Facts

_THREAD_COLUMNS = (*sql.SCOPE_COLUMNS.values(), "kind")
_THREAD = ", ".join(f"m.{c}" for c in _THREAD_COLUMNS)
_FACTS = f"m.seq, m.id, {_THREAD}, m.created_at, m.importance, m.content"
_END = 2 + len(_THREAD_COLUMNS)  # seq, id, the thread's columns, created_at, importance, content


def gather(
    conn: sqlite3.Connection,
    filters: Filters,
    query: CandidateQuery,
    lexical: list[Candidate],
    vector: list[Candidate],
) -> Candidates:
    """The legs' candidates completed with their facts and the seeds' neighbours.

    The facts and the neighbours are read in one read transaction, so they agree; a leg
    candidate gone since its leg ran has no facts, and ranking leaves it out.
    """
    now = utcnow()
    where, params = sql.filter_clause(filters, now)
    with reads.read_transaction(conn):
        facts = _facts(conn, (c.key for c in (*lexical, *vector)), where, params)
        neighbours: dict[int, list[int]] = {}
        if query.radius > 0 and query.seeds is not None and facts:
            seeds = [key for key in query.seeds(lexical, vector) if key in facts]
            if seeds:
                neighbours = thread_neighbours(conn, filters, seeds, query.radius, now)
                around = {key for keys in neighbours.values() for key in keys}
                facts.update(_facts(conn, around - facts.keys(), where, params))
    return Candidates(lexical, vector, neighbours, facts)


def _facts(
    conn: sqlite3.Connection, keys: Iterable[int], where: str, params: list[Any]
) -> dict[int, Facts]:
    unique: Sequence[int] = list(dict.fromkeys(keys))
    if not unique:
        return {}
    from memex.core.ranking import Facts

    end = _END
    return {
        r[0]: Facts(r[1], r[2:end], r[end], r[end + 1], r[end + 2])
        for r in reads.by_keys(conn, _FACTS, unique, where, params)
    }

"""A recall's candidates with what ranking needs about each: facts and thread neighbours."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

from memex.core.models import utcnow
from memex.core.query import Filters
from memex.storage.base import CandidateQuery, Candidates
from memex.storage.sqlite import reads, sql
from memex.storage.sqlite.neighbours import thread_neighbours
from memex.storage.sqlite.rows import ContentsOpener
from memex.storage.sqlite.visibility import Visibility

if TYPE_CHECKING:
    from memex.core.ranking import Candidate, Facts


def gather(
    conn: sqlite3.Connection,
    filters: Filters,
    query: CandidateQuery,
    lexical: list[Candidate],
    vector: list[Candidate],
    ids: dict[int, str],
    opener: ContentsOpener,
    seen: Visibility | None = None,
) -> Candidates:
    """The legs' candidates completed with the seeds' neighbours, and the facts and ids
    of the keys ranking wants (``ids`` holds those the legs read already; sealed text
    opened with ``opener``). The neighbours come from what ``seen`` keeps in memory
    where it can, else from SQL.

    Neighbours and facts are read in one read transaction, so they agree. A wanted key
    purged or changed since its leg ran, so that the filters drop it, gets neither.
    """
    neighbours: dict[int, list[int]] = {}
    facts: dict[int, Facts] = {}
    if not lexical and not vector:
        return Candidates(lexical, vector, neighbours, ids, facts)
    spread = query.radius > 0 and query.seeds is not None
    with reads.read_transaction(conn) if spread else contextlib.nullcontext():
        if spread and query.seeds is not None:
            seeds = list(query.seeds(lexical, vector))
            if seeds:
                found = (
                    seen.neighbours(conn, filters, seeds, query.radius)
                    if seen is not None
                    else None
                )
                neighbours = (
                    found
                    if found is not None
                    else thread_neighbours(conn, filters, seeds, query.radius, utcnow())
                )
        if query.wanted is None:
            wanted: Iterable[int] = [
                *(c.key for c in (*lexical, *vector)),
                *(key for around in neighbours.values() for key in around),
            ]
        else:
            wanted = query.wanted(lexical, vector, neighbours)
        _read_facts(conn, filters, wanted, facts, ids, opener)
    return Candidates(lexical, vector, neighbours, ids, facts)


def _read_facts(
    conn: sqlite3.Connection,
    filters: Filters,
    keys: Iterable[int],
    into: dict[int, Facts],
    ids: dict[int, str],
    opener: ContentsOpener,
) -> None:
    unique = list(dict.fromkeys(keys))
    if unique:
        where, params = sql.filter_clause(filters, utcnow())
        found = reads.by_keys(conn, reads.FACTS_COLUMNS, unique, where, params)
        reads.facts_of(found, into, ids, str(filters.scope.tenant), opener)

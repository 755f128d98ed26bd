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

if TYPE_CHECKING:
    from memex.core.ranking import Candidate, Facts


def gather(
    conn: sqlite3.Connection,
    filters: Filters,
    query: CandidateQuery,
    lexical: list[Candidate],
    vector: list[Candidate],
    ids: dict[int, str],
) -> Candidates:
    """The legs' candidates completed with their ids (``ids`` holds those the legs read
    already), the seeds' neighbours and the facts ranking wants.

    Neighbours and facts are read in one read transaction, so they agree. A candidate
    purged since its leg ran is left out; one changed otherwise gets no facts.
    """
    missing = [c.key for c in (*lexical, *vector) if c.key not in ids]
    if missing:  # candidates no filter check saw: the full-text lag, a pre-filtered search
        reads.ids_of(conn, missing, ids)
        if any(key not in ids for key in missing):  # purged meanwhile
            lexical = [c for c in lexical if c.key in ids]
            vector = [c for c in vector if c.key in ids]
    everything = [c.key for c in (*lexical, *vector)]
    neighbours: dict[int, list[int]] = {}
    facts: dict[int, Facts] = {}
    if not everything:
        return Candidates(lexical, vector, neighbours, ids, facts)
    spread = query.radius > 0 and query.seeds is not None
    with reads.read_transaction(conn) if spread else contextlib.nullcontext():
        if spread and query.seeds is not None:
            seeds = list(query.seeds(lexical, vector))
            if seeds:
                neighbours = thread_neighbours(conn, filters, seeds, query.radius, utcnow(), ids)
        if query.wanted is None:
            wanted = [*everything, *(key for around in neighbours.values() for key in around)]
        else:
            wanted = list(query.wanted(lexical, vector, neighbours))
        if wanted:
            _read_facts(conn, filters, wanted, facts)
    return Candidates(lexical, vector, neighbours, ids, facts)


def _read_facts(
    conn: sqlite3.Connection, filters: Filters, keys: Iterable[int], into: dict[int, Facts]
) -> None:
    where, params = sql.filter_clause(filters, utcnow())
    unique = list(dict.fromkeys(keys))
    reads.facts_of(reads.by_keys(conn, reads.FACTS_COLUMNS, unique, where, params), into)

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
    already), the facts ranking wants and the seeds' neighbours with theirs.

    Facts and neighbours are read in one read transaction, so they agree. A leg
    candidate gone since its leg ran gets no facts.
    """
    now = utcnow()
    everything = [c.key for c in (*lexical, *vector)]
    missing = [key for key in everything if key not in ids]
    if missing:  # candidates no filter check saw: the full-text lag, a pre-filtered search
        reads.ids_of(conn, missing, ids)
    facts: dict[int, Facts] = {}
    wanted = everything if query.wanted is None else query.wanted(lexical, vector)
    spread = query.radius > 0 and query.seeds is not None and bool(everything)
    # Facts and neighbours (of keys with facts) must agree: one read transaction.
    with reads.read_transaction(conn) if spread else contextlib.nullcontext():
        if wanted:
            _read_facts(conn, filters, wanted, facts)
        neighbours: dict[int, list[int]] = {}
        if spread and query.seeds is not None:
            seeds = [key for key in query.seeds(lexical, vector) if key in facts]
            if seeds:
                neighbours = thread_neighbours(conn, filters, seeds, query.radius, now, facts, ids)
    known = {key: ids[key] for key in everything if key in ids}
    known.update((key, ids[key]) for around in neighbours.values() for key in around)
    return Candidates(lexical, vector, neighbours, known, facts)


def _read_facts(
    conn: sqlite3.Connection, filters: Filters, keys: Iterable[int], into: dict[int, Facts]
) -> None:
    where, params = sql.filter_clause(filters, utcnow())
    unique = list(dict.fromkeys(keys))
    reads.facts_of(reads.by_keys(conn, reads.FACTS_COLUMNS, unique, where, params), into)

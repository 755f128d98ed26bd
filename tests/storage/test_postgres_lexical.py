"""The PostgreSQL lexical index: postings and totals follow every write, and the lexical
leg finds postings through their index as the application role (row-level security)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from test_store_contract import MODEL, memory, vec  # the contract suite's helpers

from memex import Settings
from memex.core.models import Scope, utcnow
from memex.core.query import Filters
from memex.storage.base import CandidateQuery, Store, WriteBatch
from memex.storage.open import open_store
from memex.storage.postgres import lexical, sql


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Store]:
    store = open_store(postgres_url, Settings())
    yield store
    store.close()


def all_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('memex.all_tenants', 'on', true)")
        return conn.execute(query).fetchall()


def assert_index_matches_memories(url: str) -> None:
    """The postings and totals are exactly what the stored memories make."""
    expected = all_rows(
        url,
        "SELECT m.tenant, l.lexeme, m.seq, cardinality(l.positions), "
        "sum(cardinality(l.positions)) OVER (PARTITION BY m.seq) FROM memories m "
        "CROSS JOIN LATERAL unnest(to_tsvector('memex_english', m.content)) l",
    )
    stored = all_rows(url, "SELECT tenant, lexeme, seq, tf, length FROM memory_terms")
    assert sorted(stored) == sorted(expected)
    totals = all_rows(
        url,
        "SELECT m.tenant, coalesce(m.project, ''), count(*), coalesce(sum((SELECT "
        "sum(cardinality(l.positions)) FROM unnest(to_tsvector('memex_english', m.content)) l"
        ")), 0) FROM memories m GROUP BY 1, 2",
    )
    kept = all_rows(
        url,
        "SELECT tenant, project, documents, length FROM memory_term_totals "
        "WHERE documents <> 0 OR length <> 0",
    )
    assert sorted(kept) == sorted(totals)


def test_postings_follow_inserts_updates_forgets_and_purges(pg: Store, postgres_url: str) -> None:
    a, b = Scope(tenant="a"), Scope(tenant="b")
    first = memory("the deploy runs on Mondays, deploys deploy", scope=Scope("a", "p"))
    second = memory("billing happens monthly", tenant="a")
    other = memory("the deploy in tenant b", scope=Scope("b", "p"))
    pg.write(a, WriteBatch(inserts=[(first, vec(1, 0, 0, 0)), (second, vec(0, 1, 0, 0))]), MODEL)
    pg.write(b, WriteBatch(inserts=[(other, vec(0, 0, 1, 0))]), MODEL)
    assert_index_matches_memories(postgres_url)

    changed = first.with_changes(content="the release ships on Fridays", version=2)
    pg.write(a, WriteBatch(updates=[(changed, None, 1)]), MODEL)
    assert_index_matches_memories(postgres_url)
    moved = second.with_changes(scope=Scope("a", "q"), version=2)
    pg.write(a, WriteBatch(updates=[(moved, None, 1)]), MODEL)
    assert_index_matches_memories(postgres_url)
    forgotten = moved.with_changes(deleted_at=utcnow(), version=3)
    pg.write(a, WriteBatch(updates=[(forgotten, None, 2)]), MODEL)
    assert_index_matches_memories(postgres_url)

    pg.write(a, WriteBatch(purges=[(changed.id, 2)]), MODEL)
    assert_index_matches_memories(postgres_url)
    assert not all_rows(postgres_url, "SELECT 1 FROM memory_terms WHERE lexeme = 'releas'")

    found = pg.candidates(Filters(scope=a), CandidateQuery(terms=("deploy",)))
    assert found.lexical == []  # tenant b's deploy stays in tenant b
    found = pg.candidates(Filters(scope=b), CandidateQuery(terms=("deploy", "nothing")))
    assert [found.ids[c.key] for c in found.lexical] == [other.id]


def test_a_failed_batch_leaves_the_postings_as_they_were(pg: Store, postgres_url: str) -> None:
    a = Scope(tenant="a")
    first = memory("alpha beta gamma", tenant="a")
    pg.write(a, WriteBatch(inserts=[(first, vec(1, 0, 0, 0))]), MODEL)
    stale = first.with_changes(content="delta", version=3)
    with pytest.raises(Exception, match="changed or vanished"):
        pg.write(
            a,
            WriteBatch(
                inserts=[(memory("epsilon", tenant="a"), vec(0, 1, 0, 0))],
                updates=[(stale, None, 2)],
            ),
            MODEL,
        )
    assert_index_matches_memories(postgres_url)


def test_the_lexical_leg_reads_postings_through_their_index(pg: Store, postgres_url: str) -> None:
    items = [
        (memory(f"note {i} about topic{i % 7}", tenant="a"), vec(1, 0, 0, 0)) for i in range(50)
    ]
    pg.write(Scope(tenant="a"), WriteBatch(inserts=items), MODEL)
    where, params = sql.filter_clause(Filters(scope=Scope(tenant="a")), utcnow())
    query, args = lexical.search("a", where, params, ["topic3", "note"], 10)
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('memex.tenant', 'a', true)")
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, args))
    assert "memory_terms_pkey on memory_terms" in plan
    assert "Index Cond: ((tenant = 'a'::text) AND (lexeme = ANY" in plan

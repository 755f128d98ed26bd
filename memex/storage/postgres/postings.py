"""The lexical index of the PostgreSQL store, kept by the write path: postings
(``memory_terms``) and per-project totals (``memory_term_totals``).

A memory's postings are the lexemes of its content as ``to_tsvector`` makes them with
the store's configuration (English stems, no stop words), each with how often it
occurs and the memory's length (lexeme occurrences). They are added when a memory is
written, replaced when its content or project changes and removed when it is purged,
in the transaction of the write; the totals move with them, added once per batch in key
order (as the change counters are), so two writers never wait for each other in a
circle. An encrypted tenant's content is stored sealed: its postings are made from the
text the write passes along (the server analyses it and keeps only the postings, which
are not encrypted: docs/security.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

CONFIG = "memex_english"
"""The text search configuration of the postings (English stems, no stop words)."""

_LEXEMES = (
    "WITH d AS (SELECT m.tenant, m.seq, l.lexeme, cardinality(l.positions) AS tf "
    f"FROM memories m CROSS JOIN LATERAL unnest(to_tsvector('{CONFIG}', m.content)) l "
    "WHERE m.tenant = %s AND m.id = ANY(%s)), "
)
_SEALED_LEXEMES = (
    "WITH d AS (SELECT m.tenant, m.seq, l.lexeme, cardinality(l.positions) AS tf "
    "FROM unnest(%s::text[], %s::text[]) AS x(id, body) "
    "JOIN memories m ON m.tenant = %s AND m.id = x.id "
    f"CROSS JOIN LATERAL unnest(to_tsvector('{CONFIG}', x.body)) l), "
)
"""A sealed memory's lexemes, from its text given with the write (never stored)."""
_ADD = (
    "lengths AS (SELECT seq, sum(tf)::integer AS length FROM d GROUP BY seq), "
    "added AS (INSERT INTO memory_terms (tenant, lexeme, seq, tf, length) "
    "SELECT d.tenant, d.lexeme, d.seq, d.tf, n.length FROM d JOIN lengths n USING (seq)) "
    "SELECT coalesce(m.project, ''), count(*), coalesce(sum(n.length), 0) "
    "FROM memories m LEFT JOIN lengths n ON n.seq = m.seq "
    "WHERE m.tenant = %s AND m.id = ANY(%s) GROUP BY 1"
)
_REMOVE = (
    "WITH gone AS (DELETE FROM memory_terms t USING memories m "
    "WHERE m.tenant = %s AND m.id = ANY(%s) AND t.tenant = m.tenant AND t.seq = m.seq "
    "RETURNING t.seq, t.length), "
    "lengths AS (SELECT DISTINCT seq, length FROM gone) "
    "SELECT coalesce(m.project, ''), count(*), coalesce(sum(n.length), 0) "
    "FROM memories m LEFT JOIN lengths n ON n.seq = m.seq "
    "WHERE m.tenant = %s AND m.id = ANY(%s) GROUP BY 1"
)

_ADD_PLAIN = _LEXEMES + _ADD
_ADD_SEALED = _SEALED_LEXEMES + _ADD


class Totals:
    """How a batch moves the totals: (tenant, project) -> [memories, length]."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], list[int]] = {}

    def _move(self, tenant: str, rows: Sequence[tuple[Any, ...]], sign: int) -> None:
        for project, documents, length in rows:
            entry = self.by_key.setdefault((tenant, str(project)), [0, 0])
            entry[0] += sign * int(documents)
            entry[1] += sign * int(length)

    def add(
        self,
        conn: psycopg.Connection[Any],
        tenant: str,
        ids: Sequence[str],
        texts: Sequence[str] | None = None,
    ) -> None:
        """Write the postings of these memories (as they are stored now), or, for sealed
        memories, of their ``texts``."""
        if not ids:
            return
        if texts is None:
            query, params = _ADD_PLAIN, [tenant, list(ids)]
        else:
            query, params = _ADD_SEALED, [list(ids), list(texts), tenant]
        found = conn.execute(query, [*params, tenant, list(ids)]).fetchall()
        self._move(tenant, found, 1)

    def remove(self, conn: psycopg.Connection[Any], tenant: str, ids: Sequence[str]) -> None:
        """Delete the postings of these memories (before their rows change or go)."""
        if ids:
            found = conn.execute(_REMOVE, (tenant, list(ids), tenant, list(ids))).fetchall()
            self._move(tenant, found, -1)

    def write(self, conn: psycopg.Connection[Any]) -> None:
        """Add the totals, in key order."""
        rows = sorted((k, v) for k, v in self.by_key.items() if v != [0, 0])
        if not rows:
            return
        conn.execute(
            "INSERT INTO memory_term_totals (tenant, project, documents, length) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) "
            "ON CONFLICT (tenant, project) DO UPDATE "
            "SET documents = memory_term_totals.documents + excluded.documents, "
            "length = memory_term_totals.length + excluded.length",
            (
                [t for (t, _), _ in rows],
                [p for (_, p), _ in rows],
                [d for _, (d, _) in rows],
                [n for _, (_, n) in rows],
            ),
        )

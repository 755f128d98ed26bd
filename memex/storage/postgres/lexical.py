"""The full-text leg of recall on PostgreSQL: the postings of the recall's lexemes,
ranked by BM25 from the store's own statistics.

Postings are found by text equality (``lexeme = ANY(...)``), which is leakproof, so the
planner uses their index under row-level security (``@@`` on a tsvector is not, which
kept a GIN index out of every scan). BM25 is SQLite FTS5's (k1 1.2, b 0.75, an idf of
``ln((N - df + 0.5) / (df + 0.5))``, at least 1e-6): N and the average length are the
tenant's totals, a lexeme's df the count of its postings in the tenant, and each posting
carries its memory's length. Every statement takes the terms as one array, so its text
is the same whatever the query and psycopg prepares it once per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memex.storage.postgres.postings import CONFIG

FACTS = (
    "m.project, m.user_id, m.agent, m.session, m.kind, m.created_at, m.importance, m.content, "
    "m.version, m.sealed_content"
)
"""The columns ranking reads of a candidate (``memex.core.ranking.Facts``), after its key,
score and id in every candidate row; then its version and sealed content (NULL for a
plain row), which open an encrypted tenant's content."""

K1 = 1.2
B = 0.75

LEXEMES = f"tsvector_to_array(to_tsvector('{CONFIG}', array_to_string(%s::text[], ' ')))"
"""The distinct lexemes of the terms given as one array parameter, as the postings
spell them."""

_TOTALS = (
    "SELECT greatest(d, 1) AS n, greatest(l, 1) / greatest(d, 1) AS avgdl FROM (SELECT "
    "coalesce(sum(documents), 0)::float8 AS d, coalesce(sum(length), 0)::float8 AS l "
    "FROM memory_term_totals WHERE tenant = %s) y"
)


def frequencies(tenant: str, terms: Sequence[str], threshold: int) -> tuple[str, list[Any]]:
    """A statement counting, for each term, the tenant's memories that hold its most
    frequent lexeme, up to ``threshold`` (rows of term and count;
    ``core.text.prune_common`` decides)."""
    return (
        "SELECT t.term, coalesce(max(c.n), 0) FROM unnest(%s::text[]) AS t(term) "
        f"LEFT JOIN LATERAL unnest(tsvector_to_array(to_tsvector('{CONFIG}', t.term))) "
        "AS l(lexeme) ON true LEFT JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 "
        "FROM memory_terms p WHERE p.tenant = %s AND p.lexeme = l.lexeme LIMIT %s) x) c "
        "ON true GROUP BY t.term",
        [list(terms), tenant, threshold],
    )


def search(
    tenant: str, where: str, params: list[Any], terms: Sequence[str], limit: int
) -> tuple[str, list[Any]]:
    """A statement of the ``limit`` best rows passing ``where`` for any of ``terms``: key,
    BM25 score, id and ``FACTS``, best first."""
    score = (
        "greatest(ln((x.n - p.df + 0.5) / (p.df + 0.5)), 1e-6) * p.tf * "
        f"{K1 + 1} / (p.tf + {K1} * ({1 - B} + {B} * p.length / x.avgdl))"
    )
    return (
        f"WITH x AS MATERIALIZED ({_TOTALS}), "
        "p AS (SELECT t.seq, t.tf, t.length, count(*) OVER (PARTITION BY t.lexeme)::float8 AS df "
        f"FROM memory_terms t WHERE t.tenant = %s AND t.lexeme = ANY({LEXEMES})), "
        f"s AS (SELECT p.seq, sum({score}) AS score FROM p CROSS JOIN x GROUP BY p.seq) "
        f"SELECT m.seq, s.score, m.id, {FACTS} FROM s JOIN memories m "
        f"ON m.tenant = %s AND m.seq = s.seq WHERE {where} "
        "ORDER BY s.score DESC, m.seq LIMIT %s",
        [tenant, tenant, list(terms), tenant, *params, limit],
    )

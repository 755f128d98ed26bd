"""The full-text leg of recall on PostgreSQL: the stored ``lexemes`` (a GIN index) matched
by a disjunctive tsquery of the recall's terms, ranked by cover density (``ts_rank_cd``).

Every statement takes the terms as one array, so its text is the same whatever the
query and psycopg prepares it once per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CONFIG = "memex_english"
"""The text search configuration of the ``lexemes`` column (English stems, no stop words)."""

FACTS = "m.project, m.user_id, m.agent, m.session, m.kind, m.created_at, m.importance, m.content"
"""The columns ranking reads of a candidate (``memex.core.ranking.Facts``), after its key,
score and id in every candidate row."""

TSQUERY = (
    "(SELECT string_agg(quote_literal(l), ' | ')::tsquery FROM unnest(tsvector_to_array("
    f"to_tsvector('{CONFIG}', array_to_string(%s::text[], ' ')))) l)"
)
"""A tsquery matching any of the terms given as one array parameter (their lexemes, as
the column's configuration makes them); NULL, matching nothing, for terms without any."""


def frequencies(
    where: str, params: list[Any], terms: Sequence[str], threshold: int
) -> tuple[str, list[Any]]:
    """A statement counting, for each term, the rows ``where`` selects that hold it, up to
    ``threshold`` (rows of term and count; ``core.text.prune_common`` decides)."""
    one = (
        f"(SELECT count(*) FROM (SELECT 1 FROM memories m WHERE m.lexemes @@ "
        f"{TSQUERY.replace('%s::text[]', 'ARRAY[t.term]')} AND {where} LIMIT %s) x)"
    )
    return (
        f"SELECT t.term, {one} FROM unnest(%s::text[]) AS t(term)",
        [*params, threshold, list(terms)],
    )


def search(
    where: str, params: list[Any], terms: Sequence[str], limit: int
) -> tuple[str, list[Any]]:
    """A statement of the ``limit`` best rows passing ``where`` for any of ``terms``: key,
    score, id and ``FACTS``, best first."""
    return (
        f"SELECT m.seq, ts_rank_cd(m.lexemes, {TSQUERY}) AS score, m.id, {FACTS} "
        f"FROM memories m WHERE m.lexemes @@ {TSQUERY} AND {where} "
        "ORDER BY score DESC, m.seq LIMIT %s",
        [list(terms), list(terms), *params, limit],
    )

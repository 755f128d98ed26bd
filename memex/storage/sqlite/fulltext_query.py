"""Queries on the tantivy full-text index: its schema and documents, the query-side
analyzer, term pruning and the filtered search with the lag scored by FTS5 (see
``fulltext.py`` for how the index is kept)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

import tantivy

from memex.core import text
from memex.core.pool import next_pool
from memex.core.query import Filters
from memex.core.ranking import Candidate
from memex.storage.sqlite import lexical, reads, sql
from memex.storage.sqlite.fulltext_mark import Mark
from memex.storage.sqlite.visibility import Check

_SINCE = (
    "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'memories'), "
    "(SELECT max(pos) FROM index_changes)"
)
"""The highest key ever assigned and the last change logged: whether there is a lag."""

ROW = "seq, " + ", ".join(sql.SCOPE_COLUMNS.values()) + ", " + sql.plain("content")
"""The columns of a memory that make its document."""


def index_schema() -> tantivy.Schema:
    """Documents keyed by ``memories.seq``: scope terms, and the text's term frequencies."""
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("key", stored=False, indexed=True, fast=True)
    builder.add_text_field("scope", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", stored=False, tokenizer_name="en_stem", index_option="freq")
    return builder.build()


def document(row: Sequence[Any]) -> tantivy.Document:
    """A row of ``ROW`` (key, scope columns, content) as an index document."""
    seq, *scope, content = row
    doc = tantivy.Document()
    doc.add_unsigned("key", int(seq))
    for name, value in zip(sql.SCOPE_COLUMNS, scope, strict=True):
        if value is not None:
            doc.add_text("scope", f"{name}={value}")
    doc.add_text("text", content)
    return doc


def query_analyzer() -> tantivy.TextAnalyzer:
    """The query-side twin of tantivy's ``en_stem`` tokenizer."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def indexed_hits(
    schema: tantivy.Schema,
    conn: sqlite3.Connection,
    searcher: tantivy.Searcher,
    filters: Filters,
    tokens: Sequence[str],
    limit: int,
    max_seq: int,
    pending: set[int],
    check: Check | None = None,
    implied: Collection[str] = (),
) -> list[Candidate] | None:
    """The index's best hits that pass the filters (``check`` tells which do; default:
    SQL); None if too few pass."""
    term = tantivy.Query.term_query
    should = [(tantivy.Occur.Should, term(schema, "text", t)) for t in tokens]
    # Scope terms score nothing: the ranking is the text's BM25 alone. A scope field
    # ``implied`` (the store holds no other value for it) would only slow the search.
    clauses = [
        (
            tantivy.Occur.Must,
            tantivy.Query.const_score_query(term(schema, "scope", f"{name}={value}"), 0.0),
        )
        for name, value in filters.scope.items()
        if name not in implied
    ]
    words = tantivy.Query.boolean_query(should)
    # Alone, the words' query is searched as it is: a top-k disjunction skips blocks of
    # documents that cannot make the cut, which a query wrapping it does not.
    query = (
        tantivy.Query.boolean_query([*clauses, (tantivy.Occur.Must, words)]) if clauses else words
    )
    make = Candidate._make  # tantivy gives keys as int and scores as float
    total = max(int(searcher.num_docs), 1)
    pool = min(filters.pool(limit, tuple(sql.SCOPE_COLUMNS)), total)
    for _ in range(3):
        hits = searcher.search(query, pool, count=False).hits
        keys = searcher.fast_field_values("key", [address for _, address in hits])
        found = [
            make((k, score))
            for (score, _), k in zip(hits, keys, strict=True)
            if k is not None and k <= max_seq and k not in pending
        ]
        ours = [c.key for c in found]
        passing = check(ours) if check is not None else reads.passing(conn, filters, ours)
        kept = [c for c in found if c.key in passing]
        if len(kept) >= limit or len(hits) < pool:
            return kept[:limit]
        grown = next_pool(limit, len(hits), len(kept), total)
        if grown is None:
            break
        pool = grown
    return None


def prune(
    analyzer: tantivy.TextAnalyzer, searcher: tantivy.Searcher, terms: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The query terms worth walking (the rule is ``text.prune_common``) and their index
    tokens; a term of several tokens is as common as the most common of them."""
    analysed = [(t, list(dict.fromkeys(analyzer.analyze(t)))) for t in terms]
    analysed = [(t, toks) for t, toks in analysed if toks]

    def frequency(term: tuple[str, list[str]], _threshold: int) -> int:
        return max(int(searcher.doc_freq("text", tok)) for tok in term[1])

    analysed = text.prune_common(analysed, int(searcher.num_docs), frequency)
    tokens = list(dict.fromkeys(tok for _, toks in analysed for tok in toks))
    return [t for t, _ in analysed], tokens


def search_index(
    index: tantivy.Index,
    schema: tantivy.Schema,
    analyzer: tantivy.TextAnalyzer,
    conn: sqlite3.Connection,
    filters: Filters,
    terms: Sequence[str],
    limit: int,
    mark: Mark,
    check: Check | None = None,
    since: tuple[int, int] | None = None,
    implied: Collection[str] = (),
) -> list[Candidate] | None:
    """The best hits of an index that holds ``mark``, merged with the lag after it (rows
    after ``max_seq`` and rows changed since ``change_pos``) scored by FTS5; None if
    too few index hits pass the filters. ``since``: the highest key and the last change
    logged, when just read; ``implied``: scope fields the search need not match (see
    ``indexed_hits``)."""
    searcher = index.searcher()
    high, pos = since if since is not None else conn.execute(_SINCE).fetchone()
    pending: set[int] = set()
    if (pos or 0) > mark.change_pos:
        pending = {
            int(r[0])
            for r in conn.execute(
                "SELECT DISTINCT seq FROM index_changes WHERE pos > ? AND seq <= ?",
                (mark.change_pos, mark.max_seq),
            )
        }
    kept_terms, tokens = prune(analyzer, searcher, terms)
    indexed: list[Candidate] = []
    if tokens:
        found = indexed_hits(
            schema, conn, searcher, filters, tokens, limit, mark.max_seq, pending, check, implied
        )
        if found is None:
            return None
        indexed = found
    tail: list[Candidate] = []
    if (high or 0) > mark.max_seq:  # memories written after the index's last
        tail = lexical.search(conn, filters, kept_terms, limit, 0, after=mark.max_seq)
    for start in range(0, len(pending), 500):
        chunk = sorted(pending)[start : start + 500]
        tail += lexical.search(conn, filters, kept_terms, limit, 0, among=chunk)
    merged = sorted([*indexed, *tail], key=lambda c: (-c.score, c.key))
    return merged[:limit]

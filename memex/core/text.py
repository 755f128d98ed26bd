"""Text helpers for lexical search: query terms without the words that match everything.

Stop words go from every query (``query_terms``); terms common in a large store go from
the query each full-text index runs (``prune_common``, the one rule of every lexical path).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)

# English function words: they carry little meaning, appear in most memories and make
# a disjunctive full-text query both slower and noisier.
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "d",
        "ll",
        "m",
        "re",
        "ve",
        "don",
        "doesn",
        "didn",
        "isn",
        "aren",
        "wasn",
        "weren",
        "hasn",
        "haven",
        "hadn",
        "won",
        "wouldn",
        "shouldn",
        "couldn",
        "can't",
        "let's",
        "also",
        "ever",
    ]
)


def query_terms(text: str, *, keep_stop_words: bool = False) -> list[str]:
    """Lowercased word terms of a query, deduplicated in order, stop words removed.

    A query made only of stop words keeps them, so it still matches something.
    """
    words = [w.lower().split("'")[0] for w in _WORD_RE.findall(text)]
    words = [w for w in words if w]
    seen: dict[str, None] = {}
    for word in words:
        if keep_stop_words or word not in STOP_WORDS:
            seen.setdefault(word, None)
    if not seen and not keep_stop_words:
        return query_terms(text, keep_stop_words=True)
    return list(seen)


PRUNE_MIN_MEMORIES = 20_000
"""A store smaller than this keeps every query term."""
PRUNE_MIN_POSTINGS = 2_000
PRUNE_SHARE = 0.02
"""A term is common from this share of a store's memories (and at least
``PRUNE_MIN_POSTINGS`` of them)."""
PRUNE_KEEP = 2
"""How many terms a query of common terms only keeps: its rarest."""

_T = TypeVar("_T")


def common_threshold(size: int) -> int | None:
    """In how many memories of a store of ``size`` a term is common; None when a store
    that small keeps every term."""
    if size < PRUNE_MIN_MEMORIES:
        return None
    return max(PRUNE_MIN_POSTINGS, int(size * PRUNE_SHARE))


def prune_common(terms: Sequence[_T], size: int, frequency: Callable[[_T, int], int]) -> list[_T]:
    """The query terms worth walking in a store of ``size``: those that are not common.

    A disjunctive full-text query costs in proportion to the postings it walks, and a
    term found in a few percent of memories adds little to BM25 (its idf is near 0) but
    can cost hundreds of milliseconds at a million memories. Small stores, and queries
    of one term, keep every term. When every term is common, the rarest ``PRUNE_KEEP``
    are kept (the first in the query among equals), in query order.

    ``frequency(term, threshold)`` is the number of memories a term occurs in; it may
    stop counting at ``threshold`` (``common_threshold``), so that a check stays cheap.
    It is called only when the store is large enough to prune, once for each term.
    """
    threshold = common_threshold(size)
    if threshold is None or len(terms) < 2:
        return list(terms)
    counts = [frequency(term, threshold) for term in terms]
    rare = [term for term, count in zip(terms, counts, strict=True) if count < threshold]
    if rare:
        return rare
    rarest = sorted(range(len(terms)), key=counts.__getitem__)[:PRUNE_KEEP]
    return [terms[i] for i in sorted(rarest)]

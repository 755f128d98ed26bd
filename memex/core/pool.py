"""How many hits to ask an index for, so that enough of them pass a recall's filters.

An index (full text, vectors) ranks memories without knowing every filter: forgotten,
expired and superseded memories, kinds, tags, metadata and times are checked on the hits
it returns. A backend asks for a pool of hits (``first_pool``), keeps those that pass,
and when too few do, asks again for a pool sized by the share that passed
(``next_pool``), until that would be so large that filtering first is cheaper. Pure.
"""

from __future__ import annotations

NARROW_FACTOR = 4
"""The first pool under filters that may drop many hits, in multiples of the limit."""
MARGIN = 1.5
"""How much larger than the share that passed suggests a next pool is."""
MAX_FACTOR = 64
MAX_PART = 8
"""A next pool is given up on beyond ``MAX_FACTOR`` times the limit and a ``MAX_PART``-th
of the index (whichever is larger)."""


def first_pool(limit: int, *, narrow: bool) -> int:
    """The hits to ask for first, for ``limit`` to pass: ``NARROW_FACTOR`` times as many
    when ``narrow`` filters may drop many; otherwise only forgotten, expired or
    superseded memories can go, and an eighth more (and 8) is enough."""
    if narrow:
        return limit * NARROW_FACTOR
    return limit + limit // 8 + 8


def next_pool(limit: int, found: int, kept: int, total: int) -> int | None:
    """The hits to ask for next when ``kept`` of the ``found`` hits passed, fewer than
    ``limit``, in an index of ``total``: enough for ``limit`` at the share that passed
    (at least one counted as passing), with a margin, at most ``total``. None when that
    is more than the larger of ``MAX_FACTOR`` times ``limit`` and a ``MAX_PART``-th of
    the index: the caller filters first instead."""
    share = max(kept, 1) / max(found, 1)
    pool = min(int(limit / share * MARGIN) + 1, total)
    if pool > max(limit * MAX_FACTOR, total // MAX_PART):
        return None
    return pool

"""When a client sends a request again, and after how long. Pure: the clients sleep.

A request is sent again when the server answered 429 (rate limited) or 503 (the store
busy or unavailable): it refused the request before doing anything, so any request may
be repeated. A request whose connection failed is sent again only if it never reached
the server (the connection could not be made) or if sending it twice does no harm (a
read): a write whose answer was lost may have been done. Waits honour ``Retry-After``
and otherwise grow exponentially, with jitter so that clients refused together do not
come back together; a server that asks for a longer wait than ``MAX_WAIT`` is not
waited for, and a failed connection is tried again ``CONNECTION_RETRIES`` times at most.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 503})
BASE_DELAY = 0.25
"""Seconds before the first retry (halved to doubled by jitter); doubled for each next one."""
MAX_DELAY = 8.0
"""The longest backoff between two attempts when the server names no wait."""
CONNECTION_RETRIES = 2
"""A failed connection is tried again at most this many times: enough for a server that
restarts, not so many that a server that is down takes long to report."""
MAX_WAIT = 60.0
"""The longest ``Retry-After`` waited for: a longer one is an answer, not a pause."""


def retry_after(header: str | None, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number, or an HTTP date), if any."""
    if header is None:
        return None
    text = header.strip()
    seconds: float
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def backoff(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``attempt`` (1 for the first) when none is asked for:
    exponential, capped, with half of it random."""
    ceiling = min(MAX_DELAY, BASE_DELAY * 2.0 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * rand()


def next_delay(
    attempt: int,
    max_retries: int,
    *,
    status: int | None = None,
    reached: bool = True,
    idempotent: bool = False,
    asked: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before sending again, or None to give up.

    ``attempt`` counts the attempts made so far (1 after the first). Either ``status``
    is the status the server answered, or the connection failed and ``reached`` says
    whether the request may have reached the server. ``asked`` is the server's
    ``Retry-After``, in seconds.
    """
    if attempt > max_retries:
        return None
    if status is not None:
        if status not in RETRY_STATUSES:
            return None
    elif (reached and not idempotent) or attempt > CONNECTION_RETRIES:
        return None
    if asked is not None:
        return asked if asked <= MAX_WAIT else None
    return backoff(attempt, rand)

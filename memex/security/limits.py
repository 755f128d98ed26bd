"""What a server checks every request against: token buckets per key and per tenant,
and the tenant's hourly call quota, kept in this process or, for several processes, in
Redis (``security.redis_limits``).

``Limits.admit`` runs once per request, after authentication: a dictionary look-up, a
lock and a few multiplications in process (a few microseconds), or one round trip to
Redis. It answers what the ``RateLimit-*`` fields of the response show, or refuses
with RateLimitError (429 ``rate_limited``) or CallQuotaExceededError (429
``quota_exceeded``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from memex.core.identity import Principal
from memex.core.limits import (
    DEFAULT_KEY_RATE,
    DEFAULT_TENANT_RATE,
    HOUR,
    Admission,
    Bucket,
    Rate,
    Taken,
    admit,
    hour_window,
)
from memex.errors import CallQuotaExceededError, RateLimitError
from memex.security.quotas import LimitEvents, QuotaBook

_MAX_BUCKETS = 100_000
"""Buckets kept in process; past it, those idle for an hour (full again) are dropped."""


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """A server's limits: the rates (None: no bucket of that kind), whether tenants'
    quotas are enforced, and the Redis server that shares them between processes."""

    key: Rate | None = DEFAULT_KEY_RATE
    tenant: Rate | None = DEFAULT_TENANT_RATE
    quotas: bool = True
    redis: str | None = None
    redis_prefix: str = "memex"


class Shown(Protocol):
    """Where ``Limits.admit`` puts what a response's ``RateLimit-*`` fields show."""

    taken: Taken | None


class Limiter(Protocol):
    """Where buckets and call counts are kept: this process, or a Redis server."""

    remote: bool
    """Whether a check is a network round trip (then it never runs on the event loop)."""

    def admit(
        self, buckets: Sequence[tuple[str, Rate]], calls: str | None, calls_limit: int | None
    ) -> Admission:
        """One request against ``buckets`` (name, rate) and the call count ``calls``
        (None: not counted) with its hard quota."""
        ...

    def close(self) -> None:
        """Let go of any connection."""
        ...


class LocalLimiter:
    """Buckets and call counts in this process's memory."""

    remote = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}
        self._calls: dict[str, tuple[int, int]] = {}  # name: (hour, calls in it)

    def admit(
        self, buckets: Sequence[tuple[str, Rate]], calls: str | None, calls_limit: int | None
    ) -> Admission:
        """One request against ``buckets`` and the call count ``calls``."""
        now = time.time()
        hour = int(now // HOUR)  # hour_window(now)[0], without the call
        known = self._buckets
        with self._lock:
            made = 0
            if calls is None:
                calls_limit = None
            else:
                counted = self._calls.get(calls)
                if counted is not None and counted[0] == hour:
                    made = counted[1]
            states: list[Bucket | None] = []
            rates: list[Rate] = []
            for name, rate in buckets:  # loops, not comprehensions: no frame each
                states.append(known.get(name))
                rates.append(rate)
            after, found = admit(states, rates, made, calls_limit, now)
            for i in range(len(after)):
                known[buckets[i][0]] = after[i]
            if calls is not None:
                self._calls[calls] = (hour, found.calls)
            if len(known) > _MAX_BUCKETS:
                self._prune(now)
        return found

    def _prune(self, now: float) -> None:
        idle = [name for name, b in self._buckets.items() if now - b.at > 3600]
        for name in idle:
            del self._buckets[name]
        if len(self._buckets) > _MAX_BUCKETS:  # all busy: start afresh rather than grow
            self._buckets.clear()
        self._calls = {n: c for n, c in self._calls.items() if c[0] >= hour_window(now)[0]}

    def close(self) -> None:
        """Nothing to let go of."""


class Limits:
    """A server's per-request checks: its policy, its limiter and its tenants' quotas."""

    def __init__(
        self,
        policy: LimitPolicy,
        limiter: Limiter,
        book: QuotaBook | None,
        events: LimitEvents,
    ) -> None:
        self.policy = policy
        self.limiter = limiter
        self.book = book
        self.events = events
        self._rated = policy.key is not None or policy.tenant is not None
        self.warning: Callable[[str], str | None] = _no_warning if book is None else book.warnings
        """The ``Memex-Quota-Warning`` value for a tenant, if it is at a soft limit."""
        # Each caller's buckets (names and rates) and call count's name, made once: the
        # check runs per request.
        self._callers: dict[tuple[str, str], tuple[list[tuple[str, Rate]], str]] = {}

    @property
    def remote(self) -> bool:
        """Whether a check is a network round trip."""
        return self.limiter.remote and (self._rated or self.book is not None)

    def _new_caller(self, principal: Principal) -> tuple[list[tuple[str, Rate]], str]:
        """A caller's buckets and call count's name, made and kept (``admit`` looks them
        up first)."""
        policy = self.policy
        buckets = []
        if policy.key is not None and principal.key_id:
            buckets.append((f"k:{principal.key_id}", policy.key))
        if policy.tenant is not None:
            buckets.append((f"t:{principal.tenant}", policy.tenant))
        if len(self._callers) >= _MAX_BUCKETS:
            self._callers.clear()
        found = self._callers[(principal.key_id, principal.tenant)] = (
            buckets,
            f"c:{principal.tenant}",
        )
        return found

    def admit(self, principal: Principal, shown: Shown) -> None:
        """Check one request of ``principal``, putting what the response's
        ``RateLimit-*`` fields show (a refusal's too) in ``shown.taken``: RateLimitError
        or CallQuotaExceededError if it may not go on."""
        book, tenant = self.book, principal.tenant
        known = self._callers.get((principal.key_id, tenant))
        buckets, calls = known if known is not None else self._new_caller(principal)
        quotas = None if book is None else book.quotas(tenant)
        if quotas is None:
            if not buckets:
                return
            found = self.limiter.admit(buckets, None, None)
            limit = None
        else:
            limit = quotas.calls_per_hour.hard
            found = self.limiter.admit(buckets, calls, limit)
        taken = shown.taken = found.taken
        if found.calls_refused:
            self.events.refused(tenant, principal.key_id, "quota_exceeded", "calls_per_hour")
            raise CallQuotaExceededError(
                f"the tenant is at its calls_per_hour quota ({limit}); "
                f"the count starts again in {int(found.next_hour) + 1} s",
                "calls_per_hour",
                found.next_hour,
            )
        if taken is not None and not taken.allowed:
            self.events.refused(tenant, principal.key_id, "rate_limited", None)
            raise RateLimitError(
                "too many requests: try again after the Retry-After seconds", taken.retry_after
            )
        if book is not None and quotas is not None:
            book.note_calls(tenant, found.calls, found.next_hour, quotas.calls_per_hour)

    def close(self) -> None:
        """Let go of the limiter's connection."""
        self.limiter.close()


def _no_warning(_: str) -> None:
    """No quotas: never a warning."""

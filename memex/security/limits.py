"""What a server checks every request against: token buckets per key and per tenant,
and the tenant's hourly call quota, kept in this process or, for several processes, in
Redis (``security.redis_limits``).

``Limits.admit`` runs once per request, after authentication: a dictionary look-up, a
lock and a few multiplications in process (a few microseconds), or one round trip to
Redis. It answers the ``RateLimit-*`` fields of the response, or refuses with
RateLimitError (429 ``rate_limited``) or CallQuotaExceededError (429
``quota_exceeded``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from memex.core.identity import Principal
from memex.core.limits import (
    DEFAULT_KEY_RATE,
    DEFAULT_TENANT_RATE,
    Admission,
    Bucket,
    Rate,
    admit,
    hour_window,
    rate_headers,
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
        hour = hour_window(now)[0]
        with self._lock:
            states = [self._buckets.get(name) for name, _ in buckets]
            made = 0
            if calls is not None:
                window, made = self._calls.get(calls, (hour, 0))
                made = made if window == hour else 0
            limit = calls_limit if calls is not None else None
            after, found = admit(states, [rate for _, rate in buckets], made, limit, now)
            for (name, _), state in zip(buckets, after, strict=True):
                self._buckets[name] = state
            if calls is not None:
                self._calls[calls] = (hour, found.calls)
            if len(self._buckets) > _MAX_BUCKETS:
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
        # Each caller's buckets (names and rates), made once: the check runs per request.
        self._buckets: dict[tuple[str, str], list[tuple[str, Rate]]] = {}

    @property
    def remote(self) -> bool:
        """Whether a check is a network round trip."""
        return self.limiter.remote and (self._rated or self.book is not None)

    def _buckets_of(self, principal: Principal) -> list[tuple[str, Rate]]:
        slot = (principal.key_id, principal.tenant)
        found = self._buckets.get(slot)
        if found is None:
            policy = self.policy
            found = []
            if policy.key is not None and principal.key_id:
                found.append((f"k:{principal.key_id}", policy.key))
            if policy.tenant is not None:
                found.append((f"t:{principal.tenant}", policy.tenant))
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[slot] = found
        return found

    def admit(self, principal: Principal, headers: dict[str, str]) -> None:
        """Check one request of ``principal``, putting the response's ``RateLimit-*``
        fields in ``headers`` (a refusal's too): RateLimitError or
        CallQuotaExceededError if it may not go on."""
        book, tenant = self.book, principal.tenant
        buckets = self._buckets_of(principal)
        quotas = None if book is None else book.quotas(tenant)
        calls_limit = None if quotas is None else quotas.calls_per_hour.hard
        if not buckets and quotas is None:
            return
        calls = None if quotas is None else f"c:{tenant}"
        found = self.limiter.admit(buckets, calls, calls_limit)
        if found.taken is not None:
            headers.update(rate_headers(found.taken))
        if found.calls_refused:
            self.events.refused(tenant, principal.key_id, "quota_exceeded", "calls_per_hour")
            raise CallQuotaExceededError(
                f"the tenant is at its calls_per_hour quota ({calls_limit}); "
                f"the count starts again in {int(found.next_hour) + 1} s",
                "calls_per_hour",
                found.next_hour,
            )
        if found.taken is not None and not found.taken.allowed:
            self.events.refused(tenant, principal.key_id, "rate_limited", None)
            raise RateLimitError(
                "too many requests: try again after the Retry-After seconds",
                found.taken.retry_after,
            )
        if book is not None and quotas is not None:
            book.note_calls(tenant, found.calls, found.next_hour, quotas.calls_per_hour)

    def warning(self, tenant: str) -> str | None:
        """The ``Memex-Quota-Warning`` value for the tenant, if it is at a soft limit."""
        return None if self.book is None else self.book.warnings(tenant)

    def close(self) -> None:
        """Let go of the limiter's connection."""
        self.limiter.close()

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
from typing import Any, Protocol

from memex.core.identity import Principal
from memex.core.limits import (
    DEFAULT_KEY_RATE,
    DEFAULT_TENANT_RATE,
    HOUR,
    Admission,
    Rate,
    Taken,
)
from memex.errors import CallQuotaExceededError, RateLimitError
from memex.security.quotas import LimitEvents, QuotaBook

_new = tuple.__new__  # a NamedTuple from its fields' tuple, without a Python frame

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


class Metered:
    """A caller as a limiter sees it: its buckets (name and rate each) and the name of
    its tenant's hourly call count (None: calls are not counted). ``Limits`` makes one
    per caller and keeps it; a limiter may keep what it found for it in ``state``."""

    __slots__ = ("buckets", "calls", "state")

    def __init__(self, buckets: Sequence[tuple[str, Rate]], calls: str | None) -> None:
        self.buckets = tuple(buckets)
        self.calls = calls
        self.state: Any = None


class Limiter(Protocol):
    """Where buckets and call counts are kept: this process, or a Redis server."""

    remote: bool
    """Whether a check is a network round trip (then it never runs on the event loop)."""

    def admit(self, caller: Metered, calls_limit: int | None) -> Admission:
        """One request of ``caller`` against its buckets and its call count, with the
        hard quota ``calls_limit`` (None: none); ``core.limits.admit`` decides."""
        ...

    def close(self) -> None:
        """Let go of any connection."""
        ...


class LocalLimiter:
    """Buckets and call counts in this process's memory.

    It decides as ``core.limits.admit`` does (a test holds it to it), written out for
    the one request it runs on: each caller's buckets and call count are looked up once
    and then changed in place, so a check makes no object but its answer."""

    remote = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """``clock``: Unix seconds (hours of calls are clock hours)."""
        self._clock = clock
        self._lock = threading.Lock()
        # A bucket: [tokens, at, tokens a second, burst, burst as an int], changed in
        # place and shared by every caller of it (a name always has the same rate).
        self._levels: dict[str, list[Any]] = {}
        # A call count: [its hour's first second, the next hour's, calls in the hour].
        self._calls: dict[str, list[int]] = {}
        self._epoch = object()  # a new one when buckets were let go: callers look again

    def admit(self, caller: Metered, calls_limit: int | None) -> Admission:
        """One request of ``caller`` against its buckets and its call count."""
        now = self._clock()
        with self._lock:
            state = caller.state
            if state is None or state[0] is not self._epoch:
                state = self._attach(caller, now)
            _, levels, counter = state
            if counter is None:
                calls, calls_limit = 0, None
                ends = (now // HOUR + 1) * HOUR  # hour_window(now), without the call
            elif counter[0] <= now < counter[1]:
                calls, ends = counter[2], counter[1]
            else:  # a new hour (or a clock that stepped back into an earlier one)
                counter[0] = int(now // HOUR) * HOUR
                counter[1] = ends = counter[0] + HOUR
                calls = counter[2] = 0
            refused = calls_limit is not None and calls >= calls_limit
            taken = None
            if levels:
                allowed, wait = True, 0.0
                for level in levels:  # refilled to now
                    tokens, at, per_second, burst, _ = level
                    if now > at:  # a clock that stepped back adds nothing
                        tokens += (now - at) * per_second
                    if tokens >= burst:
                        tokens = burst
                    elif tokens < 1.0:
                        allowed = False
                        if (1.0 - tokens) / per_second > wait:
                            wait = (1.0 - tokens) / per_second
                    level[0] = tokens
                    level[1] = now
                tight, share = levels[0], 2.0
                if allowed and not refused:
                    calls += 1
                    for level in levels:  # a token from each; the lowest share left shown
                        level[0] -= 1.0
                        if level[0] / level[3] < share:
                            tight, share = level, level[0] / level[3]
                else:
                    for level in levels:
                        if level[0] / level[3] < share:
                            tight, share = level, level[0] / level[3]
                after = tight[0]
                taken = _new(
                    Taken,
                    (
                        allowed,
                        tight[4],
                        int(after) if after > 0 else 0,
                        (tight[3] - after) / tight[2],
                        0.0 if allowed else wait,
                    ),
                )
            elif not refused:
                calls += 1
            if counter is not None:
                counter[2] = calls
        return _new(Admission, (taken, calls, refused, ends - now))

    def _attach(
        self, caller: Metered, now: float
    ) -> tuple[object, tuple[list[Any], ...], list[int] | None]:
        """Look up (or make, full) ``caller``'s buckets and call count; let go of idle
        buckets first when there are too many. Under the lock."""
        if len(self._levels) + len(caller.buckets) > _MAX_BUCKETS:
            self._prune(now)
        levels = []
        for name, rate in caller.buckets:
            level = self._levels.get(name)
            if level is None:
                burst = rate.burst
                level = self._levels[name] = [
                    float(burst),
                    now,
                    rate.per_second,
                    float(burst),
                    burst,
                ]
            levels.append(level)
        counter = None
        if caller.calls is not None:
            counter = self._calls.get(caller.calls)
            if counter is None:
                counter = self._calls[caller.calls] = [0, 0, 0]  # an hour long gone
        state = caller.state = (self._epoch, tuple(levels), counter)
        return state

    def _prune(self, now: float) -> None:
        idle = [name for name, level in self._levels.items() if now - level[1] > 3600]
        for name in idle:
            del self._levels[name]
        if len(self._levels) > _MAX_BUCKETS // 2:  # all busy: start afresh rather than grow
            self._levels.clear()
        self._calls = {name: c for name, c in self._calls.items() if c[1] > now}
        self._epoch = object()  # every caller looks its buckets up again

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
        # Each caller as the limiter sees it, made once: the check runs per request.
        self._callers: dict[tuple[str, str], Metered] = {}

    @property
    def remote(self) -> bool:
        """Whether a check is a network round trip."""
        return self.limiter.remote and (self._rated or self.book is not None)

    def _new_caller(self, principal: Principal) -> Metered:
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
        calls = None if self.book is None else f"c:{principal.tenant}"
        found = self._callers[(principal.key_id, principal.tenant)] = Metered(buckets, calls)
        return found

    def admit(self, principal: Principal, shown: Shown) -> None:
        """Check one request of ``principal``, putting what the response's
        ``RateLimit-*`` fields show (a refusal's too) in ``shown.taken``: RateLimitError
        or CallQuotaExceededError if it may not go on."""
        book, tenant = self.book, principal.tenant
        caller = self._callers.get((principal.key_id, tenant))
        if caller is None:
            caller = self._new_caller(principal)
        if book is None:
            if not caller.buckets:
                return
            found = self.limiter.admit(caller, None)
            quotas = limit = None
        else:
            quotas = book.quotas(tenant)
            limit = quotas.calls_per_hour.hard
            found = self.limiter.admit(caller, limit)
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

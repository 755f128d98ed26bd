"""Rate limits and quotas, as pure decisions: token buckets, hourly call windows, and
each tenant's quotas with their soft and hard limits.

A token bucket holds up to ``burst`` tokens and gains ``per_second`` of them a second;
a request takes one. A request checked against several buckets (its key's and its
tenant's) takes a token from each only if every one has a token, so a refusal costs
nothing. The Redis limiter runs the same arithmetic in Lua (``security/redis_limits``);
its tests hold it to this module's tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, NamedTuple

from memex.errors import ValidationError

HOUR = 3600

_new = tuple.__new__
"""Makes a NamedTuple from a tuple of its fields without its Python ``__new__`` (a frame
per call): the decisions below make four on every request."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket's policy: ``per_second`` tokens a second, ``burst`` at most."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise ValidationError(f"a rate must be a positive number, not {self.per_second}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValidationError(f"a burst must be a positive whole number, not {self.burst!r}")

    def describe(self) -> str:
        """The rate as ``parse_rate`` reads it, and its burst."""
        return f"{self.per_second:g}/s, burst {self.burst}"


DEFAULT_KEY_RATE = Rate(50.0, 100)
"""Each API key's requests: 50 a second, 100 at once."""
DEFAULT_TENANT_RATE = Rate(200.0, 400)
"""Each tenant's requests, all its keys together: 200 a second, 400 at once."""

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*")
_PER = {"s": 1, "m": 60, "h": HOUR}


def parse_rate(text: str, what: str) -> float:
    """Tokens a second from ``N/s``, ``N/m`` or ``N/h``."""
    match = _RATE.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValidationError(f"{what} takes a rate such as 20/s, 600/m or 5000/h, not {text!r}")
    return float(match.group(1)) / _PER[match.group(2)]


class Bucket(NamedTuple):
    """A bucket's state: its tokens at time ``at`` (seconds, any fixed origin). A tuple:
    one is made per bucket per request."""

    tokens: float
    at: float


class Taken(NamedTuple):
    """What a request's check found: whether it may go on, and what the
    ``RateLimit-*`` fields tell of the tightest bucket."""

    allowed: bool
    limit: int
    """The tightest bucket's burst."""
    remaining: int
    """Whole tokens left in the tightest bucket, after this request."""
    reset: float
    """Seconds until the tightest bucket is full again."""
    retry_after: float
    """Seconds until a refused request would be allowed (0 when allowed)."""


def refill(bucket: Bucket | None, rate: Rate, now: float) -> float:
    """The tokens ``bucket`` holds at ``now`` (a bucket never seen is full)."""
    if bucket is None:
        return float(rate.burst)
    tokens, at = bucket
    if now > at:  # a clock that stepped back adds nothing
        tokens += (now - at) * rate.per_second
    return tokens if tokens < rate.burst else float(rate.burst)


def take(
    buckets: Sequence[Bucket | None], rates: Sequence[Rate], now: float, *, consume: bool = True
) -> tuple[list[Bucket], Taken]:
    """One request against every bucket: a token from each if all have one, else
    nothing taken (nothing either when not ``consume``). The buckets' new states, and
    what was found. (Written as flat loops with ``refill`` inlined: it runs on every
    request.)"""
    count = len(rates)
    if not count or len(buckets) != count:
        raise ValueError("one rate per bucket, at least one")
    levels: list[float] = []
    for i in range(count):
        bucket, burst = buckets[i], rates[i].burst
        if bucket is None:
            levels.append(float(burst))
            continue
        tokens, at = bucket
        if now > at:
            tokens += (now - at) * rates[i].per_second
        levels.append(tokens if tokens < burst else float(burst))
    allowed = min(levels) >= 1.0
    spend = 1.0 if allowed and consume else 0.0
    states: list[Bucket] = []
    tight, share, wait = 0, 0.0, 0.0
    for i in range(count):
        rate, level = rates[i], levels[i]
        if level < 1.0:
            wait = max(wait, (1.0 - level) / rate.per_second)
        after = level - spend
        states.append(_new(Bucket, (after, now)))
        mine = after / rate.burst
        if i == 0 or mine < share:  # the lowest share; the first of equals
            tight, share = i, mine
    rate, after = rates[tight], levels[tight] - spend
    remaining = int(after) if after > 0 else 0  # whole tokens: math.floor of a level >= 0
    reset = (rate.burst - after) / rate.per_second
    return states, _new(Taken, (allowed, rate.burst, remaining, reset, 0.0 if allowed else wait))


def rate_fields(taken: Taken) -> list[tuple[bytes, bytes]]:
    """The ``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` header fields
    (draft-ietf-httpapi-ratelimit-headers-06), and ``Retry-After`` for a refusal: whole
    seconds, rounded up. As an ASGI answer carries them: lower-case names, bytes."""
    fields = [
        (b"ratelimit-limit", b"%d" % taken.limit),
        (b"ratelimit-remaining", b"%d" % taken.remaining),
        (b"ratelimit-reset", b"%d" % math.ceil(taken.reset)),
    ]
    if not taken.allowed:
        fields.append((b"retry-after", b"%d" % max(1, math.ceil(taken.retry_after))))
    return fields


class Admission(NamedTuple):
    """One request's check against its buckets and its tenant's calls this hour."""

    taken: Taken | None
    """The buckets' verdict (None: no rate limits)."""
    calls: int
    """The tenant's calls this hour, this one included if it was admitted."""
    calls_refused: bool
    """Whether the hourly call quota refused it (then no token was taken)."""
    next_hour: float
    """Seconds until the hour's calls start again from zero."""

    @property
    def allowed(self) -> bool:
        """Whether the request may go on."""
        return not self.calls_refused and (self.taken is None or self.taken.allowed)


def admit(
    buckets: Sequence[Bucket | None],
    rates: Sequence[Rate],
    calls: int,
    calls_limit: int | None,
    now: float,
) -> tuple[list[Bucket], Admission]:
    """A request against its buckets and the hourly call quota (``calls`` made this hour,
    ``calls_limit`` the hard quota, None: none). A request over the call quota takes no
    token; one the buckets refuse is not counted as a call. The buckets' new states
    (unchanged ones too) and the verdict."""
    refused = calls_limit is not None and calls >= calls_limit
    states: list[Bucket] = []
    taken = None
    if rates:
        states, taken = take(buckets, rates, now, consume=not refused)
    counted = not refused and (taken is None or taken.allowed)
    next_hour = (int(now // HOUR) + 1) * HOUR - now  # hour_window(now)[1], without the call
    return states, _new(Admission, (taken, calls + 1 if counted else calls, refused, next_hour))


def hour_window(now: float) -> tuple[int, float]:
    """The clock hour ``now`` (Unix seconds) falls in, and seconds until the next."""
    window = int(now // HOUR)
    return window, (window + 1) * HOUR - now


# -- quotas -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """One quota: a soft limit that warns and a hard one that refuses (None: none)."""

    hard: int | None
    soft: int | None

    def __post_init__(self) -> None:
        for name in ("hard", "soft"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValidationError(f"a {name} limit must be a whole number >= 0, not {value!r}")
        if self.hard is not None and self.soft is not None and self.soft > self.hard:
            raise ValidationError(f"a soft limit ({self.soft}) above its hard one ({self.hard})")

    def to_dict(self) -> dict[str, int | None]:
        """``{"hard": ..., "soft": ...}``."""
        return {"hard": self.hard, "soft": self.soft}


@dataclass(frozen=True, slots=True)
class Quotas:
    """A tenant's quotas. ``storage_mb`` is in megabytes (10⁶ bytes) of stored content."""

    memories: Limit
    storage_mb: Limit
    calls_per_hour: Limit
    projects: Limit
    users: Limit

    def to_dict(self) -> dict[str, dict[str, int | None]]:
        """Each quota's limits, by name."""
        return {name: getattr(self, name).to_dict() for name in QUOTA_NAMES}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quotas:
        """The quotas ``to_dict`` wrote (a quota left out is unlimited)."""
        values = {}
        for name in QUOTA_NAMES:
            given = data.get(name) or {}
            values[name] = Limit(given.get("hard"), given.get("soft"))
        return cls(**values)


QUOTA_NAMES: tuple[str, ...] = ("memories", "storage_mb", "calls_per_hour", "projects", "users")
"""Every quota, in the order they are shown."""

UNITS = {"storage_mb": 1_000_000}
"""Base units (bytes) per unit of a quota's limit; the others count one by one."""

DEFAULT_QUOTAS = Quotas(
    memories=Limit(10_000, 8_000),
    storage_mb=Limit(1_000, 800),
    calls_per_hour=Limit(1_000, 800),
    projects=Limit(10, 8),
    users=Limit(5, 4),
)
"""A tenant's quotas until they are set."""

UNLIMITED = Quotas(**{name: Limit(None, None) for name in QUOTA_NAMES})
"""No quota at all: the home tenant's until they are set."""

assert tuple(f.name for f in fields(Quotas)) == QUOTA_NAMES


def changed_quotas(quotas: Quotas, changes: Mapping[str, int | None]) -> Quotas:
    """``quotas`` with ``changes`` applied: ``NAME`` sets a hard limit, ``NAME_soft`` a
    soft one, None removes it. A hard limit given without its soft one moves the soft
    one down to it if it was above."""
    limits = {name: getattr(quotas, name) for name in QUOTA_NAMES}
    for key in changes:
        base = key.removesuffix("_soft")
        if base not in limits:
            raise ValidationError(f"no quota {base!r}: the quotas are {', '.join(QUOTA_NAMES)}")
    for name in QUOTA_NAMES:
        limit = limits[name]
        hard = changes.get(name, limit.hard)
        soft = changes.get(f"{name}_soft", limit.soft)
        if f"{name}_soft" not in changes and hard is not None and soft is not None:
            soft = min(soft, hard)
        limits[name] = Limit(hard, soft)
    return Quotas(**limits)


class Verdict(Enum):
    """What a quota says of a change: go on, go on with a warning, or refuse."""

    OK = "ok"
    WARN = "warn"
    REFUSE = "refuse"


def judge(limit: Limit, used: int, adding: int, unit: int = 1) -> Verdict:
    """Whether ``adding`` more to ``used`` (in base units) passes ``limit`` (in units of
    ``unit`` base units): a change that would cross the hard limit is refused whole;
    one that leaves the use at or over the soft limit warns."""
    after = used + adding
    if limit.hard is not None and adding > 0 and after > limit.hard * unit:
        return Verdict.REFUSE
    if limit.soft is not None and after >= limit.soft * unit and after > 0:
        return Verdict.WARN
    return Verdict.OK


def crossed_soft(limit: Limit, before: int, after: int, unit: int = 1) -> bool:
    """Whether a change from ``before`` to ``after`` took the use up to or over the soft
    limit (the moment a warning is recorded, once)."""
    if limit.soft is None:
        return False
    line = limit.soft * unit
    return before < line <= after


def shown(name: str, used: int) -> int:
    """A use in the quota's own units, rounded up (bytes as whole megabytes)."""
    return math.ceil(used / UNITS.get(name, 1))


def warning_text(name: str, used: int, limit: Limit) -> str:
    """The ``Memex-Quota-Warning`` value of one quota: ``memories 8123/10000``."""
    ceiling = limit.hard if limit.hard is not None else limit.soft
    return f"{name} {shown(name, used)}/{ceiling}"


def refusal_text(name: str, used: int, adding: int, limit: Limit) -> str:
    """The message of a hard quota's refusal."""
    unit = "MB" if name in UNITS else ""
    more = f" (this request adds {shown(name, adding)}{unit})" if adding > 1 else ""
    return (
        f"the tenant is at its {name} quota: {shown(name, used)}{unit} of "
        f"{limit.hard}{unit} used{more}; nothing was written"
    )


@dataclass(frozen=True, slots=True)
class QuotaReport:
    """A tenant's quotas and what it uses of each (None: not known here)."""

    tenant: str
    quotas: Quotas
    used: Mapping[str, int | None]
    """In the quota's own units (``storage_mb``: whole megabytes, rounded up)."""
    defaults: bool
    """Whether the tenant has the defaults (no quotas were set for it)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"tenant", "defaults", "quotas": {NAME: {"hard", "soft", "used"}}}``."""
        return {
            "tenant": self.tenant,
            "defaults": self.defaults,
            "quotas": {
                name: {**getattr(self.quotas, name).to_dict(), "used": self.used.get(name)}
                for name in QUOTA_NAMES
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuotaReport:
        """The report ``to_dict`` wrote."""
        given = data["quotas"]
        return cls(
            tenant=data["tenant"],
            quotas=Quotas.from_dict(given),
            used={name: given[name].get("used") for name in QUOTA_NAMES if name in given},
            defaults=bool(data["defaults"]),
        )

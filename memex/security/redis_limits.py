"""Buckets and call counts in Redis, shared by every server process that names the same
Redis server and prefix (``memex serve --redis URL``).

Each check is one Lua script, run atomically by Redis on its own clock (``TIME``), so
processes on machines whose clocks differ share one bucket exactly. It does the
arithmetic of ``memex.core.limits.admit``; the tests hold the two to the same table.

When Redis cannot be reached at start-up, the server does not start (``connect``).
When it stops answering later, each process falls back to its own in-process limits
(``LocalLimiter``) and tries Redis again every ``RETRY_SECONDS``: the limits hold per
process meanwhile, so N processes let up to N times the limit through, but none is
lifted altogether and no request waits on a dead Redis longer than ``TIMEOUT``.
Needs the ``redis`` extra.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from memex.core.limits import Admission, Taken
from memex.errors import ConfigError
from memex.security.limits import LocalLimiter, Metered

if TYPE_CHECKING:
    import redis

log = logging.getLogger("memex.limits")

TIMEOUT = 0.5
"""Seconds a Redis command may take before the check falls back to this process."""
RETRY_SECONDS = 5.0
"""Seconds between two tries of a Redis that stopped answering."""

# KEYS: the buckets, then the call counter's stem (absent: calls are not counted).
# ARGV: the number of buckets, the hard call quota (-1: none), then each bucket's rate
# a second and burst. Returns: allowed, limit, remaining, reset in ms, retry-after in
# ms, calls made this hour, whether the call quota refused, ms until the next hour.
SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local calls_limit = tonumber(ARGV[2])
local hour = math.floor(now / 3600)
local next_hour = (hour + 1) * 3600 - now
local calls_key = nil
local calls = 0
if #KEYS > n then
  calls_key = KEYS[n + 1] .. ':' .. hour
  calls = tonumber(redis.call('GET', calls_key) or '0')
end
local refused = 0
if calls_key and calls_limit >= 0 and calls >= calls_limit then refused = 1 end
local levels = {}
local allowed = 1
for i = 1, n do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local level = burst
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(burst, tonumber(state[1]) + elapsed * rate)
  end
  levels[i] = level
  if level < 1 then allowed = 0 end
end
local tight, tight_share, wait = 0, 0, 0
for i = 1, n do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local after = levels[i]
  if allowed == 1 and refused == 0 then after = after - 1 end
  if levels[i] < 1 then wait = math.max(wait, (1 - levels[i]) / rate) end
  redis.call('HSET', KEYS[i], 'tokens', tostring(after), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst / rate) * 1000) + 1000)
  local share = after / burst
  if tight == 0 or share < tight_share then tight, tight_share = i, share end
  levels[i] = after
end
local limit, remaining, reset = 0, 0, 0
if tight > 0 then
  local rate = tonumber(ARGV[1 + 2 * tight])
  limit = tonumber(ARGV[2 + 2 * tight])
  remaining = math.floor(levels[tight])
  reset = (limit - levels[tight]) / rate
end
if calls_key and refused == 0 and allowed == 1 then
  calls = redis.call('INCR', calls_key)
  redis.call('EXPIRE', calls_key, 7200)
end
if allowed == 1 then wait = 0 end
return {allowed, limit, remaining, math.floor(reset * 1000 + 0.5),
        math.ceil(wait * 1000), calls, refused, math.ceil(next_hour * 1000)}
"""


def shown_url(url: str) -> str:
    """A Redis URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _client(url: str) -> redis.Redis:
    try:
        import redis as redis_module
    except ImportError:
        raise ConfigError(
            "memex serve --redis needs the redis extra: pip install 'memex[redis]'"
        ) from None
    try:
        return redis_module.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
    except ValueError as exc:
        raise ConfigError(f"--redis {shown_url(url)} is not a Redis URL: {exc}") from None


class RedisLimiter:
    """Buckets and call counts in Redis under ``prefix``, shared by every process."""

    remote = True

    def __init__(self, client: redis.Redis, url: str, prefix: str) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._url = shown_url(url)
        self._prefix = prefix
        self._fallback = LocalLimiter()
        self._lock = threading.Lock()
        self._down_until = 0.0

    @classmethod
    def connect(cls, url: str, prefix: str = "memex") -> RedisLimiter:
        """A limiter on the Redis at ``url``; ConfigError in one line if it does not answer."""
        import redis as redis_module

        client = _client(url)
        try:
            client.ping()
        except redis_module.RedisError as exc:
            client.close()
            raise ConfigError(f"cannot reach Redis at {shown_url(url)}: {exc}") from None
        return cls(client, url, prefix)

    def admit(self, caller: Metered, calls_limit: int | None) -> Admission:
        """One request of ``caller`` against its buckets and call count, in Redis (in
        this process while Redis does not answer)."""
        import redis as redis_module

        if time.monotonic() < self._down_until:
            return self._fallback.admit(caller, calls_limit)
        buckets, calls = caller.buckets, caller.calls
        keys = [f"{self._prefix}:{name}" for name, _ in buckets]
        if calls is not None:
            keys.append(f"{self._prefix}:{calls}")
        args: list[Any] = [len(buckets), -1 if calls_limit is None else calls_limit]
        for _, rate in buckets:
            args += [repr(rate.per_second), rate.burst]
        try:
            found = self._script(keys=keys, args=args)
        except redis_module.RedisError as exc:
            self._down(exc)
            return self._fallback.admit(caller, calls_limit)
        return _admission(found, bool(buckets))

    def _down(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_until == 0.0 or time.monotonic() >= self._down_until + 60
            self._down_until = time.monotonic() + RETRY_SECONDS
        if first:
            log.warning(
                "Redis at %s does not answer (%s): limits are kept per process until it does",
                self._url,
                type(exc).__name__,
            )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _admission(found: Sequence[Any], rated: bool) -> Admission:
    allowed, limit, remaining, reset_ms, retry_ms, calls, refused, next_ms = (int(v) for v in found)
    taken = None
    if rated:
        taken = Taken(
            allowed=bool(allowed),
            limit=limit,
            remaining=remaining,
            reset=reset_ms / 1000,
            retry_after=retry_ms / 1000,
        )
    return Admission(taken, calls, bool(refused), next_ms / 1000)

"""Limits shared through a real Redis: the Lua script decides as ``core.limits`` does,
two real ``memex serve`` processes share one limit, a Redis that stops answering leaves
each process with its own limits, and one that does not answer at start-up stops the
server from starting, in one line."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redisserver import RedisServer

from memex.core.limits import Bucket, Rate, admit
from memex.errors import ConfigError
from memex.security.limits import Metered
from memex.security.redis_limits import RedisLimiter, shown_url

ROOT = Path(__file__).resolve().parents[2]
SLOW = 1 / 3600  # a token an hour: nothing refills while a test runs
_prefixes = itertools.count()


@pytest.fixture
def limiter(redis_server: RedisServer) -> Iterator[RedisLimiter]:
    found = RedisLimiter.connect(redis_server.url, f"test{next(_prefixes)}")
    yield found
    found.close()


@pytest.mark.parametrize(
    ("bursts", "calls_limit", "requests"),
    [
        ((3,), None, 5),  # one bucket runs dry
        ((5, 2), None, 4),  # the second (tenant) bucket is the tighter
        ((2, 10), 3, 5),  # the call quota and the buckets together
        ((), 2, 4),  # calls only
    ],
)
def test_the_script_decides_as_the_core_does(
    limiter: RedisLimiter, bursts: tuple[int, ...], calls_limit: int | None, requests: int
) -> None:
    rates = [Rate(SLOW, burst) for burst in bursts]
    caller = Metered([(f"b{i}", rate) for i, rate in enumerate(rates)], "c:t")
    states: list[Bucket | None] = [None] * len(rates)
    calls = 0
    for _ in range(requests):
        remote = limiter.admit(caller, calls_limit)
        states_after, local = admit(states, rates, calls, calls_limit, 0.0)
        states, calls = list(states_after), local.calls
        assert (remote.allowed, remote.calls, remote.calls_refused) == (
            local.allowed,
            local.calls,
            local.calls_refused,
        )
        if local.taken is None:
            assert remote.taken is None
        else:
            assert remote.taken is not None
            assert (remote.taken.allowed, remote.taken.limit, remote.taken.remaining) == (
                local.taken.allowed,
                local.taken.limit,
                local.taken.remaining,
            )


def test_a_redis_that_stops_answering_leaves_each_process_its_own_limits(
    tmp_path: Path,
) -> None:
    from redisserver import redis_binary

    server = RedisServer(redis_binary(), tmp_path)
    limiter = RedisLimiter.connect(server.url, "down")
    caller = Metered([("k:one", Rate(SLOW, 2))], None)
    try:
        assert limiter.admit(caller, None).allowed
        server.stop()
        # Kept in this process from now: a full bucket of two, so two more, then none.
        found = [limiter.admit(caller, None).allowed for _ in range(3)]
        assert found == [True, True, False]
    finally:
        limiter.close()
        server.stop()


def test_an_unreachable_redis_is_refused_in_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match=f"cannot reach Redis at redis://127.0.0.1:{port}"):
        RedisLimiter.connect(f"redis://127.0.0.1:{port}/0")
    assert shown_url("redis://me:secret@h:1/0") == "redis://me:***@h:1/0"
    done = subprocess.run(
        [sys.executable, "-m", "memex", "serve", "--port", "0", "--redis",
         f"redis://:hunter2@127.0.0.1:{port}/0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MEMEX_WARM": "0"},
    )  # fmt: skip
    assert done.returncode == 3  # a configuration error
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach Redis at"), done.stderr
    assert "hunter2" not in done.stderr


class Served:
    """A ``memex serve`` process, its URL and (for the first) its owner key."""

    def __init__(self, store: Path, redis_url: str, *extra: str) -> None:
        args = ["serve", "--store", str(store), "--port", "0", "--json", "--redis", redis_url]
        self.log = (store.parent / f"serve{next(_prefixes)}.err").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memex", *args, *extra],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MEMEX_WARM": "0",
                 "MEMEX_HOME": str(store.parent / "home")},
        )  # fmt: skip
        said: dict[str, object] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            said.update(json.loads(line))
            if "listening" in said:
                break
        assert "listening" in said, self.log.read()
        self.url = str(said["listening"])
        owner = said.get("owner_key")
        self.owner = owner["key"] if isinstance(owner, dict) else None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.log.close()


def test_two_servers_share_one_limit(tmp_path: Path, redis_server: RedisServer) -> None:
    """Five requests a key across both processes, the sixth refused wherever it goes."""
    store = tmp_path / "shared.db"
    limits = ("--key-rate", "1/h", "--key-burst", "5", "--no-quotas",
              "--redis-prefix", f"two{next(_prefixes)}")  # fmt: skip
    first = Served(store, redis_server.url, *limits)
    try:
        second = Served(store, redis_server.url, *limits)
        try:
            assert first.owner is not None and second.owner is None
            headers = {"authorization": f"Bearer {first.owner}"}
            left = []
            for url in [first.url, second.url] * 2 + [first.url]:
                answer = httpx.get(f"{url}/v1/me", headers=headers, timeout=30)
                assert answer.status_code == 200, answer.text
                left.append(int(answer.headers["ratelimit-remaining"]))
            assert left == [4, 3, 2, 1, 0]
            for url in (second.url, first.url):
                refused = httpx.get(f"{url}/v1/me", headers=headers, timeout=30)
                assert refused.status_code == 429
                assert refused.json()["error"]["code"] == "rate_limited"
                assert int(refused.headers["retry-after"]) > 60
        finally:
            second.stop()
    finally:
        first.stop()

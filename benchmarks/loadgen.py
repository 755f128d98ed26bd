"""The load generator of ``benchmarks/server.py``: one process of concurrent HTTP clients.

Each simulated client is an asyncio task with a client session of its own holding one
keep-alive connection (as an agent holding its own client would). At its ramp slot it
opens the connection with ``GET /healthz``, then loops until the phase ends: think (an
exponential pause of mean ``think`` seconds; none in a closed loop), pick an operation
by the mix's weights, send it, read the whole answer. Only requests *started* inside the
measurement window are recorded, each with its latency once it completes (however late),
so a slow answer at the window's end is not dropped. Errors (any non-2xx status, any
transport failure) are tallied by status or failure for the window and, apart, for the
ramp and warm-up before it, where a full listen backlog would show.

``run(plan, conn)`` is the process's entry: it sends ``"ready"`` on ``conn``, receives
the phase's start time (``time.monotonic()``, the same clock in every process of the
machine), runs and sends back its result.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from latency import KINDS, PROJECTS, TAGS, Corpus, Generator

OPS = ("recall", "remember", "get")


@dataclass(frozen=True, slots=True)
class Plan:
    """What one load-generator process does in one phase."""

    url: str
    api_key: str | None
    client_ids: tuple[int, ...]  # global indexes of this process's clients (ramp slots)
    total_clients: int
    think: float  # mean think time in seconds; 0 is a closed loop
    weights: tuple[float, float, float]  # recall, remember, get
    ramp: float
    warmup: float
    seconds: float
    timeout: float
    seed: int
    k: int
    questions: tuple[str, ...]
    ids: tuple[str, ...]
    corpus: Corpus
    http_client: str  # "aiohttp" or "httpx"


@dataclass
class Tally:
    """What one process saw of one operation."""

    latencies: array[float]
    statuses: Counter[str]
    errors: Counter[str]


class TransportError(Exception):
    """A transport failure, named by kind (connect, timeout, disconnected, ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


Send = Callable[[str, str, dict[str, Any] | None], Awaitable[int]]


class AiohttpClient:
    """One aiohttp session with one keep-alive connection."""

    def __init__(self, plan: Plan, counters: Counter[str], measure_from: float) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        trace = aiohttp.TraceConfig()

        async def opened(*_: Any) -> None:
            counters["connections"] += 1
            if time.monotonic() >= measure_from:
                counters["connections in window"] += 1

        trace.on_connection_create_end.append(opened)
        headers = {"Authorization": f"Bearer {plan.api_key}"} if plan.api_key else {}
        # The client keeps an idle connection far longer than any think time: when a
        # connection is closed between requests, it is the server's keep-alive limit.
        self.session = aiohttp.ClientSession(
            plan.url,
            headers=headers,
            connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=3600),
            timeout=aiohttp.ClientTimeout(total=plan.timeout),
            trace_configs=[trace],
        )

    async def send(self, method: str, path: str, body: dict[str, Any] | None) -> int:
        aiohttp = self._aiohttp
        try:
            async with self.session.request(method, path, json=body) as response:
                await response.read()
                return response.status
        except aiohttp.ClientConnectorError as exc:
            raise TransportError("connect") from exc
        except TimeoutError as exc:
            raise TransportError("timeout") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise TransportError("disconnected") from exc
        except aiohttp.ClientOSError as exc:
            raise TransportError(errno.errorcode.get(exc.errno or 0, "os error")) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(type(exc).__name__) from exc

    async def close(self) -> None:
        await self.session.close()


class HttpxClient:
    """One httpx client with one keep-alive connection (its pool of one)."""

    def __init__(self, plan: Plan, ssl_context: Any) -> None:
        import httpx

        self._httpx = httpx
        headers = {"Authorization": f"Bearer {plan.api_key}"} if plan.api_key else {}
        self.client = httpx.AsyncClient(
            base_url=plan.url,
            headers=headers,
            # One context for every client: httpx builds one per client otherwise
            # (tens of milliseconds each), though plain HTTP never uses it.
            verify=ssl_context,
            limits=httpx.Limits(max_connections=1, keepalive_expiry=3600),
            timeout=plan.timeout,
        )

    async def send(self, method: str, path: str, body: dict[str, Any] | None) -> int:
        httpx = self._httpx
        try:
            response = await self.client.request(method, path, json=body)
            return response.status_code
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportError("connect") from exc
        except httpx.TimeoutException as exc:
            raise TransportError("timeout") from exc
        except httpx.RemoteProtocolError as exc:
            raise TransportError("disconnected") from exc
        except httpx.HTTPError as exc:
            raise TransportError(type(exc).__name__) from exc

    async def close(self) -> None:
        await self.client.aclose()


class Phase:
    """One process's clients for one phase, and what they recorded."""

    def __init__(self, plan: Plan, start: float) -> None:
        self.plan = plan
        self.start = start
        self.measure_from = start + plan.ramp + plan.warmup
        self.end = self.measure_from + plan.seconds
        self.tallies = {op: Tally(array("d"), Counter(), Counter()) for op in OPS}
        self.before: Counter[str] = Counter()  # errors during ramp and warm-up
        self.counters: Counter[str] = Counter()
        self.cpu: dict[str, float] = {}
        self.ssl_context: Any = None
        if plan.http_client == "httpx":
            import httpx

            self.ssl_context = httpx.create_ssl_context()

    def client(self) -> AiohttpClient | HttpxClient:
        if self.plan.http_client == "httpx":
            return HttpxClient(self.plan, self.ssl_context)
        return AiohttpClient(self.plan, self.counters, self.measure_from)

    async def agent(self, index: int) -> None:
        plan = self.plan
        rng = random.Random(plan.seed * 1_000_003 + index)
        gen = Generator(plan.corpus, plan.seed * 1_000_003 + index)
        slot = self.start + plan.ramp * index / max(1, plan.total_clients)
        await asyncio.sleep(max(0.0, slot - time.monotonic()))
        client = self.client()
        try:
            try:  # open the connection in the ramp slot, not with the first request
                await client.send("GET", "/healthz", None)
            except TransportError as failure:
                self.before[failure.kind] += 1
            if plan.think:
                await self.pause(rng.expovariate(1 / plan.think))
            while (now := time.monotonic()) < self.end:
                await self.one(client, rng, gen, now)
                if plan.think:
                    await self.pause(rng.expovariate(1 / plan.think))
        finally:
            await client.close()

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, max(0.0, self.end - time.monotonic())))

    async def one(
        self, client: AiohttpClient | HttpxClient, rng: random.Random, gen: Generator, now: float
    ) -> None:
        plan = self.plan
        op = rng.choices(OPS, weights=plan.weights)[0]
        body: dict[str, Any] | None
        if op == "recall":
            method, path = "POST", "/v1/recall"
            body = {"query": rng.choice(plan.questions), "k": plan.k}
        elif op == "remember":
            method, path = "POST", "/v1/memories"
            body = {
                "content": gen.content(),
                "kind": rng.choice(KINDS),
                "tags": rng.sample(TAGS, rng.randint(1, 2)),
                "metadata": {"session": rng.randint(1, 500)},
                "scope": {"project": rng.choice(PROJECTS)},
            }
        else:
            method, path, body = "GET", f"/v1/memories/{rng.choice(plan.ids)}", None
        counted = now >= self.measure_from
        t0 = time.perf_counter()
        try:
            status = await client.send(method, path, body)
        except TransportError as failure:
            (self.tallies[op].errors if counted else self.before)[failure.kind] += 1
            if failure.kind == "connect":  # do not spin on a refused connection
                await asyncio.sleep(0.05 + rng.random() * 0.2)
            return
        elapsed = time.perf_counter() - t0
        if not counted:
            if not 200 <= status < 300:
                self.before[f"HTTP {status}"] += 1
            return
        tally = self.tallies[op]
        tally.statuses[str(status)] += 1
        if 200 <= status < 300:
            tally.latencies.append(elapsed)

    async def clock(self) -> None:
        """This process's CPU time over the measurement window."""
        await asyncio.sleep(max(0.0, self.measure_from - time.monotonic()))
        self.cpu["from"] = time.process_time()
        await asyncio.sleep(max(0.0, self.end - time.monotonic()))
        self.cpu["to"] = time.process_time()

    async def run(self) -> dict[str, Any]:
        clock = asyncio.ensure_future(self.clock())
        agents = [asyncio.ensure_future(self.agent(i)) for i in self.plan.client_ids]
        # Past the end, requests in flight get their timeout to finish, then are cut.
        deadline = self.end - time.monotonic() + self.plan.timeout + 5
        done, pending = await asyncio.wait(agents, timeout=max(1.0, deadline))
        for task in pending:
            task.cancel()
        await clock
        crashed = [t.exception() for t in done if not t.cancelled() and t.exception()]
        counted = self.plan.http_client == "aiohttp"
        return {
            "ops": {
                op: {
                    "latencies": t.latencies,
                    "statuses": dict(t.statuses),
                    "errors": dict(t.errors),
                }
                for op, t in self.tallies.items()
            },
            "before_window_errors": dict(self.before),
            # Connections opened (aiohttp reports them; httpx does not): all, and in the
            # window, where more than the clients' count means the server closed idle ones.
            "connections_opened": self.counters["connections"] if counted else None,
            "connections_opened_in_window": self.counters["connections in window"]
            if counted
            else None,
            "cpu_seconds": self.cpu.get("to", 0.0) - self.cpu.get("from", 0.0),
            "unfinished_clients": len(pending),
            "client_crashes": [repr(e) for e in crashed[:5]],
        }


def run(plan: Plan, conn: Connection) -> None:
    """One load-generator process: ready, wait for the start time, run, report."""
    runner: Callable[[Any], Any] = asyncio.run
    loop_name = "asyncio"
    try:
        import uvloop

        runner, loop_name = uvloop.run, "uvloop"
    except ImportError:
        pass
    conn.send("ready")
    start = conn.recv()
    result = runner(Phase(plan, start).run())
    result["loop"] = loop_name
    conn.send(result)
    conn.close()

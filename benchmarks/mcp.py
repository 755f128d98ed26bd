"""MCP tool-call latency: ``recall`` over stdio and over HTTP beside the same recall in process.

What it measures
----------------
On one store of N memories (a copy of the store ``benchmarks/latency.py --keep`` left, so
nothing is ingested here), the same distinct LoCoMo questions are recalled (k=10,
hybrid) three ways, in the same run, one after the other:

* in process: ``Memex.recall`` on a handle this process opens;
* over stdio: the ``recall`` tool of ``python -m memex mcp --store COPY``, through the
  MCP SDK's stdio client, one call at a time;
* over HTTP: the ``recall`` tool at ``/mcp`` of ``python -m memex serve --store COPY``
  (one worker, on loopback), through the MCP SDK's streamable HTTP client with a
  Bearer key (so each call is authenticated, as in production).

Each way first asks ``--warmup`` other questions (loading indexes, the embedder, the
connection), then times each of ``--queries`` questions from the caller's side: for MCP
that is the whole tool call (JSON-RPC, the transport, argument validation, the recall,
rendering the compact answer and reading it back). Every process embeds each question
once (memex caches query vectors per process), so the three ways do the same work.
The MCP clients speak the handshake protocol (``mode="legacy"``), as current agents do.
The machine's load average is recorded before and after: the figures are only as quiet
as the machine was.

How to run (from the repository root)::

    .venv/bin/python benchmarks/mcp.py --reuse .bench/kept2 --workdir .bench/mcp --markdown
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np

import memex
from memex import Memex, Settings

HERE = Path(__file__).resolve().parent
# This file is named like the MCP SDK: its folder must not shadow the SDK's ``mcp``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("latency", HERE / "latency.py")
assert _spec is not None
assert _spec.loader is not None
latency = importlib.util.module_from_spec(_spec)
sys.modules["latency"] = latency
_spec.loader.exec_module(latency)

ROOT = Path(__file__).resolve().parents[1]


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of durations, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "n": len(ms),
    }


def in_process(path: Path, queries: Sequence[str], warmup: Sequence[str]) -> list[float]:
    """Seconds each ``Memex.recall`` took."""
    with Memex.open(path, settings=Settings()) as mx:
        for q in warmup:
            mx.recall(q, k=10)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            mx.recall(q, k=10)
            times.append(time.perf_counter() - t0)
    return times


async def over_mcp(client: Any, queries: Sequence[str], warmup: Sequence[str]) -> list[float]:
    """Seconds each ``recall`` tool call took, through an MCP SDK client."""
    times = []
    async with client as session:
        for q in warmup:
            await session.call_tool("recall", {"query": q, "k": 10})
        for q in queries:
            t0 = time.perf_counter()
            answer = await session.call_tool("recall", {"query": q, "k": 10})
            times.append(time.perf_counter() - t0)
            if answer.is_error:
                raise SystemExit(f"recall failed: {answer.content[0].text}")
    return times


def environment() -> dict[str, str]:
    """The environment the memex processes run in: this source tree, no warm process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMEX_WARM": "0"}
    env.pop("MEMEX_API_KEY", None)
    return env


def over_stdio(path: Path, queries: Sequence[str], warmup: Sequence[str]) -> list[float]:
    """``recall`` through ``memex mcp`` on stdio."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memex", "mcp", "--store", str(path)],
        env=environment(),
    )
    return anyio.run(over_mcp, Client(params, mode="legacy"), queries, warmup)


def over_http(path: Path, queries: Sequence[str], warmup: Sequence[str]) -> list[float]:
    """``recall`` through ``/mcp`` of ``memex serve``, with a Bearer key."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    with Memex.open(path) as mx:
        key = mx.admin.create_key(mx.admin.home_tenant, "read_write").secret
    # The protocol's cost is measured, not the rate limits' (one client calling as fast
    # as it can would be refused after its burst); they are measured by server.py.
    command = [sys.executable, "-m", "memex", "serve", "--store", str(path), "--port", "0",
               "--no-limits", "--no-quotas"]  # fmt: skip
    server = subprocess.Popen(
        [*command, "--json", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=environment(),
    )
    try:
        assert server.stdout is not None
        url = None
        for line in server.stdout:
            said = json.loads(line)
            if "listening" in said:
                url = said["listening"]
                break
        if url is None:
            raise SystemExit("memex serve did not start")

        async def run() -> list[float]:
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
                transport = streamable_http_client(f"{url}/mcp", http_client=http)
                return await over_mcp(Client(transport, mode="legacy"), queries, warmup)

        return anyio.run(run)
    finally:
        server.terminate()
        server.wait(timeout=60)


def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table."""
    base = report["in_process"]["p50_ms"]
    rows = [
        "| recall (k=10), same questions | p50 ms | p95 ms | p99 ms | p50 over in-process |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {
        "in_process": "in process (`Memex.recall`)",
        "stdio": "MCP over stdio (`memex mcp`)",
        "http": "MCP over HTTP (`memex serve` `/mcp`, Bearer key)",
    }
    for way, name in names.items():
        s = report[way]
        extra = "–" if way == "in_process" else f"+{s['p50_ms'] - base:.2f} ms"
        rows.append(
            f"| {name} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} | {s['p99_ms']:.2f} | {extra} |"
        )
    load = report["load_average"]
    rows.append("")
    rows.append(
        f"{report['memories']:,} memories, {report['queries']} questions each "
        f"({report['warmup']} warm-up), {report['environment']['cpus']} CPUs; load average "
        f"(1 min) {load['before'][0]:.2f} before, {load['after'][0]:.2f} after."
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=100_000, help="memories in the store")
    parser.add_argument("--reuse", type=Path, required=True, help="folder of latency-N.db")
    parser.add_argument("--workdir", type=Path, required=True, help="where the copy is made")
    parser.add_argument("--data", type=Path, default=latency.DEFAULT_DATA, help="LoCoMo dev")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw results here")
    args = parser.parse_args(argv)
    if args.reuse.resolve() == args.workdir.resolve():
        parser.error("--workdir must differ from --reuse: the copy is made there")

    corpus = latency.load_corpus(args.data)
    questions = corpus.questions[:]
    random.Random(args.seed).shuffle(questions)
    wanted = args.queries + args.warmup
    if len(questions) < wanted:
        raise SystemExit(f"need {wanted} distinct questions, have {len(questions)}")
    queries, warmup = questions[: args.queries], questions[args.queries : wanted]

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = (args.workdir / f"latency-{args.size}.db").resolve()
    source = args.reuse / path.name
    if not source.is_file():
        raise SystemExit(f"no store at {source} (keep one with benchmarks/latency.py --keep)")
    latency.log(f"copying {source} to {path}")
    latency.copy_store(source, path)
    before = os.getloadavg()
    report: dict[str, Any] = {"memories": args.size, "queries": len(queries)}
    report["warmup"] = len(warmup)
    for way, run in (("in_process", in_process), ("stdio", over_stdio), ("http", over_http)):
        latency.log(f"recall {way}")
        report[way] = stats_ms(run(path, queries, warmup))
        latency.log(f"  {way}: {report[way]}")
    report["load_average"] = {"before": before, "after": os.getloadavg()}
    report["environment"] = {
        "memex": memex.__version__,
        "memex_source": latency.memex_source(),
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report) if args.markdown else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

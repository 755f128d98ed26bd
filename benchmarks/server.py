"""Load on ``memex serve``: throughput and latency under many concurrent clients, and
what authentication costs.

What it measures
----------------
A store of ``--size`` memories is made in process with ``remember_many`` exactly as
``benchmarks/latency.py`` makes its stores (LoCoMo turns plus random words, 4 projects,
4 kinds, 1-2 of 8 tags; the same file name, so either script's ``--keep`` leaves a
store the other can ``--reuse``). The real server is started on a copy of it with the
project's own entry, ``python -m memex serve --store COPY --port 0``; its URL and the
first start's owner key are read from its output. Load comes from ``--procs`` separate
processes (``benchmarks/loadgen.py``), each running its share of the clients as asyncio
tasks, every client with its own keep-alive connection.

Phases (``--phases``), each run with authentication on (the default) and with
``--no-auth``, ``--rounds`` times each, alternating (auth, no auth, no auth, auth, ...)
so that a slow spell of the shared machine hits both alike; the server is started
afresh for every run of a phase. ``--features on,off`` compares instead, in the same
way, two servers with authentication that differ in everything else a production
server adds (``MODE_ARGS`` and ``MODE_ENV`` say what each mode passes ``memex serve``):

* ``on``: rate limits checked on every request and quotas on every write (set so high
  that none refuses: their cost, not their refusals), the audit trail kept (an entry
  in the write's transaction), and the benchmark tenant encrypted at rest: a copy of the
  store sealed with ``memex admin encryption encrypt`` under a master key the benchmark
  writes into its work folder (``master.key``), served with ``MEMEX_MASTER_KEY_FILE``;
* ``off``: ``--no-limits --no-quotas``, ``MEMEX_AUDIT=0`` and the plain copy of the same
  store, with no master key,

and reports on ÷ off per phase and for all phases together (their requests and
latencies pooled). ``--features limits,off`` and ``--features sealed,off`` compare one
part of ``on`` at a time: its rate limits and quotas on the plain store, or its audit
trail and encrypted store without the limits. The phases:

* ``capacity``: a closed loop, ``--capacity-clients`` clients with no think time, the
  operation mix below. A closed loop of N clients saturates the server, and then
  latency is N ÷ throughput by Little's law: it measures the most the server does, not
  the latency a user sees.
* ``get``: the same closed loop, ``GET /v1/memories/{id}`` only.
* ``clients``: for each count of ``--clients`` (100 and 1,000), clients that think
  between requests: an exponential pause of mean ``--think`` seconds, the same for every
  count. ``--think auto`` (the default) picks the think time at which the largest count
  offers ``--utilisation`` (0.5) of the capacity phase's throughput (the lower of the
  two modes), and the offered rate is printed: N ÷ (think + mean latency). These are
  the phases a latency goal is about.

The mix: 70% ``POST /v1/recall`` (k=10, a random LoCoMo question), 20% ``POST
/v1/memories`` (a new distinct memory), 10% ``GET /v1/memories/{id}`` (a random id
among ``--ids`` sampled from the store). Per operation: count, throughput, p50/p99 of the
successful answers, and errors: any non-2xx answer by status, any transport failure
(connect, timeout, disconnected, ...) by kind; connection errors during the ramp and
warm-up are reported apart. Clients join at ``--ramp-rate`` a second (1,000 clients
over 5 s) so the listen backlog (uvicorn's ``backlog``, 2048 by default, capped by the
kernel's ``somaxconn``) is not the thing measured. Before they join, each new server
answers five recalls, a remember and a get one at a time (its first recall loads the
saved search indexes; that time is reported). The warm-up (``--warmup``, plus one mean
think time where there is one) is excluded; ``--seconds`` is measured; a request
started in the window counts with its full latency, however late it ends.

Beside each run: the server's CPU (its process and any children, in cores), the load
generator's CPU per request, the machine's busy share (also over a second before the
run, when nothing of this benchmark runs: ``--quiet`` and ``--quiet-wait`` can wait for
a quieter machine) and load average. ``--profile SECONDS`` samples the server afterwards
with py-spy (on ``PATH``, beside the Python, or ``--py-spy``) during a closed loop of the
mix and of ``get``: the thread holding the GIL only, so work in SQLite, faiss or tantivy,
which release it, does not show.

The client library: ``--http-client aiohttp`` (the default) or ``httpx``. On this
project's 2-core machine httpx's own CPU per request is several times aiohttp's, and the
load generator shares the cores with the server, so httpx caps what it can measure.

How to run (from the repository root)::

    .venv/bin/pip install -e '.[server,bench]'
    .venv/bin/python benchmarks/server.py --size 5000 --seconds 5 --rounds 1   # a quick look
    .venv/bin/python benchmarks/server.py --markdown --json .bench/server.json   # ~15 min
    .venv/bin/python benchmarks/server.py --workdir .bench/kept --keep ...        # keep the store
    .venv/bin/python benchmarks/server.py --reuse .bench/kept ...                 # and reuse it
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import random
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import memex
from memex import Memex, Settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from latency import (  # noqa: E402
    BATCH,
    DEFAULT_DATA,
    Corpus,
    Generator,
    copy_store,
    load_corpus,
    log,
    memex_source,
    remove_store,
)
from loadgen import OPS, Plan  # noqa: E402
from loadgen import run as run_loadgen  # noqa: E402

MIX = (0.7, 0.2, 0.1)  # recall, remember, get
GET_ONLY = (0.0, 0.0, 1.0)
MODES = ("auth", "noauth")
"""The two modes a run compares, in its ABBA order; ``--features on,off`` makes them
``("on", "off")``: authentication in both, the features on in the first only."""
HIGH = "1000000000"
MODE_ARGS: dict[str, tuple[str, ...]] = {
    # authentication alone, as measured before rate limits and quotas existed
    "auth": ("--no-limits", "--no-quotas"),
    "noauth": ("--no-auth",),
    # rate limits checked on every request and quotas on every write, set so high that
    # none refuses: what the checks cost, not what refusals do. The audit trail and
    # encryption at rest are switched by the environment and the store (MODE_ENV).
    "on": (
        "--key-rate",
        f"{HIGH}/s",
        "--key-burst",
        HIGH,
        "--tenant-rate",
        f"{HIGH}/s",
        "--tenant-burst",
        HIGH,
    ),
    "off": ("--no-limits", "--no-quotas"),
}
# One part of ``on`` at a time, against ``off`` (``--features limits,off``): the limits'
# flags on the plain store; the audit trail and the encrypted store without them.
MODE_ARGS["limits"] = MODE_ARGS["on"]
MODE_ARGS["sealed"] = MODE_ARGS["off"]
MODE_ENV: dict[str, dict[str, str | None]] = {
    # The environment of each mode's server (None: unset). ``on`` also gets the master
    # key file (``prepare_features``) and serves the encrypted copy of the store.
    "on": {"MEMEX_AUDIT": "1", "MEMEX_MASTER_KEY": None},
    "off": {"MEMEX_AUDIT": "0", "MEMEX_MASTER_KEY": None, "MEMEX_MASTER_KEY_FILE": None},
}
MODE_ENV["limits"] = MODE_ENV["off"]
MODE_ENV["sealed"] = MODE_ENV["on"]
FEATURE_MODES = ("on", "limits", "sealed")
"""What ``--features X,off`` compares with ``off``: everything, or one part of it."""
URL_RE = re.compile(r"(https?://(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|\[[0-9a-fA-F:]+\]):(\d+))")
KEY_RE = re.compile(r"\bmxk_[A-Za-z0-9]+_[A-Za-z0-9\-]{20,}")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the store ----------------------------------------------------------------------------


def build_store(path: Path, n: int, corpus: Corpus, seed: int, embedder: str) -> dict[str, Any]:
    """``n`` memories made as latency.py makes them, in batches of remember_many."""
    gen = Generator(corpus, seed + n)
    started = time.perf_counter()
    with Memex.open(path, settings=Settings(), embedder=embedder) as mx:
        for done in range(0, n, BATCH):
            mx.remember_many(gen.items(done, min(BATCH, n - done)))
            log(f"  [{n:,}] {min(done + BATCH, n):,}/{n:,}")
        mx.recall("what did she say about the weekend trip", k=10)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "memories_per_s": n / seconds}


def sample_ids(path: Path, count: int, seed: int) -> list[str]:
    """Ids of ``count`` random memories of the store (live ones: none is forgotten)."""
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = raw.execute(
            "SELECT id FROM memories WHERE deleted_at IS NULL ORDER BY seq"
        ).fetchall()
    finally:
        raw.close()
    ids = [r[0] for r in rows]
    return random.Random(seed).sample(ids, min(count, len(ids)))


# -- the server ---------------------------------------------------------------------------


@dataclass
class Server:
    """A running ``memex serve`` and what it printed."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    started_s: float
    owner_key: str | None = None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def request(
    url: str, key: str | None, method: str, path: str, body: dict[str, Any] | None = None
) -> int:
    """One request from this process; its status (raises on a transport failure)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=300) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def prime(ctx: Context, url: str, auth: bool) -> dict[str, float]:
    """One request at a time of each kind before the load: a new server loads its search
    indexes on its first recalls, which would otherwise fall into the first run's window."""
    key = ctx.key if auth else None
    times: dict[str, float] = {}
    for i, question in enumerate(ctx.questions[:5]):
        t0 = time.perf_counter()
        status = request(url, key, "POST", "/v1/recall", {"query": question, "k": 10})
        times.setdefault("first_recall_ms", (time.perf_counter() - t0) * 1000)
        if status != 200:
            raise SystemExit(f"recall {i} before the load answered {status}")
    t0 = time.perf_counter()
    body = {"content": f"a memory written before the load {time.time()}", "kind": "note"}
    if (status := request(url, key, "POST", "/v1/memories", body)) != 201:
        raise SystemExit(f"remember before the load answered {status}")
    times["first_remember_ms"] = (time.perf_counter() - t0) * 1000
    if (status := request(url, key, "GET", f"/v1/memories/{ctx.ids[0]}")) != 200:
        raise SystemExit(f"get before the load answered {status}")
    return times


@contextmanager
def serving(
    command: Sequence[str],
    store: Path,
    mode: str,
    log_path: Path,
    wait: float = 300,
    env: dict[str, str | None] | None = None,
) -> Iterator[Server]:
    """Start the server on ``store`` in ``mode`` (``MODE_ARGS``), with ``env``'s changes
    to this process's environment (None: unset); stop it (SIGINT, then SIGTERM, then
    SIGKILL) after."""
    argv = [*command, "--store", str(store), "--host", "127.0.0.1", "--port", "0"]
    argv += MODE_ARGS[mode]
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    started = time.perf_counter()
    with open(log_path, "wb") as out:
        # Output goes to a file, not a pipe: a chatty server never blocks on a full pipe.
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(memex.__file__).resolve().parent.parent,
            env=environment,
        )
    try:
        url = None
        while url is None:
            if process.poll() is not None:
                raise SystemExit(
                    f"the server exited ({process.returncode}) before listening: "
                    f"{' '.join(argv)}\n{read_text(log_path)[-3000:]}"
                )
            if time.perf_counter() - started > wait:
                raise SystemExit(f"the server printed no URL in {wait:.0f} s: {log_path}")
            match = next((m for m in URL_RE.finditer(read_text(log_path)) if m[2] != "0"), None)
            url = match[1] if match else None
            time.sleep(0.05)
        while http_status(f"{url}/healthz") != 200:
            if time.perf_counter() - started > wait or process.poll() is not None:
                raise SystemExit(f"the server never answered /healthz: {log_path}")
            time.sleep(0.05)
        key = KEY_RE.search(read_text(log_path))
        yield Server(process, url, log_path, time.perf_counter() - started, key[0] if key else None)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            continue


def owner_key(command: Sequence[str], store: Path, workdir: Path, given: str | None) -> str:
    """The key the auth runs present: the one given, or the owner key of the first start."""
    if given:
        return given
    with serving(command, store, "auth", workdir / "server-first-start.log") as server:
        if server.owner_key:
            return server.owner_key
    made = subprocess.run(
        [
            *(sys.executable, "-m", "memex", "admin", "key", "create"),
            *("--store", str(store), "--role", "owner", "--name", "load benchmark"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(memex.__file__).resolve().parent.parent,
    )
    key = KEY_RE.search(made.stdout)
    if key is None:
        raise SystemExit(
            "the server printed no owner key (the store has one already) and "
            f"`memex admin key create` gave none ({made.stderr.strip()[-300:]}): "
            "pass --api-key or set MEMEX_API_KEY"
        )
    return key[0]


# -- what the machine and the server did --------------------------------------------------


def process_cpu(pid: int) -> dict[str, float]:
    """CPU seconds in user space and in the kernel, and page faults (minor, major), of
    ``pid`` and every process below it."""
    parents: dict[int, int] = {}
    counts: dict[int, tuple[float, float, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        counts[int(entry.name)] = (
            int(fields[11]) / CLK_TCK,
            int(fields[12]) / CLK_TCK,
            int(fields[7]),
            int(fields[9]),
        )
    total = {"user": 0.0, "system": 0.0, "minor_faults": 0.0, "major_faults": 0.0}
    todo = [pid]
    while todo:
        current = todo.pop()
        for name, value in zip(total, counts.get(current, (0, 0, 0, 0)), strict=True):
            total[name] += value
        todo.extend(p for p, parent in parents.items() if parent == current)
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def somaxconn() -> int | None:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return None


def others_busy(seconds: float = 1.0) -> float:
    """The machine's busy share over ``seconds`` while this benchmark runs nothing."""
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / max(1.0, total1 - total0)


def wait_for_quiet(limit: float, wait: float) -> float:
    """Wait (at most ``wait`` s) for the machine's busy share to fall to ``limit``; the
    last share seen."""
    deadline = time.monotonic() + wait
    share = others_busy()
    while share > limit and time.monotonic() < deadline:
        share = others_busy(2.0)
    return share


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


# -- one run of a phase -------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseSpec:
    """A phase: its name, clients, think time and operation weights."""

    name: str
    clients: int
    think: float
    weights: tuple[float, float, float]


@dataclass
class Context:
    """What every run shares."""

    args: argparse.Namespace
    command: list[str]
    store: Path
    key: str
    questions: tuple[str, ...]
    ids: tuple[str, ...]
    corpus: Corpus
    workdir: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    stores: dict[str, Path] = field(default_factory=dict)
    """The store each mode serves, where it is not ``store``."""
    env: dict[str, dict[str, str | None]] = field(default_factory=dict)
    """Each mode's changes to the server's environment."""


def plans(ctx: Context, spec: PhaseSpec, url: str, auth: bool, seed: int) -> list[Plan]:
    args = ctx.args
    procs = max(1, min(args.procs, spec.clients))
    ramp = spec.clients / args.ramp_rate
    warmup = args.warmup + spec.think
    return [
        Plan(
            url=url,
            api_key=ctx.key if auth else None,
            client_ids=tuple(range(w, spec.clients, procs)),
            total_clients=spec.clients,
            think=spec.think,
            weights=spec.weights,
            ramp=ramp,
            warmup=warmup,
            seconds=args.seconds,
            timeout=args.timeout,
            seed=seed * 100 + w,
            k=10,
            questions=ctx.questions,
            ids=ctx.ids,
            corpus=ctx.corpus,
            http_client=args.http_client,
        )
        for w in range(procs)
    ]


def run_phase(
    ctx: Context, spec: PhaseSpec, mode: str, round_no: int, profile: float = 0
) -> dict[str, Any]:
    """Start a server, drive one phase at it from the load processes, stop it."""
    auth = mode != "noauth"
    label = f"{spec.name} {spec.clients} clients, {mode}, round {round_no}"
    log(f"  {label}")
    seed = hash((spec.name, spec.clients, mode, round_no)) & 0xFFFF
    kind = "profile" if profile else "server"
    log_path = ctx.workdir / f"{kind}-{spec.name}-{spec.clients}-{mode}-{round_no}.log"
    mp = multiprocessing.get_context("spawn")
    busy_before = wait_for_quiet(ctx.args.quiet, ctx.args.quiet_wait)
    load_before = load_average()
    store = ctx.stores.get(mode, ctx.store)
    with serving(ctx.command, store, mode, log_path, env=ctx.env.get(mode)) as server:
        primed = prime(ctx, server.url, auth)
        workers = []
        for plan in plans(ctx, spec, server.url, auth, seed):
            parent, child = mp.Pipe()
            proc = mp.Process(target=run_loadgen, args=(plan, child), daemon=True)
            proc.start()
            workers.append((proc, parent, plan))
        for _, parent, _ in workers:
            if not parent.poll(120) or parent.recv() != "ready":
                raise SystemExit("a load-generator process did not start")
        start = time.monotonic() + 0.2
        for _, parent, _ in workers:
            parent.send(start)
        plan = workers[0][2]
        measure_from = start + plan.ramp + plan.warmup
        end = measure_from + plan.seconds
        sleep_until(measure_from)
        cpu0, machine0 = process_cpu(server.process.pid), machine_cpu()
        profiled = start_profile(ctx, server.process.pid, profile) if profile else None
        sleep_until(end)
        cpu1, machine1 = process_cpu(server.process.pid), machine_cpu()
        rss = rss_bytes(server.process.pid)
        results = []
        for proc, parent, _ in workers:
            if not parent.poll(plan.timeout + 60):
                raise SystemExit("a load-generator process never reported")
            results.append(parent.recv())
            proc.join(10)
        profile_result = finish_profile(profiled) if profiled else None
        server_log_tail = read_text(log_path)[-2000:]
    load = merge(results)
    if load["client_crashes"]:
        raise SystemExit(f"{label}: load clients crashed: {'; '.join(load['client_crashes'])}")
    busy = (machine1[0] - machine0[0]) / max(1.0, machine1[1] - machine0[1])
    run: dict[str, Any] = {
        "phase": spec.name,
        "clients": spec.clients,
        "think_s": spec.think,
        "weights": spec.weights,
        "mode": mode,
        "round": round_no,
        "ramp_s": plan.ramp,
        "warmup_s": plan.warmup,
        "seconds": plan.seconds,
        "server": {
            "url": server.url,
            "startup_s": server.started_s,
            **primed,
            "cpu_cores": (cpu1["user"] + cpu1["system"] - cpu0["user"] - cpu0["system"])
            / plan.seconds,
            "cpu_system_share": (cpu1["system"] - cpu0["system"])
            / max(1e-9, cpu1["user"] + cpu1["system"] - cpu0["user"] - cpu0["system"]),
            "minor_faults": cpu1["minor_faults"] - cpu0["minor_faults"],
            "major_faults": cpu1["major_faults"] - cpu0["major_faults"],
            "rss_bytes": rss,
            "log": str(log_path),
            "log_tail": server_log_tail if load["errors_total"] else "",
        },
        "machine": {
            "busy_share": busy,
            "busy_share_before": busy_before,
            "load_before": load_before,
            "load_after": load_average(),
        },
        "load": load,
    }
    if profile_result is not None:
        run["profile"] = profile_result
    summary = summarise(load, plan.seconds)
    run["summary"] = summary
    log(
        f"    {summary['throughput']:,.0f} req/s, p50 {_ms(summary['p50_ms'])} ms, "
        f"p99 {_ms(summary['p99_ms'])} ms, errors {_errors(summary)}, "
        f"server {run['server']['cpu_cores']:.2f} cores, machine busy {busy:.0%}"
    )
    return run


def merge(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One phase's results over every load process."""
    ops: dict[str, dict[str, Any]] = {}
    for op in OPS:
        latencies = np.concatenate(
            [np.frombuffer(r["ops"][op]["latencies"], dtype=np.float64) for r in results]
        )
        statuses: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for r in results:
            statuses.update(r["ops"][op]["statuses"])
            errors.update(r["ops"][op]["errors"])
        ops[op] = {"latencies": latencies, "statuses": dict(statuses), "errors": dict(errors)}
    before: Counter[str] = Counter()
    for r in results:
        before.update(r["before_window_errors"])
    opened = [r["connections_opened"] for r in results]
    in_window = [r["connections_opened_in_window"] for r in results]
    total = sum(sum(o["statuses"].values()) for o in ops.values())
    errors_total = sum(
        sum(v for s, v in o["statuses"].items() if not s.startswith("2"))
        + sum(o["errors"].values())
        for o in ops.values()
    )
    return {
        "ops": ops,
        "before_window_errors": dict(before),
        "connections_opened": None if None in opened else sum(opened),
        "connections_opened_in_window": None if None in in_window else sum(in_window),
        "client_cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "answered": total,
        "errors_total": errors_total,
        "unfinished_clients": sum(r["unfinished_clients"] for r in results),
        "client_crashes": [c for r in results for c in r["client_crashes"]],
        "processes": len(results),
        "loop": results[0]["loop"],
    }


def percentiles(latencies: np.ndarray) -> dict[str, float | None]:
    """p50, p90, p99, p99.9, max and mean of durations in seconds, in milliseconds."""
    names = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms")
    if latencies.size == 0:
        return dict.fromkeys(names)
    ms = latencies * 1000
    cuts = np.percentile(ms, [50, 90, 99, 99.9, 100])
    return {**dict(zip(names, (float(c) for c in cuts), strict=False)), "mean_ms": float(ms.mean())}


def error_counts(op: dict[str, Any]) -> dict[str, int]:
    out = {f"HTTP {s}": n for s, n in op["statuses"].items() if not s.startswith("2")}
    out.update(op["errors"])
    return out


def summarise(load: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Counts, throughput, percentiles and errors, per operation and for the mix."""
    per_op: dict[str, Any] = {}
    for op in OPS:
        o = load["ops"][op]
        ok = int(o["latencies"].size)
        per_op[op] = {
            "ok": ok,
            "throughput": ok / seconds,
            **percentiles(o["latencies"]),
            "errors": error_counts(o),
        }
    every = np.concatenate([load["ops"][op]["latencies"] for op in OPS])
    errors: Counter[str] = Counter()
    for op in OPS:
        errors.update(per_op[op]["errors"])
    return {
        "ok": int(every.size),
        "throughput": every.size / seconds,
        **percentiles(every),
        "errors": dict(errors),
        "errors_before_window": load["before_window_errors"],
        "client_cpu_us_per_request": load["client_cpu_seconds"] / max(1, load["answered"]) * 1e6,
        "ops": per_op,
    }


# -- profiling ----------------------------------------------------------------------------


def py_spy_path(given: str | None) -> str | None:
    if given:
        return given
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


@dataclass
class Profiling:
    process: subprocess.Popen[bytes]
    output: Path
    log: Path


def start_profile(ctx: Context, pid: int, seconds: float) -> Profiling | None:
    tool = py_spy_path(ctx.args.py_spy)
    if tool is None:
        log("    py-spy not found: no profile")
        return None
    output = ctx.workdir / f"profile-{pid}.txt"
    log_path = ctx.workdir / f"profile-{pid}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [
                *(tool, "record", "--pid", str(pid), "--duration", str(int(seconds))),
                *("--rate", "100", "--format", "raw", "--output", str(output)),
                # Only the thread holding the GIL: the server's Python runs one thread at a
                # time, so that is its serial path (idle waits drop out too).
                *("--gil", "--nonblocking"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Profiling(process, output, log_path)


def finish_profile(profiling: Profiling) -> dict[str, Any]:
    try:
        profiling.process.wait(60)
    except subprocess.TimeoutExpired:
        profiling.process.kill()
    if not profiling.output.exists():
        return {"error": read_text(profiling.log)[-500:]}
    return collapse(read_text(profiling.output))


def frame_name(frame: str) -> str:
    """``function (path/to/module.py:line)`` → ``function (module.py)``; the line dropped."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    path = match[2]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        root = str(Path(memex.__file__).resolve().parent.parent) + "/"
        path = path.removeprefix(root)
    return f"{match[1]} ({path})"


def collapse(text: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
        areas[area(frames)] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / total) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self": shares(own),
        "inclusive": shares(inclusive),
        "areas": shares(areas),
    }


AREAS = (  # the first a stack reaches, from the leaf, names where its time went
    ("memex/security", "authentication (memex.security)"),
    ("memex/retrieval", "recall pipeline (memex)"),
    ("memex/embedd", "embedding (memex)"),
    ("memex/storage", "store (memex.storage)"),
    ("memex/insertion", "insert path (memex)"),
    ("memex/interfaces/http", "HTTP adapter (memex.interfaces.http)"),
    ("memex/", "memex, other"),
    ("pydantic", "pydantic"),
    ("fastapi/", "FastAPI"),
    ("starlette/", "Starlette"),
    ("uvicorn/", "uvicorn"),
    ("anyio/", "anyio (thread hand-off)"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
)


def area(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for marker, name in AREAS:
            if marker in frame:
                return name
    return "other"


# -- the whole run ------------------------------------------------------------------------


def order(round_no: int) -> tuple[str, ...]:
    """auth, no auth, then no auth, auth: an ABBA order, so a drift hits both alike."""
    return MODES if round_no % 2 == 0 else MODES[::-1]


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One mode of one phase over its rounds: latencies pooled, throughput summed."""
    seconds = sum(r["seconds"] for r in runs)
    pooled = {
        "ops": {
            op: {
                "latencies": np.concatenate([r["load"]["ops"][op]["latencies"] for r in runs]),
                "statuses": dict(
                    sum((Counter(r["load"]["ops"][op]["statuses"]) for r in runs), Counter())
                ),
                "errors": dict(
                    sum((Counter(r["load"]["ops"][op]["errors"]) for r in runs), Counter())
                ),
            }
            for op in OPS
        },
        "before_window_errors": dict(
            sum((Counter(r["load"]["before_window_errors"]) for r in runs), Counter())
        ),
        "client_cpu_seconds": sum(r["load"]["client_cpu_seconds"] for r in runs),
        "answered": sum(r["load"]["answered"] for r in runs),
    }
    out = summarise(pooled, seconds)
    out["rounds"] = len(runs)
    out["throughput_by_round"] = [r["summary"]["throughput"] for r in runs]
    out["server_cpu_cores"] = float(np.mean([r["server"]["cpu_cores"] for r in runs]))
    out["server_rss_bytes"] = max(r["server"]["rss_bytes"] for r in runs)
    answered = sum(r["load"]["answered"] for r in runs)
    out["server_cpu_ms_per_request"] = (
        sum(r["server"]["cpu_cores"] * r["seconds"] for r in runs) / max(1, answered) * 1000
    )
    if all("cpu_system_share" in r["server"] for r in runs):  # runs kept from before lack it
        out["server_cpu_system_share"] = float(
            np.mean([r["server"]["cpu_system_share"] for r in runs])
        )
        out["server_minor_faults_per_request"] = sum(
            r["server"]["minor_faults"] for r in runs
        ) / max(1, answered)
    out["machine_busy_share"] = float(np.mean([r["machine"]["busy_share"] for r in runs]))
    out["machine_busy_before"] = [r["machine"]["busy_share_before"] for r in runs]
    out["server_startup_s"] = float(np.mean([r["server"]["startup_s"] for r in runs]))
    opened = [r["load"]["connections_opened_in_window"] for r in runs]
    out["connections_opened_in_window"] = None if None in opened else sum(opened)
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def phase_table(ctx: Context, specs: Sequence[PhaseSpec]) -> list[dict[str, Any]]:
    """Per phase: each mode over its rounds, and auth's cost as ratios."""
    out = []
    for spec in specs:
        runs = [r for r in ctx.runs if (r["phase"], r["clients"]) == (spec.name, spec.clients)]
        by_mode = {m: aggregate([r for r in runs if r["mode"] == m]) for m in MODES}
        a, b = by_mode[MODES[0]], by_mode[MODES[1]]
        per_round = [
            ratio(x["summary"]["throughput"], y["summary"]["throughput"])
            for x, y in zip(
                [r for r in runs if r["mode"] == MODES[0]],
                [r for r in runs if r["mode"] == MODES[1]],
                strict=True,
            )
        ]
        mean_latency = (a["mean_ms"] or 0) / 1000
        out.append(
            {
                "phase": spec.name,
                "clients": spec.clients,
                "think_s": spec.think,
                "offered_per_s": spec.clients / (spec.think + mean_latency) if spec.think else None,
                "by_mode": by_mode,
                "first_over_second": {
                    "throughput": ratio(a["throughput"], b["throughput"]),
                    "p50": ratio(a["p50_ms"], b["p50_ms"]),
                    "p99": ratio(a["p99_ms"], b["p99_ms"]),
                    "server_cpu_ms_per_request": ratio(
                        a["server_cpu_ms_per_request"], b["server_cpu_ms_per_request"]
                    ),
                    "throughput_by_round": per_round,
                },
            }
        )
    return out


def total_ratio(ctx: Context, specs: Sequence[PhaseSpec]) -> dict[str, Any]:
    """Every phase's runs of each mode together (their requests and latencies pooled),
    the first mode over the second; and each mode's server CPU per request."""
    measured = {(s.name, s.clients) for s in specs}
    runs = [r for r in ctx.runs if (r["phase"], r["clients"]) in measured]
    by_mode = {m: aggregate([r for r in runs if r["mode"] == m]) for m in MODES}
    a, b = by_mode[MODES[0]], by_mode[MODES[1]]
    return {
        "throughput": ratio(a["throughput"], b["throughput"]),
        "p50": ratio(a["p50_ms"], b["p50_ms"]),
        "p99": ratio(a["p99_ms"], b["p99_ms"]),
        "server_cpu_ms_per_request": ratio(
            a["server_cpu_ms_per_request"], b["server_cpu_ms_per_request"]
        ),
        "requests": {m: by_mode[m]["ok"] for m in MODES},
    }


def feature_goal(phases: Sequence[dict[str, Any]], total: dict[str, Any]) -> dict[str, Any]:
    """The features' goal: at most 10% of throughput lost, in all and in each phase."""
    worst = min(phases, key=lambda p: p["first_over_second"]["throughput"] or 0.0)
    low = worst["first_over_second"]["throughput"] or 0.0
    return {
        "goal": f"{FEATURE_NAMES[MODES[0]]} cost at most 10% (throughput {MODES[0]} ÷ off ≥ 0.90)",
        "measured": f"all phases {_ratio(total['throughput'])} (p50 {_ratio(total['p50'])}, "
        f"p99 {_ratio(total['p99'])}); lowest phase {_ratio(low)} "
        f"({PHASE_NAMES[worst['phase']]}, {worst['clients']:,} clients)",
        "met": (total["throughput"] or 0.0) >= 0.9 and low >= 0.9,
    }


def goals(phases: Sequence[dict[str, Any]], max_clients: int) -> list[dict[str, Any]]:
    out = []
    for p in phases:
        a = p["by_mode"][MODES[0]]
        if p["phase"] == "get":
            out.append(
                {
                    "goal": "at least 1,000 `get` a second on 2 cores",
                    "measured": f"{a['throughput']:,.0f}/s ({MODES[1]} {p['by_mode'][MODES[1]]['throughput']:,.0f}/s)",
                    "met": a["throughput"] >= 1000,
                }
            )
        if p["phase"] == "clients" and p["clients"] == max_clients and max_clients >= 1000:
            errors = sum(a["errors"].values())
            out.append(
                {
                    "goal": f"p99 under 200 ms for the mix at {max_clients:,} clients",
                    "measured": f"p99 {a['p99_ms']:,.0f} ms at {a['throughput']:,.0f} req/s, "
                    f"{errors} errors (think {p['think_s']:.1f} s)",
                    "met": (a["p99_ms"] or 1e9) < 200 and errors == 0,
                }
            )
    return out


# -- output -------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """The report as JSON: latency arrays become their count (percentiles are beside)."""
    if isinstance(value, np.ndarray):
        return {"n": int(value.size)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, array):
        return {"n": len(value)}
    return value


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _pair(d: dict[str, Any]) -> str:
    return f"{_ms(d['p50_ms'])} / {_ms(d['p99_ms'])}"


def _errors(d: dict[str, Any]) -> str:
    parts = [f"{k} ×{v}" for k, v in sorted(d["errors"].items())]
    before = d.get("errors_before_window") or {}
    if before:
        parts.append(
            "before the window: " + ", ".join(f"{k} ×{v}" for k, v in sorted(before.items()))
        )
    return "; ".join(parts) or "0"


def _per_request(count: int | None, requests: int) -> str:
    return "–" if count is None or not requests else f"{count / requests:.2f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


FEATURE_NAMES = {
    "auth": "authentication",
    "on": "rate limits, quotas, the audit trail and encryption at rest",
    "limits": "rate limits and quotas",
    "sealed": "the audit trail and encryption at rest",
}
PHASE_NAMES = {
    "capacity": "capacity, closed loop, mix",
    "get": "capacity, closed loop, `get` only",
    "clients": "mix, clients thinking",
}


def markdown(report: dict[str, Any]) -> str:
    """Tables ready to paste into docs/benchmarks.md."""
    env, cfg = report["environment"], report["settings"]
    store = report["store"]
    made = (
        f"built in {store['built']['seconds']:,.0f} s"
        if store.get("built")
        else f"a copy of {store['reused']}"
    )
    lines = [
        f"### Server load, {store['memories']:,} memories",
        "",
        "```",
        f"$ {report['command']}",
        "```",
        "",
        f"memex {env['memex']} (commit {(env['memex_source']['commit'] or '?')[:10]}), "
        f"Python {env['python']}, uvicorn {env['versions']['uvicorn']}, {env['cpus']} CPUs; load average "
        f"{' / '.join(map(str, env['load_before']))} before, "
        f"{' / '.join(map(str, env['load_after']))} after (1 / 5 / 15 min). "
        f"Store: {store['memories']:,} memories ({made}). "
        f"Load: {cfg['procs']} processes of {env['http_client']} {env['http_client_version']} "
        f"clients on {report['runs'][0]['load']['loop']}, one keep-alive connection each, "
        f"joining at {cfg['ramp_rate']:,.0f}/s; each run {cfg['seconds']:.0f} s measured after "
        f"{cfg['warmup']:.0f} s of warm-up (plus one mean think time where clients think); "
        f"{cfg['rounds']} runs per phase and mode, alternating, a new server for each. "
        f"Listen backlog: uvicorn's default {env['uvicorn_backlog']}, somaxconn "
        f"{env['somaxconn']}. Before the clients join, each new server answers 5 recalls, "
        f"a remember and a get one at a time (its first recall, which loads the saved search "
        f"indexes, took {first_recall(report):,.0f} ms, median over the runs). "
        f"Whole run {report['total_seconds']:,.0f} s.{features_note(store)}",
        "",
        "| phase | clients | think (s) | offered (req/s) | mode | throughput (req/s) | "
        "all p50 / p99 (ms) | recall p50 / p99 | remember p50 / p99 | get p50 / p99 | "
        "errors | new connections per request | server CPU (cores) | server CPU (ms/req) | "
        "server RSS (MB) | client CPU (µs/req) | machine busy before / during |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in report["phases"]:
        for mode in MODES:
            a = p["by_mode"][mode]
            ops = a["ops"]
            cells = [
                PHASE_NAMES[p["phase"]],
                f"{p['clients']:,}",
                f"{p['think_s']:.1f}" if p["think_s"] else "0",
                f"{p['offered_per_s']:,.0f}" if p["offered_per_s"] else "closed loop",
                mode,
                f"{a['throughput']:,.0f}",
                _pair(a),
                _pair(ops["recall"]) if ops["recall"]["ok"] else "–",
                _pair(ops["remember"]) if ops["remember"]["ok"] else "–",
                _pair(ops["get"]),
                _errors(a),
                _per_request(
                    a["connections_opened_in_window"], a["ok"] + sum(a["errors"].values())
                ),
                f"{a['server_cpu_cores']:.2f}",
                f"{a['server_cpu_ms_per_request']:.2f}",
                f"{a['server_rss_bytes'] / 1e6:,.0f}",
                f"{a['client_cpu_us_per_request']:,.0f}",
                f"{max(a['machine_busy_before']):.0%} / {a['machine_busy_share']:.0%}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"The cost of {FEATURE_NAMES[MODES[0]]} ({MODES[0]} ÷ {MODES[1]}; above 1 for "
        "latency, below 1 for throughput is a cost):",
        "",
        "| phase | clients | throughput | p50 | p99 | server CPU per request | "
        "throughput, run by run |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in report["phases"]:
        r = p["first_over_second"]
        lines.append(
            f"| {PHASE_NAMES[p['phase']]} | {p['clients']:,} | {_ratio(r['throughput'])} | "
            f"{_ratio(r['p50'])} | {_ratio(r['p99'])} | "
            f"{_ratio(r.get('server_cpu_ms_per_request'))} | "
            f"{', '.join(_ratio(x) for x in r['throughput_by_round'])} |"
        )
    t = report["total"]
    lines.append(
        f"| all phases together | | {_ratio(t['throughput'])} | {_ratio(t['p50'])} | "
        f"{_ratio(t['p99'])} | {_ratio(t['server_cpu_ms_per_request'])} | |"
    )
    if report["goals"]:
        lines += ["", f"| goal | measured ({MODES[0]}) | met |", "|---|---|---|"]
        for g in report["goals"]:
            lines.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else 'no'} |")
    for prof in report.get("profiles", []):
        lines += ["", profile_markdown(prof)]
    return "\n".join(lines)


def features_note(store: dict[str, Any]) -> str:
    """What the ``on`` mode served, in a run with ``--features``."""
    done = store.get("features")
    if not done:
        return ""
    if MODES[0] == "limits":
        return (
            " `limits` serves the plain store with the rate limits and quotas of `on`, "
            "`MEMEX_AUDIT=0` and no master key, as `off` does but for those."
        )
    if MODES[0] == "sealed":
        return (
            " `sealed` serves the encrypted copy with the audit trail on, as `on` does, "
            f"with `--no-limits --no-quotas` as `off` does (tenant and master key id: "
            f"`{done['encrypted']}`)."
        )
    return (
        " `on` serves a copy of the store whose tenant `memex admin encryption encrypt` "
        f"sealed in {done['encrypt_seconds']:,.0f} s (tenant and master key id: `{done['encrypted']}`), with the audit "
        "trail on; `off` the plain store with `MEMEX_AUDIT=0` and no master key."
    )


def first_recall(report: dict[str, Any]) -> float:
    return float(np.median([r["server"]["first_recall_ms"] for r in report["runs"]]))


def profile_markdown(prof: dict[str, Any]) -> str:
    p = prof.get("profile") or {}
    if "samples" not in p:
        return f"Profile of {prof['phase']}: {p.get('error', 'none taken')}"
    lines = [
        f"Where the server's time goes, {PHASE_NAMES[prof['phase']]}, {prof.get('mode', MODES[0])} "
        f"({prof['summary']['throughput']:,.0f} req/s while sampled; py-spy, "
        f"{p['samples']:,} samples of busy threads):",
        "",
        "| area (the innermost frame's package) | share |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {share:.0%} |" for name, share in p["areas"]]
    lines += ["", "| function, inclusive | share |", "|---|---:|"]
    lines += [f"| `{name}` | {share:.0%} |" for name, share in p["inclusive"][:15]]
    return "\n".join(lines)


def plain(report: dict[str, Any]) -> str:
    lines = [
        report["command"],
        f"load average before {report['environment']['load_before']}, "
        f"after {report['environment']['load_after']}",
    ]
    for p in report["phases"]:
        think = (
            f"think {p['think_s']:.1f} s, offered {p['offered_per_s']:,.0f}/s"
            if p["think_s"]
            else "closed loop"
        )
        lines.append(f"{PHASE_NAMES[p['phase']]}, {p['clients']:,} clients, {think}:")
        for mode in MODES:
            a = p["by_mode"][mode]
            per_op = "  ".join(
                f"{op} {a['ops'][op]['ok']:,} ok {_pair(a['ops'][op])} ms"
                for op in OPS
                if a["ops"][op]["ok"]
            )
            lines.append(
                f"  {mode:>6}: {a['throughput']:,.0f} req/s, "
                f"p50/p99 {_pair(a)} ms  [{per_op}]  errors: {_errors(a)}  "
                f"server {a['server_cpu_cores']:.2f} cores, client {a['client_cpu_us_per_request']:,.0f} µs/req"
            )
        r = p["first_over_second"]
        lines.append(
            f"  {MODES[0]} ÷ {MODES[1]}: throughput {_ratio(r['throughput'])}, "
            f"p50 {_ratio(r['p50'])}, "
            f"p99 {_ratio(r['p99'])}"
        )
    t = report["total"]
    lines.append(
        f"all phases, {MODES[0]} ÷ {MODES[1]}: throughput {_ratio(t['throughput'])}, "
        f"p50 {_ratio(t['p50'])}, p99 {_ratio(t['p99'])}, "
        f"server CPU per request {_ratio(t['server_cpu_ms_per_request'])}"
    )
    for g in report["goals"]:
        lines.append(f"goal: {g['goal']}: {g['measured']}: {'met' if g['met'] else 'NOT met'}")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("uvicorn", "fastapi", "httpx", "aiohttp", "uvloop"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def uvicorn_backlog() -> int | None:
    try:
        import inspect

        import uvicorn

        return int(inspect.signature(uvicorn.Config).parameters["backlog"].default)
    except (ImportError, KeyError, TypeError, ValueError):
        return None


def command_line() -> str:
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add = parser.add_argument
    add("--size", type=int, default=100_000, help="memories in the store")
    add("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo dev directory")
    add("--workdir", type=Path, help="where the store and logs go (default: a temp dir)")
    add("--keep", action="store_true", help="keep the store as built (to --reuse it later)")
    add("--reuse", type=Path, metavar="DIR", help="serve a copy of DIR/latency-SIZE.db")
    add("--embedder", choices=("wordllama", "minilm"), default="wordllama")
    add("--seed", type=int, default=1234)
    add("--phases", default="capacity,get,clients", help="of capacity, get, clients")
    add("--clients", default="100,1000", help="client counts of the thinking phases")
    add("--capacity-clients", type=int, default=50, help="clients of the closed loops")
    add("--think", default="auto", help="mean think time in seconds, or auto")
    add(
        "--utilisation",
        type=float,
        default=0.5,
        help="auto think: the largest count's share of capacity",
    )
    add("--seconds", type=float, default=20, help="measured seconds per run")
    add("--warmup", type=float, default=5, help="warm-up seconds per run (plus one think time)")
    add("--ramp-rate", type=float, default=200, help="clients joining per second")
    add("--rounds", type=int, default=2, help="runs per phase and mode")
    add("--procs", type=int, default=2, help="load-generator processes")
    add("--http-client", choices=("aiohttp", "httpx"), default="aiohttp")
    add("--timeout", type=float, default=30, help="seconds before a request counts as timed out")
    add("--ids", type=int, default=10_000, help="existing ids that get draws from")
    add("--api-key", help="the key auth runs present (default: the first start's owner key)")
    add("--command", help="the server command before --store (default: python -m memex serve)")
    add(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="py-spy the server after, in each mode",
    )
    add("--py-spy", help="the py-spy executable (default: on PATH or beside python)")
    add("--quiet", type=float, default=1.0, help="wait before a run for the busy share ≤ this")
    add("--quiet-wait", type=float, default=0, help="seconds to wait for --quiet at most")
    add(
        "--features",
        metavar="on,off",
        help="compare limits, quotas, audit and encryption on and off (both with auth) "
        "instead of auth on and off; limits,off or sealed,off: one part of them only "
        "(rate limits and quotas; the audit trail and encryption)",
    )
    add("--markdown", action="store_true", help="print markdown tables")
    add("--json", type=Path, metavar="PATH", help="write every figure here")
    args = parser.parse_args(argv)
    if args.features is not None:
        args.features = args.features.replace(" ", "")
        if args.features not in [f"{mode},off" for mode in FEATURE_MODES]:
            parser.error("--features takes on,off (or limits,off or sealed,off)")
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phase_list or set(args.phase_list) - {"capacity", "get", "clients"}:
        parser.error("--phases takes capacity, get and clients")
    try:
        args.client_counts = [int(c.replace("_", "")) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        parser.error("--clients must be comma-separated whole numbers")
    if "clients" in args.phase_list and (not args.client_counts or min(args.client_counts) < 1):
        parser.error("--clients needs at least one positive count")
    if args.think != "auto":
        try:
            args.think = float(args.think)
        except ValueError:
            parser.error("--think is a number of seconds or auto")
        if args.think <= 0:
            parser.error("--think must be positive")
    elif "clients" in args.phase_list and "capacity" not in args.phase_list:
        parser.error("--think auto needs the capacity phase")
    if args.size < 1_000 or args.seconds <= 0 or args.rounds < 1 or args.procs < 1:
        parser.error("--size ≥ 1000, --seconds > 0, --rounds ≥ 1 and --procs ≥ 1")
    if args.reuse and args.workdir and args.reuse.resolve() == args.workdir.resolve():
        parser.error("--reuse needs a --workdir of its own: the copy is made there")
    if importlib.util.find_spec(args.http_client) is None:
        parser.error(
            f"--http-client {args.http_client} is not installed: "
            "pip install -e '.[server,bench]' (or choose --http-client httpx)"
        )
    return args


def run_phases(ctx: Context, specs: Sequence[PhaseSpec]) -> None:
    for spec in specs:
        log(f"[{spec.name}, {spec.clients:,} clients]")
        for round_no in range(ctx.args.rounds):
            for mode in order(round_no):
                ctx.runs.append(run_phase(ctx, spec, mode, round_no))


def set_high_quotas(store: Path) -> None:
    """Quotas on the home tenant so high that none refuses, so that the ``on`` runs check
    every write against them (the home tenant has none by default)."""
    subprocess.run(
        [sys.executable, "-m", "memex", "admin", "quota", "set", "--store", str(store),
         *("--memories", HIGH, "--storage-mb", HIGH, "--calls-per-hour", HIGH)],
        check=True, capture_output=True, cwd=Path(memex.__file__).resolve().parent.parent,
    )  # fmt: skip


def memex_cli(*argv: str, env: dict[str, str | None]) -> str:
    """Run ``python -m memex ARGV`` with ``env``'s changes; its output (exit on failure)."""
    environment = {k: v for k, v in os.environ.items() if k not in env}
    environment.update({k: v for k, v in env.items() if v is not None})
    done = subprocess.run(
        [sys.executable, "-m", "memex", *argv],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(memex.__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"memex {' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def merge_fulltext(store: Path) -> None:
    """Merge a closed store's FTS5 full-text index into one segment, as
    ``encryption encrypt`` does (``memex.storage.sqlite.purge.merge_fulltext``)."""
    from memex.storage.sqlite.purge import merge_fulltext as merge

    conn = sqlite3.connect(store)
    try:
        merge(conn)
        conn.commit()
    finally:
        conn.close()


def prepare_features(
    served: Path, workdir: Path
) -> tuple[Path, Path, dict[str, dict[str, str | None]], dict[str, Any]]:
    """The ``on`` mode's store: a copy of ``served`` (which ``off`` serves as it is) whose
    home tenant is sealed under a fresh master key, written to ``workdir/master.key``;
    return the copy, the key file, each mode's environment and what was done."""
    key_file = workdir / "master.key"
    key_file.touch(mode=0o600)
    key_file.write_text(os.urandom(32).hex() + "\n", encoding="ascii")
    sealed = served.with_name(f"{served.stem}-encrypted{served.suffix}")
    # `encryption encrypt` leaves the full-text index merged into one segment (sealing
    # rewrote every row's entry): the plain store's is merged the same way first, so the
    # two modes differ by the features only.
    merge_fulltext(served)
    log(f"copying {served.name} to {sealed.name} and encrypting its tenant")
    copy_store(served, sealed)
    env = {mode: dict(changes) for mode, changes in MODE_ENV.items()}
    env["on"]["MEMEX_MASTER_KEY_FILE"] = env["sealed"]["MEMEX_MASTER_KEY_FILE"] = str(key_file)
    started = time.perf_counter()
    memex_cli("admin", "encryption", "encrypt", "--store", str(sealed), env=env["on"])
    seconds = time.perf_counter() - started
    listed = memex_cli("admin", "encryption", "list", "--store", str(sealed), env=env["on"])
    rows = [" ".join(line.split()) for line in listed.strip().splitlines()[1:]]  # no header
    if not rows:
        raise SystemExit(f"no tenant of {sealed} is encrypted after `encryption encrypt`")
    log(f"  encrypted in {seconds:,.0f} s: {'; '.join(rows)}")
    return sealed, key_file, env, {"encrypt_seconds": seconds, "encrypted": "; ".join(rows)}


def main(argv: Sequence[str] | None = None) -> int:
    global MODES
    args = parse(argv)
    if args.features is not None:
        MODES = (args.features.split(",")[0], "off")
    started = time.perf_counter()
    load_before = load_average()
    corpus = load_corpus(args.data)
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="memex-server-")) if own_workdir else args.workdir
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    n = args.size
    kept = workdir / f"latency-{n}.db"
    served = workdir / f"server-{n}.db"
    store: dict[str, Any] = {"memories": n, "served": str(served)}
    sealed: Path | None = None
    key_file: Path | None = None
    try:
        if args.reuse:
            source = args.reuse.resolve() / kept.name
            if not source.is_file():
                raise SystemExit(f"no store to reuse at {source} (keep one with --workdir --keep)")
            log(f"copying {source}")
            copy_store(source, served)
            store["reused"] = str(source)
        else:
            log(f"[{n:,}] building the store")
            target = kept if args.keep else served
            remove_store(target)
            store["built"] = build_store(target, n, corpus, args.seed, args.embedder)
            if args.keep:
                copy_store(kept, served)
        ids = sample_ids(served, args.ids, args.seed)
        command = (
            shlex.split(args.command) if args.command else [sys.executable, "-m", "memex", "serve"]
        )
        key = owner_key(command, served, workdir, args.api_key or os.environ.get("MEMEX_API_KEY"))
        ctx = Context(
            args, command, served, key, tuple(corpus.questions), tuple(ids), corpus, workdir
        )
        if args.features is not None:
            set_high_quotas(served)  # before the copy: both stores hold the same directory
            if MODES[0] == "limits":  # both modes serve the plain store: nothing to seal
                ctx.env = {mode: dict(changes) for mode, changes in MODE_ENV.items()}
                store["features"] = {"parts": "limits"}
            else:
                sealed, key_file, ctx.env, store["features"] = prepare_features(served, workdir)
                ctx.stores = {MODES[0]: sealed}
        cap = args.capacity_clients
        first = [
            PhaseSpec(name, cap, 0.0, weights)
            for name, weights in (("capacity", MIX), ("get", GET_ONLY))
            if name in args.phase_list
        ]
        run_phases(ctx, first)
        think: float = 0.0
        thinking: list[PhaseSpec] = []
        if "clients" in args.phase_list:
            if args.think == "auto":
                capacity = min(
                    aggregate([r for r in ctx.runs if r["phase"] == "capacity" and r["mode"] == m])[
                        "throughput"
                    ]
                    for m in MODES
                )
                think = max(args.client_counts) / (args.utilisation * max(capacity, 1e-3))
                log(
                    f"think time {think:.2f} s: {max(args.client_counts):,} clients offer "
                    f"{args.utilisation:.0%} of the capacity, {capacity:,.0f} req/s"
                )
            else:
                think = float(args.think)
            thinking = [PhaseSpec("clients", c, think, MIX) for c in args.client_counts]
            run_phases(ctx, thinking)
        profiles = []
        if args.profile > 0:
            log(f"[profiling the server for {args.profile:.0f} s per phase]")
            for spec in first:
                for mode in MODES:
                    prof = run_phase(ctx, spec, mode, 0, profile=args.profile)
                    profiles.append(
                        {
                            "phase": spec.name,
                            "mode": mode,
                            "summary": prof["summary"],
                            "profile": prof.get("profile"),
                        }
                    )
        specs = [*first, *thinking]
        phases = phase_table(ctx, specs)
        total = total_ratio(ctx, specs)
        targets = goals(phases, max(args.client_counts) if thinking else 0)
        if args.features is not None:
            targets.append(feature_goal(phases, total))
        env_versions = versions()
        report: dict[str, Any] = {
            "command": command_line(),
            "environment": {
                "memex": memex.__version__,
                "memex_source": memex_source(),
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_before": load_before,
                "load_after": load_average(),
                "somaxconn": somaxconn(),
                "uvicorn_backlog": uvicorn_backlog(),
                "uvicorn_keep_alive_default_s": 5,
                "http_client": args.http_client,
                "http_client_version": env_versions[args.http_client],
                "versions": env_versions,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "workdir": str(workdir),
            },
            "settings": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
                if k not in ("api_key",)
            },
            "store": store,
            "think_s": think,
            "phases": phases,
            "total": total,
            "goals": targets,
            "runs": ctx.runs,
            "profiles": profiles,
            "total_seconds": time.perf_counter() - started,
        }
    finally:
        remove_store(served)
        if sealed is not None:
            remove_store(sealed)
        if key_file is not None:
            key_file.unlink(missing_ok=True)
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(jsonable(report), indent=2), encoding="utf-8")
    print(markdown(report) if args.markdown else plain(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

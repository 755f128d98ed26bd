"""Machine instructions per request that rate limits, quotas, the audit trail and
encryption at rest add to the HTTP API, counted by valgrind (docs/benchmarks.md,
"Limits, audit and encryption").

``benchmarks/server.py --features on,off`` measures the features' cost as users meet it:
throughput of a real server under load, on ÷ off. On a shared 2-core machine one round
of it differs from the next by about ±10%, more than the cost looked for. This script
counts instead what the server's code executes per request, a figure that noise does
not move, in the same two setups:

* ``on``: rate limits (so high that none refuses) and the tenant's quotas (set as
  high), ``MEMEX_AUDIT=1``, and the tenant encrypted (a copy of the store sealed with
  ``memex admin encryption encrypt`` under a fresh master key);
* ``off``: no limits, no quotas, ``MEMEX_AUDIT=0``, the plain copy.

Each setup is built in process with ``create_app`` over its own copy of a store kept by
``benchmarks/latency.py --keep`` (``--reuse DIR``), both copies' full-text indexes
merged alike (as ``server.py --features`` does), and requests go straight into the ASGI
app with an owner key: authentication, routing, the features and the store, without
uvicorn and sockets (the same in both modes but for the ``RateLimit-*`` fields). Under
``valgrind --tool=cachegrind``, one child process makes ``--warm`` requests (``get``:
each of ``--warm`` ids once, so the opened values are kept as a long-running server
keeps them; ``recall``: as many questions) and then ``--requests`` more drawn from the
same ids or questions; another makes the warm requests only. The difference over
``--requests`` is the count per request; on ÷ off is the features' share. The read
counts' timed background write is held off in both and OpenBLAS keeps to one thread
(see ``main``), so a count is the same from one run to the next, to a few hundred
instructions. ``remember``
writes ``--requests`` new memories after the warm ones.

    .venv/bin/python benchmarks/request_cost.py --reuse .bench/kept2 --workdir W

Needs valgrind (Debian's ``valgrind`` package). Reports JSON (``--json``) and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency import (
    KINDS,
    PROJECTS,
    TAGS,
    copy_store,
    load_corpus,
    log,
    memex_source,
)
from server import (
    HIGH,
    KEY_RE,
    memex_cli,
    prepare_features,
    sample_ids,
    set_high_quotas,
)

OPS = ("get", "recall", "remember")
MODES = ("on", "off")
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


# -- the child: requests into the ASGI app ------------------------------------------------


def child(mode: str, op: str, store: Path, key: str, inputs: Path, warm: int, count: int) -> None:
    """Make ``warm`` then ``count`` requests of ``op`` against ``mode``'s app, then exit."""
    from memex import Memex
    from memex.core.limits import Rate
    from memex.interfaces.http.app import create_app
    from memex.security.limits import LimitPolicy

    os.environ["MEMEX_AUDIT"] = "1" if mode == "on" else "0"
    high = Rate(float(HIGH), int(HIGH))
    limits = LimitPolicy(key=high, tenant=high) if mode == "on" else None
    mx = Memex.open(store)
    app = create_app(mx, limits=limits)
    given = json.loads(inputs.read_text(encoding="utf-8"))
    rng = random.Random(7)
    words = " ".join(given["questions"]).split()

    def request() -> tuple[str, str, dict[str, Any] | None]:
        if op == "get":
            return "GET", f"/v1/memories/{rng.choice(given['ids'][:warm])}", None
        if op == "recall":
            return "POST", "/v1/recall", {"query": rng.choice(given["questions"][:warm]), "k": 10}
        content = " ".join(rng.choice(words) for _ in range(rng.randint(12, 40)))
        return (
            "POST",
            "/v1/memories",
            {
                "content": f"{content} {rng.random()}",
                "kind": rng.choice(KINDS),
                "tags": rng.sample(TAGS, 2),
                "metadata": {"session": rng.randint(1, 500)},
                "scope": {"project": rng.choice(PROJECTS)},
            },
        )

    def warming(i: int) -> tuple[str, str, dict[str, Any] | None]:
        if op == "get":
            return "GET", f"/v1/memories/{given['ids'][i]}", None
        if op == "recall":
            return "POST", "/v1/recall", {"query": given["questions"][i], "k": 10}
        return request()

    async def send(method: str, path: str, body: dict[str, Any] | None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode())]
        if body is not None:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(raw)),
            ]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        sent: list[dict[str, Any]] = []
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if done:
                await asyncio.sleep(3600)
            done = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def collect(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, collect)
        if sent[0]["status"] not in (200, 201):
            raise SystemExit(f"{method} {path} answered {sent[0]['status']}: {sent[1:]}")

    async def run() -> None:
        for i in range(warm):
            await send(*warming(i))
        for _ in range(count):
            await send(*request())

    asyncio.run(run())
    sys.stdout.flush()
    os._exit(0)  # no teardown: its instructions are not the requests'


# -- the parent: stores, children under valgrind ----------------------------------------


def instructions(argv: list[str], env: dict[str, str], out: Path | None = None) -> int:
    """Instructions valgrind counted in a child (``I refs``); its per-function counts
    written to ``out`` if given (for ``cg_diff`` and ``cg_annotate``)."""
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no",
         f"--cachegrind-out-file={out or '/dev/null'}", sys.executable, __file__, "--child",
         *argv],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"a child failed ({' '.join(argv[:2])}): {done.stderr.strip()[-800:]}")
    return int(found[1].replace(",", ""))


def owner_key(store: Path, env: dict[str, str | None]) -> str:
    """A new owner key of the store's tenant."""
    made = memex_cli(
        "admin", "key", "create", "--store", str(store), "--role", "owner",
        "--name", "request cost", env=env,
    )  # fmt: skip
    found = KEY_RE.search(made)
    if found is None:
        raise SystemExit("memex admin key create printed no key")
    return found[0]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--reuse", type=Path, required=True, help="folder of a kept latency-SIZE.db")
    add("--size", type=int, default=100_000, help="which kept store (its memories)")
    add("--workdir", type=Path, help="where the copies go (default: a temporary folder)")
    add("--ops", default=",".join(OPS), help="operations to count, of: " + ", ".join(OPS))
    add("--warm", type=int, default=1000, help="warm requests (get: ids; recall: questions)")
    add("--requests", type=int, default=2000, help="requests counted (recall: a tenth)")
    add("--data", type=Path, default=Path("../shared/data/locomo-dev"), help="LoCoMo folder")
    add("--json", type=Path, help="write the report here")
    add("--profiles", action="store_true",
        help="keep valgrind's per-function counts in the work folder (cachegrind.OP.MODE.N; "
             "cg_diff the N=0 file against the other, then cg_annotate, to see where a "
             "mode's instructions go)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, op, store, key, inputs, warm, count = sys.argv[2:9]
        child(mode, op, Path(store), key, Path(inputs), int(warm), int(count))
        return 0
    args = parse(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("request_cost.py needs valgrind: apt-get install valgrind")
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    if not ops or any(op not in OPS for op in ops):
        raise SystemExit(f"--ops takes some of {', '.join(OPS)}, not {args.ops!r}")
    source = args.reuse.resolve() / f"latency-{args.size}.db"
    if not source.is_file():
        raise SystemExit(f"no store to reuse at {source} (keep one with latency.py --keep)")
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="memex-cost-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    plain = workdir / f"plain-{args.size}.db"
    log(f"copying {source.name}")
    copy_store(source, plain)
    set_high_quotas(plain)
    sealed, _, envs, done = prepare_features(plain, workdir)  # merges both full-text indexes
    stores = {"on": sealed, "off": plain}
    keys = {mode: owner_key(stores[mode], envs[mode]) for mode in MODES}
    corpus = load_corpus(args.data)
    inputs = workdir / "inputs.json"
    ids = sample_ids(plain, max(args.warm, 1), 1)
    inputs.write_text(json.dumps({"ids": ids, "questions": list(corpus.questions)}))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")}
    base_env["PYTHONHASHSEED"] = "0"
    # Read counts are written by a thread every few seconds: under valgrind that lands on
    # a different request each time and moves the count by up to 10%, so it is held off
    # (its cost, a batched UPDATE, is the same in both modes).
    base_env["MEMEX_ACCESS_FLUSH_SECONDS"] = "1000000"
    # OpenBLAS's threads wait for work by spinning, for as long as the scheduler lets
    # them: under valgrind that added 0 to 30,000 instructions a request, by chance.
    base_env["OPENBLAS_NUM_THREADS"] = "1"
    root = str(Path(__file__).resolve().parent.parent)
    base_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, base_env.get("PYTHONPATH")) if p)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "memex_source": memex_source(),
        "store": {"memories": args.size, "encrypted": done},
        "warm": args.warm,
        "ops": {},
    }
    for op in ops:
        count = max(1, args.requests // 10) if op == "recall" else args.requests
        warm = min(args.warm, len(corpus.questions)) if op == "recall" else args.warm
        per: dict[str, float] = {}
        for mode in MODES:
            env = dict(base_env)
            env.update({k: v for k, v in envs[mode].items() if v is not None})
            counts = []
            for n in (0, count):
                copy = workdir / f"run-{mode}.db"
                copy_store(stores[mode], copy)
                argv = [mode, op, str(copy), keys[mode], str(inputs), str(warm), str(n)]
                out = workdir / f"cachegrind.{op}.{mode}.{n}" if args.profiles else None
                counts.append(instructions(argv, env, out))
            per[mode] = (counts[1] - counts[0]) / count
            log(f"{op} {mode}: {per[mode]:,.0f} instructions a request ({count:,} counted)")
        report["ops"][op] = {
            "requests": count,
            "instructions": per,
            "on_over_off": per["on"] / per["off"],
        }
    report["seconds"] = time.perf_counter() - started
    print("| operation | requests counted | on (instructions) | off | on ÷ off |")
    print("|---|---:|---:|---:|---:|")
    for op, found in report["ops"].items():
        on, off = found["instructions"]["on"], found["instructions"]["off"]
        print(f"| {op} | {found['requests']:,} | {on:,.0f} | {off:,.0f} | {on / off:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

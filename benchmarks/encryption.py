"""The cost of encryption at rest: get and recall on a plain and an encrypted store.

Two stores of ``--size`` memories (the same texts: random sentences over a vocabulary of
5,000 made-up words, 12-40 words each, with metadata) are filled, one with a master
key, then ``get(id)`` (2,000 random ids) and ``recall(k=10)`` (300 queries of 2-4 words,
hybrid, each with its own query vector so no cache answers it) run on both,
interleaved, in the same process. Prints p50 and p99 of each and the ratio.

    PYTHONPATH=. .venv/bin/python benchmarks/encryption.py --size 20000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from memex import Memex, Settings


def _texts(n: int, rng: random.Random) -> list[str]:
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
        for _ in range(5000)
    ]
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(12, 40))) for _ in range(n)]


def _fill(path: Path, settings: Settings, texts: list[str]) -> list[str]:
    db = Memex.open(path, settings=settings)
    ids: list[str] = []
    try:
        for start in range(0, len(texts), 5000):
            batch = [
                {"content": t, "metadata": {"n": start + i}}
                for i, t in enumerate(texts[start : start + 5000])
            ]
            ids.extend(m.id for m in db.remember_many(batch))
        db.build_indexes()
    finally:
        db.close()
    return ids


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--gets", type=int, default=2_000)
    parser.add_argument("--recalls", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    texts = _texts(args.size, rng)
    work = Path(tempfile.mkdtemp(prefix="memex-enc-bench-"))
    variants = {"plain": Settings(), "encrypted": Settings(master_key=os.urandom(32).hex())}
    ids = {name: _fill(work / f"{name}.db", s, texts) for name, s in variants.items()}
    handles = {name: Memex.open(work / f"{name}.db", settings=s) for name, s in variants.items()}
    words = [w for t in texts[:2000] for w in t.split()]
    queries = [" ".join(rng.sample(words, rng.randint(2, 4))) for _ in range(args.recalls)]
    vectors = [handles["plain"].embed_query(q) for q in queries]
    times: dict[tuple[str, str], list[float]] = {}
    picks = [rng.randrange(args.size) for _ in range(args.gets)]
    for name, db in handles.items():  # warm both: vector matrix, indexes
        db.recall(queries[0], 10, query_vector=vectors[0])
        db.get(ids[name][0])
    order = list(handles)
    for i, pick in enumerate(picks):
        for name in order if i % 2 else reversed(order):
            start = time.perf_counter()
            handles[name].get(ids[name][pick])
            times.setdefault((name, "get"), []).append(time.perf_counter() - start)
    for i, (query, vector) in enumerate(zip(queries, vectors, strict=True)):
        for name in order if i % 2 else reversed(order):
            start = time.perf_counter()
            handles[name].recall(query, 10, query_vector=vector)
            times.setdefault((name, "recall"), []).append(time.perf_counter() - start)
    for db in handles.values():
        db.close()
    print(f"{args.size} memories; ms")
    for op in ("get", "recall"):
        p = {n: (_pct(times[(n, op)], 0.5), _pct(times[(n, op)], 0.99)) for n in order}
        mean = {n: statistics.fmean(times[(n, op)]) for n in order}
        print(
            f"{op:7} plain p50 {p['plain'][0]:.3f} p99 {p['plain'][1]:.3f} | encrypted p50 "
            f"{p['encrypted'][0]:.3f} p99 {p['encrypted'][1]:.3f} | mean ratio "
            f"{mean['encrypted'] / mean['plain']:.3f}"
        )


if __name__ == "__main__":
    main()

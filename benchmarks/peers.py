"""memex beside two popular memory libraries, mem0 and chromadb: speed at 100K, LoCoMo quality.

What it measures
----------------
Two parts (``--parts``), each in one process, so every figure of a part comes from the
same run on the same (shared, noisy) machine and the ratios between systems are fair.

**speed**: one set of ``--size`` memories (100,000 by default) made exactly as
``benchmarks/latency.py`` makes them (its ``load_corpus`` and ``Generator``, imported, same
seed: LoCoMo turns from ``../shared/data/locomo-dev`` under a random speaker plus 3-10
random corpus words, so every content is distinct) is stored in three systems:

* memex: ``Memex.remember_many`` in batches of 5,000 (``Settings()``, embedder
  ``wordllama``), memories with kind, tags, metadata, ``created_at`` and a project scope;
* chromadb: ``PersistentClient`` (on disk), one collection (cosine space, default HNSW),
  ``collection.add(ids, documents, metadatas)`` in batches of 5,000 (chroma embeds the
  documents through the embedding function below);
* mem0: ``Memory.add(text, user_id="bench", metadata=..., infer=False)``, one call per
  memory (its API has no batch add with per-memory metadata; ``infer=False`` stores the
  text as is, with no LLM call), vector store qdrant in local path mode (on disk,
  qdrant-client's embedded mode; mem0's default store), history in SQLite.

The batches go round-robin (memex, chroma, mem0, then the next batch in rotated order)
so drift in the machine's load falls on all three alike. Every memory of every system is
stored through the timed call. (mem0 stores 65-250 memories a second here, depending on
the machine's load, so its 100,000 take 7-25 minutes. Loading it through its vector
store's batch ``insert`` instead was tried and is no faster: qdrant's local mode commits
one SQLite transaction per point either way.)

Then search, top 10, over the whole store, for 200 distinct LoCoMo questions
(``--queries``; the same questions ``latency.py`` uses at that size), 20 other questions
first as warm-up, each question asked of every system in rotated order; every time is of
one call, query string in, results out, embedding the query included:

* memex ``recall(q, k=10)`` (hybrid, the default) and, for a like-for-like vector-only
  figure, ``v = mx.embed_query(q)`` (the vector recall itself would use; plain
  ``embed`` on older memex) + ``recall(q, k=10, mode="vector", query_vector=v)``;
* chromadb ``collection.query(query_texts=[q], n_results=10)``;
* mem0 ``Memory.search(q, top_k=10, filters={"user_id": "bench"})`` (a user, agent or run
  filter is mandatory in mem0; every memory has that user). qdrant's local mode checks
  the filter point by point in Python, about 2 s a search at 100K here, so mem0 is
  asked only the first ``--mem0-queries`` questions (50 by default).

Ratios are memex's speed divided by the peer's (memories/s over memories/s; the peer's
latency over memex's), from the same run.

``--systems`` names the systems to run: memex and one or both of ``chromadb`` and ``mem0``
(default: all three), in both parts. A peer left out is neither imported, built, asked
nor shown; the batches and questions rotate over the others. ``--parts speed --systems
memex,chromadb`` takes about 5-8 minutes at 100,000 memories (chromadb's ingest is most
of it), against 15-35 with mem0: enough to compare two memex source trees side by side.

**quality**: ``benchmarks/locomo.py``'s protocol (its loader and scorer, imported): each
LoCoMo dev turn is one memory, one scope per conversation (memex project, mem0
``user_id``, a chroma ``where`` on a ``conv`` metadata field), categories 1-4 with
evidence; R@5, R@10, Hit@5 and MRR over the top 50, by category. Systems: memex hybrid
and vector (``locomo.run_memex``, with the query vector memex's own recall would use,
``mx.embed_query`` where memex has it), dense exact cosine (``locomo.run_dense``),
chromadb (the plain query vector passed as ``query_embeddings``; k=10 timed, then k=50), mem0
(``search(q, top_k=50, filters={"user_id": conv}, threshold=0.0)``, one call per question,
its head is the top 10; ``threshold=0`` returns a full list where the default 0.1 could
only drop hits; mem0 embeds the query itself, inside the timed call).

The same embedder everywhere
----------------------------
All three systems use one object: memex's default embedder (WordLlama ``l2_supercat``,
256 dimensions, static token embeddings), taken from the memex store opened with
``embedder="wordllama"`` (``mx.embedder``). chromadb gets it through a custom
``EmbeddingFunction`` (``__call__`` = ``embedder.embed``). mem0 is built with its default
embedder and LLM objects (OpenAI), then ``Memory.embedding_model`` is replaced by an
adapter implementing mem0's ``EmbeddingBase`` (``embed(text, memory_action)``,
``embed_batch``) over the same embedder. mem0 only constructs its OpenAI LLM and
embedder objects, which need some ``OPENAI_API_KEY``: a dummy value is set in this process
only; ``infer=False`` never calls the LLM, and the replaced embedder is never called.

Set in this process: ``MEM0_TELEMETRY=False`` and chroma's ``anonymized_telemetry=False``
(no network here; telemetry would only retry sends), ``MEM0_DIR`` inside the work dir.
mem0's hybrid extras are not installed: its BM25 leg needs fastembed, which downloads
the ``Qdrant/bm25`` files from a model hub at run time, and its lemmatizer and entity
boosts need spaCy's ``en_core_web_sm``, also downloaded at run time; neither can be
fetched here. Without them mem0 searches by vector similarity only (it logs so), which is
what ``pip install mem0ai`` gives.

How to run (from the repository root), in a venv of its own so ``.venv`` stays clean::

    python3 -m venv .bench/peers-venv
    .bench/peers-venv/bin/pip install -e . mem0ai==2.2.1 chromadb==1.5.9 qdrant-client==1.20.0 rank-bm25
    .bench/peers-venv/bin/python benchmarks/peers.py --markdown --json .bench/peers.json
    .bench/peers-venv/bin/python benchmarks/peers.py --parts quality --markdown
    .bench/peers-venv/bin/python benchmarks/peers.py --parts speed --systems memex,chromadb

The venv holds memex as an editable install of this checkout; ``PYTHONPATH=<tree>``
before the command makes the same venv import memex from another source tree instead
(``memex_source`` in the JSON records which one ran).

None of these pulls torch; if a later version does, pin ``torch==2.13.0`` (a CPU build).
The speed part takes 15-35 minutes on 2 cores (mostly mem0), the quality part 4-8.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import logging
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import memex
from memex import Memex, Settings
from memex.embedders.base import Embedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import (
    BATCH,
    QUERIES,
    WARMUP_QUERIES,
    Corpus,
    Generator,
    disk_bytes,
    load_corpus,
    log,
    memex_source,
    stats_ms,
    store_files,
)
from locomo import (
    DEFAULT_DATA,
    DEPTH,
    Conversation,
    Question,
    SystemResult,
    command_line,
    load_conversations,
    quality_tables,
    remember_turns,
    run_bm25,
    run_dense,
    run_memex,
    summarise,
)

INSTALL = (
    "python3 -m venv .bench/peers-venv && .bench/peers-venv/bin/pip install -e . "
    "mem0ai==2.2.1 chromadb==1.5.9 qdrant-client==1.20.0 rank-bm25"
)
EMBEDDER = "wordllama"
MEM0_USER = "bench"
SYSTEMS = {"memex": "memex", "chromadb": "chroma", "mem0": "mem0"}  # --systems name: key
PEER_LOGGERS = ("mem0", "qdrant_client", "chromadb", "py.warnings")


# -- the peers, behind the same embedder --------------------------------------------------


def import_peers(workdir: Path, systems: Sequence[str]) -> tuple[Any, Any]:
    """mem0 and chromadb (``None`` for one not in ``systems``), imported after the
    environment they read at import is set."""
    os.environ["MEM0_TELEMETRY"] = "False"
    os.environ["MEM0_DIR"] = str(workdir / "mem0-home")
    # mem0 constructs OpenAI LLM and embedder objects, which want a key; infer=False never
    # calls the LLM and the embedder is replaced before use, so no request is ever made.
    os.environ["OPENAI_API_KEY"] = "sk-unused-dummy-key-for-benchmarks"
    try:
        chromadb = importlib.import_module("chromadb") if "chroma" in systems else None
        mem0 = importlib.import_module("mem0") if "mem0" in systems else None
    except ImportError as exc:
        raise SystemExit(
            f"peers.py needs mem0 and chromadb ({exc.name} missing): {INSTALL}"
        ) from None
    return mem0, chromadb


class PeerLog(logging.Handler):
    """Collects the distinct warnings mem0, qdrant and chroma log (they are reported)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: dict[str, None] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(PEER_LOGGERS):
            text = f"{record.name}: {record.getMessage()}".strip()
            self.seen.setdefault(text.split("\n", 1)[0][:300], None)


def chroma_embedding_function(embedder: Embedder) -> Any:
    """A chromadb ``EmbeddingFunction`` over ``embedder`` (made here: chromadb is optional)."""
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

    class MemexEmbeddingFunction(EmbeddingFunction[Documents]):
        def __init__(self, inner: Embedder) -> None:
            self.inner = inner

        def __call__(self, input: Documents) -> Embeddings:
            return list(self.inner.embed(list(input)))

        @staticmethod
        def name() -> str:
            return "memex-wordllama"

        def get_config(self) -> dict[str, Any]:
            return {"embedder": self.inner.name}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> Any:
            from memex.embedders.open import make_embedder

            return MemexEmbeddingFunction(make_embedder(Settings(embedder=EMBEDDER)))

    return MemexEmbeddingFunction(embedder)


def mem0_embedder(embedder: Embedder) -> Any:
    """An adapter implementing mem0's ``EmbeddingBase`` over ``embedder``."""
    from mem0.embeddings.base import EmbeddingBase

    class MemexEmbedding(EmbeddingBase):  # type: ignore[misc]
        def __init__(self, inner: Embedder) -> None:
            super().__init__()
            self.inner = inner

        def embed(self, text: str, memory_action: str | None = None) -> list[float]:
            return [float(x) for x in self.inner.embed([text])[0]]

        def embed_batch(self, texts: Sequence[str], memory_action: str = "add") -> list[Any]:
            return self.inner.embed(list(texts)).tolist()

    return MemexEmbedding(embedder)


def open_chroma(chromadb: Any, path: Path, embedder: Embedder) -> tuple[Any, Any]:
    """A persistent client at ``path`` and a new cosine collection using ``embedder``."""
    client = chromadb.PersistentClient(
        path=str(path), settings=chromadb.Settings(anonymized_telemetry=False)
    )
    collection = client.create_collection(
        "bench",
        embedding_function=chroma_embedding_function(embedder),
        configuration={"hnsw": {"space": "cosine"}},
    )
    return client, collection


def open_mem0(mem0: Any, path: Path, embedder: Embedder) -> tuple[Any, float]:
    """A mem0 ``Memory`` on local qdrant under ``path``, embedder replaced; build seconds."""
    from mem0.configs.base import MemoryConfig

    path.mkdir(parents=True, exist_ok=True)
    config = MemoryConfig(
        vector_store={
            "provider": "qdrant",
            "config": {
                "collection_name": "bench",
                "path": str(path / "qdrant"),
                "embedding_model_dims": embedder.dimensions,
                "on_disk": True,
            },
        },
        history_db_path=str(path / "history.db"),
    )
    t0 = time.perf_counter()
    memory = mem0.Memory(config)
    seconds = time.perf_counter() - t0
    memory.embedding_model = mem0_embedder(embedder)
    return memory, seconds


def close_mem0(memory: Any) -> None:
    """Close mem0's history database and its qdrant client (quietly at exit otherwise)."""
    memory.close()
    memory.vector_store.client.close()


def query_vector(mx: Memex, query: str) -> Any:
    """The vector memex's own ``recall`` would search with (``embed_query`` where it exists)."""
    embed_query = getattr(mx, "embed_query", None)
    return embed_query(query) if embed_query else mx.embedder.embed([query])[0]


def tree_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def versions() -> dict[str, str]:
    """Installed versions of the peers and their stores."""
    out: dict[str, str] = {}
    for dist in ("mem0ai", "chromadb", "qdrant-client"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


# -- speed --------------------------------------------------------------------------------


def peer_metadata(item: dict[str, Any], created_at: Any) -> dict[str, Any]:
    """The memex item's metadata as a peer's flat metadata, with its creation time given
    as that peer wants it (mem0 keeps an ISO ``created_at``; chroma takes scalars)."""
    return {
        "project": item["scope"]["project"],
        "kind": item["kind"],
        "tags": item["tags"],
        **item["metadata"],
        "created_at": created_at,
    }


def speed(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Ingest the same memories into memex and the chosen peers, then time top-10 searches."""
    workdir.mkdir(parents=True, exist_ok=True)
    mem0, chromadb = import_peers(workdir, args.systems)
    n = args.size
    corpus: Corpus = load_corpus(args.data)
    rng = random.Random(args.seed + n)  # the questions latency.py asks at this size
    shuffled = corpus.questions[:]
    rng.shuffle(shuffled)
    if len(shuffled) < args.queries + WARMUP_QUERIES:
        raise SystemExit("not enough distinct questions in the corpus")
    queries = shuffled[: args.queries]
    warmup = shuffled[args.queries : args.queries + WARMUP_QUERIES]

    log(f"generating {n:,} memories")
    gen = Generator(corpus, args.seed + n)
    items = gen.items(0, n)

    memex_path = workdir / "memex.db"
    for f in store_files(memex_path):
        f.unlink(missing_ok=True)
    result: dict[str, Any] = {"memories": n, "batch": BATCH}
    mx = Memex.open(memex_path, settings=Settings(), embedder=EMBEDDER)
    client = memory = None
    try:
        embedder = mx.embedder
        result["embedder"] = embedder.name
        if chromadb is not None:
            client, collection = open_chroma(chromadb, workdir / "chroma", embedder)
        if mem0 is not None:
            memory, result["mem0_construct_s"] = open_mem0(mem0, workdir / "mem0", embedder)

        # Embedder alone on the same texts, memex's batch size: the floor under every ingest.
        t0 = time.perf_counter()
        eb = mx.settings.embed_batch_size
        for at in range(0, n, eb):
            embedder.embed([it["content"] for it in items[at : at + eb]])
        result["embed_alone_per_s"] = n / (time.perf_counter() - t0)

        def ingest_memex(batch: list[dict[str, Any]]) -> None:
            mx.remember_many(batch)

        def ingest_chroma(batch: list[dict[str, Any]]) -> None:
            collection.add(
                ids=[str(it["metadata"]["n"]) for it in batch],
                documents=[it["content"] for it in batch],
                metadatas=[peer_metadata(it, it["created_at"].timestamp()) for it in batch],
            )

        def ingest_mem0(batch: list[dict[str, Any]]) -> None:
            for it in batch:
                memory.add(
                    it["content"],
                    user_id=MEM0_USER,
                    metadata=peer_metadata(it, it["created_at"].isoformat()),
                    infer=False,
                )

        ingests: dict[str, Callable[[list[dict[str, Any]]], None]] = {
            "memex": ingest_memex,
            "chroma": ingest_chroma,
            "mem0": ingest_mem0,
        }
        systems = [(key, ingests[key]) for key in args.systems]
        seconds = dict.fromkeys((key for key, _ in systems), 0.0)
        started = time.perf_counter()
        for b, at in enumerate(range(0, n, BATCH)):
            batch = items[at : at + BATCH]
            turn = b % len(systems)
            for name, fn in systems[turn:] + systems[:turn]:
                t0 = time.perf_counter()
                fn(batch)
                seconds[name] += time.perf_counter() - t0
            done = at + len(batch)
            log(
                f"  {done:,}/{n:,}  "
                + "  ".join(f"{k} {done / v:,.0f}/s" for k, v in seconds.items())
                + f"  {time.perf_counter() - started:,.0f} s"
            )
        result["ingest"] = {
            **{f"{name}_per_s": n / s for name, s in seconds.items()},
            "seconds": seconds,
        }
        counts = {"memex": mx.stats().memories}
        if chromadb is not None:
            counts["chroma"] = collection.count()
        if mem0 is not None:
            counts["mem0"] = memory.vector_store.client.count("bench").count
        result["stored"] = counts
        log(f"stored: {counts}")

        # First search of each (loads indexes), then warm-up questions, all untimed in the table.
        probe = "what did she say about the weekend trip"
        firsts: dict[str, Callable[[], object]] = {
            "memex": lambda: mx.recall(probe, k=10),
            "chroma": lambda: collection.query(query_texts=[probe], n_results=10),
            "mem0": lambda: memory.search(probe, top_k=10, filters={"user_id": MEM0_USER}),
        }
        first: dict[str, float] = {}
        for name in seconds:
            t0 = time.perf_counter()
            firsts[name]()
            first[name] = time.perf_counter() - t0
        result["first_search_ms"] = {k: v * 1000 for k, v in first.items()}
        for q in warmup:
            mx.recall(q, k=10)
            if chromadb is not None:
                collection.query(query_texts=[q], n_results=10)

        def memex_vector(q: str) -> object:
            return mx.recall(q, k=10, mode="vector", query_vector=query_vector(mx, q))

        searches: dict[str, Callable[[str], object]] = {
            "memex_hybrid": lambda q: mx.recall(q, k=10),
            "memex_vector": memex_vector,
        }
        if chromadb is not None:
            searches["chroma"] = lambda q: collection.query(query_texts=[q], n_results=10)
        if mem0 is not None:
            searches["mem0"] = lambda q: memory.search(q, top_k=10, filters={"user_id": MEM0_USER})
        names = list(searches)
        times: dict[str, list[float]] = {name: [] for name in names}
        returned: dict[str, list[int]] = {name: [] for name in names}
        mem0_queries = args.mem0_queries if mem0 is not None else 0
        started = time.perf_counter()
        for i, q in enumerate(queries):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                if name == "mem0" and i >= args.mem0_queries:
                    continue
                t0 = time.perf_counter()
                out = searches[name](q)
                times[name].append(time.perf_counter() - t0)
                returned[name].append(count_hits(name, out))
            if (i + 1) % 25 == 0 or i + 1 == len(queries) or i < mem0_queries:
                log(f"  search: {i + 1}/{len(queries)}  {time.perf_counter() - started:,.0f} s")
        result["search"] = {
            name: {**stats_ms(times[name]), "mean_returned": float(np.mean(returned[name]))}
            for name in names
        }
        main_b, wal_b = disk_bytes(memex_path)
        result["disk_bytes"] = {"memex": main_b + wal_b}
        for name in args.systems[1:]:
            result["disk_bytes"][name] = tree_bytes(workdir / name)
    finally:
        mx.close()
        if memory is not None:
            close_mem0(memory)
        if client is not None and hasattr(client, "close"):
            client.close()
    result["queries"] = len(queries)
    if mem0 is not None:
        result["mem0_queries"] = min(args.mem0_queries, len(queries))
    return result


def count_hits(name: str, out: Any) -> int:
    """How many results one search returned."""
    if name.startswith("memex"):
        return len(out)
    if name == "chroma":
        return len(out["ids"][0])
    return len(out["results"])


# -- quality ------------------------------------------------------------------------------


def run_chroma_quality(
    chromadb: Any,
    path: Path,
    embedder: Embedder,
    conversations: Sequence[Conversation],
    questions: Sequence[Question],
    qvecs: Any,
) -> tuple[SystemResult, float]:
    """chromadb, one collection, a ``where`` per conversation; ingest seconds."""
    client, collection = open_chroma(chromadb, path, embedder)
    t0 = time.perf_counter()
    for conv in conversations:
        collection.add(
            ids=[f"{conv.conv}/{t.dia_id}" for t in conv.turns],
            documents=[t.content for t in conv.turns],
            metadatas=[
                {
                    "conv": conv.conv,
                    "dia_id": t.dia_id,
                    "session": t.session,
                    "session_date": t.session_date,
                    "created_at": t.created_at.timestamp(),
                }
                for t in conv.turns
            ],
        )
    ingest = time.perf_counter() - t0
    result = SystemResult("chromadb")
    for q, qv in zip(questions, qvecs, strict=True):
        ask = {"query_embeddings": [qv], "where": {"conv": q.conv}}
        t0 = time.perf_counter()
        out = collection.query(n_results=10, **ask)
        result.seconds.append(time.perf_counter() - t0)
        top = [m["dia_id"] for m in out["metadatas"][0]]
        ranked = [m["dia_id"] for m in collection.query(n_results=DEPTH, **ask)["metadatas"][0]]
        result.top10.append(top)
        result.ranked.append(ranked)
        result.mismatches += top != ranked[:10]
    if hasattr(client, "close"):
        client.close()
    return result, ingest


def run_mem0_quality(
    mem0: Any,
    path: Path,
    embedder: Embedder,
    conversations: Sequence[Conversation],
    questions: Sequence[Question],
) -> tuple[SystemResult, float]:
    """mem0, ``infer=False``, one ``user_id`` per conversation; ingest seconds."""
    memory, _ = open_mem0(mem0, path, embedder)
    try:
        t0 = time.perf_counter()
        for conv in conversations:
            for t in conv.turns:
                memory.add(
                    t.content,
                    user_id=conv.conv,
                    metadata={
                        "dia_id": t.dia_id,
                        "session": t.session,
                        "session_date": t.session_date,
                        "created_at": t.created_at.isoformat(),
                    },
                    infer=False,
                )
        ingest = time.perf_counter() - t0
        log(f"mem0: stored {sum(len(c.turns) for c in conversations)} turns in {ingest:.0f} s")
        result = SystemResult("mem0")
        started = time.perf_counter()
        for i, q in enumerate(questions):
            t0 = time.perf_counter()
            out = memory.search(q.question, top_k=DEPTH, filters={"user_id": q.conv}, threshold=0.0)
            result.seconds.append(time.perf_counter() - t0)
            ranked = [r["metadata"]["dia_id"] for r in out["results"]]
            result.ranked.append(ranked)
            result.top10.append(ranked[:10])
            if (i + 1) % 100 == 0:
                log(f"  mem0: {i + 1}/{len(questions)}  {time.perf_counter() - started:,.0f} s")
    finally:
        close_mem0(memory)
    return result, ingest


def quality(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """locomo.py's protocol with the chosen peers beside memex."""
    workdir.mkdir(parents=True, exist_ok=True)
    mem0, chromadb = import_peers(workdir, args.systems)
    conversations, stats = load_conversations(args.data)
    questions = [q for c in conversations for q in c.questions]
    results: list[SystemResult] = []
    ingest: dict[str, float] = {}
    store = workdir / "locomo.db"
    with Memex.open(store, settings=Settings(), embedder=EMBEDDER) as mx:
        embedder = mx.embedder
        ingest["memex"] = remember_turns(mx, conversations)
        memex_qvecs = np.stack([query_vector(mx, q.question) for q in questions])
        qvecs = embedder.embed([q.question for q in questions])
        mx.recall("warm up", k=5, scope={"project": conversations[0].conv})
        for name, mode in (("memex hybrid", "hybrid"), ("memex vector", "vector")):
            results.append(run_memex(mx, name, mode, questions, memex_qvecs))  # type: ignore[arg-type]
            log(f"{name}: done")
        results.append(run_bm25(conversations))
        results.append(run_dense(conversations, embedder.embed, qvecs))
        if chromadb is not None:
            chroma, ingest["chroma"] = run_chroma_quality(
                chromadb, workdir / "chroma-locomo", embedder, conversations, questions, qvecs
            )
            results.append(chroma)
            log("chromadb: done")
        if mem0 is not None:
            mem0_result, ingest["mem0"] = run_mem0_quality(
                mem0, workdir / "mem0-locomo", embedder, conversations, questions
            )
            results.append(mem0_result)
        embedder_name = embedder.name
    by_cat: dict[str, int] = {}
    for q in questions:
        by_cat[str(q.category)] = by_cat.get(str(q.category), 0) + 1
    return {
        "embedder": embedder_name,
        "data": {
            "conversations": stats.conversations,
            "turns": stats.turns,
            "questions": stats.questions,
            "questions_by_category": by_cat,
        },
        "ingest_seconds": ingest,
        "systems": {r.name: summarise(r, questions) for r in results},
    }


# -- output -------------------------------------------------------------------------------


def _ms(d: dict[str, float]) -> str:
    return f"{d['p50_ms']:,.2f} / {d['p99_ms']:,.2f}"


def _x(value: float) -> str:
    return f"{value:,.1f}×" if value >= 10 else f"{value:,.2f}×"


# A peer's key in the results: its column header and its name in the text.
PEERS = {"chroma": ("chromadb", "chromadb"), "mem0": ("mem0 (qdrant local)", "mem0")}


def speed_markdown(report: dict[str, Any]) -> list[str]:
    r = report["speed"]
    ing, s = r["ingest"], r["search"]
    n = r["memories"]
    hyb = s["memex_hybrid"]
    peers = [p for p in PEERS if p in s]
    batched = "memex `remember_many`" + (" and chromadb `add`" if "chroma" in peers else "")
    one_by_one = ", mem0 `add(infer=False)` one memory a call" if "mem0" in peers else ""
    mem0_note = f" (mem0: the first {r['mem0_queries']})" if "mem0" in peers else ""

    def row(label: str, memex_cell: str, cell: Callable[[str], str]) -> str:
        cells = [label, memex_cell, *(cell(p) for p in peers)]
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    def faster(p: str, pct: str) -> str:
        return _x(s[p][pct] / hyb[pct])

    lines = [
        f"### Speed at {n:,} memories",
        "",
        f"Same {n:,} memories, same embedder object (`{r['embedder']}`), one process, "
        f"batches round-robin; search over {r['queries']} distinct LoCoMo questions"
        f"{mem0_note}, k=10, whole store, query embedding "
        f"included. Ingest: {batched} in batches of {BATCH:,}{one_by_one}.",
        "",
        "| | memex | " + " | ".join(PEERS[p][0] for p in peers) + " |",
        "|---|" + "---:|" * (1 + len(peers)),
        row(
            "ingest (memories/s)",
            f"{ing['memex_per_s']:,.0f}",
            lambda p: f"{ing[f'{p}_per_s']:,.0f}",
        ),
        row("memex ingest ÷ peer", "", lambda p: _x(ing["memex_per_s"] / ing[f"{p}_per_s"])),
        row("search p50 / p99 (ms)", _ms(hyb), lambda p: _ms(s[p])),
        row(
            "memex search speed ÷ peer, p50 / p99",
            "",
            lambda p: f"{faster(p, 'p50_ms')} / {faster(p, 'p99_ms')}",
        ),
        row(
            "first search after ingest (ms)",
            f"{r['first_search_ms']['memex']:,.0f}",
            lambda p: f"{r['first_search_ms'][p]:,.0f}",
        ),
        row(
            "on disk (MB)",
            f"{r['disk_bytes']['memex'] / 1e6:,.0f}",
            lambda p: f"{r['disk_bytes'][p] / 1e6:,.0f}",
        ),
        "",
    ]
    vec = s["memex_vector"]
    like = "the two peers" if len(peers) == 2 else PEERS[peers[0]][1]
    versus = [f"{_x(s[p]['p50_ms'] / vec['p50_ms'])} {PEERS[p][1]}'s" for p in peers]
    versus[0] += " speed"
    text = (
        f"memex search is `recall(k=10)`, hybrid (BM25 + vectors), the default. Vector-only "
        f'memex (its query vector, `embed_query`, + `recall(mode="vector", query_vector=)`), '
        f"like {like} here: "
        f"p50 / p99 {_ms(vec)} ms ({' and '.join(versus)} at p50). "
        f"The embedder alone embeds {r['embed_alone_per_s']:,.0f} texts/s on the same texts."
    )
    if "mem0" in peers:
        text += f" Building mem0's `Memory` took {r['mem0_construct_s']:.1f} s."
    return [*lines, text]


def quality_markdown(report: dict[str, Any]) -> list[str]:
    r = report["quality"]
    data, systems = r["data"], r["systems"]
    ingested = r["ingest_seconds"]
    ingest = ", ".join(
        f"{PEERS[k][1] if k in PEERS else k} {sec:.1f} s" for k, sec in ingested.items()
    )
    lines = [
        "### Quality on LoCoMo (dev)",
        "",
        f"{data['conversations']} conversations, {data['turns']} turns (one memory each), "
        f"{data['questions']} questions of categories 1-4 with evidence; embedder "
        f"`{r['embedder']}` for all. Ingest: {ingest}.",
        "",
    ]
    lines += quality_tables(data, systems)
    given = "memex, dense and chromadb are" if "chroma" in ingested else "memex and dense are"
    mem0_note = (
        "; mem0 embeds the query inside `search` (WordLlama: about 0.1 ms) and is "
        f"timed on its one top-{DEPTH} call per question (its head is its top 10)"
    )
    lines += [
        "",
        f"Search times: {given} given the query vector (embedding "
        f"excluded){mem0_note if 'mem0' in ingested else ''}.",
    ]
    odd = {n: s["k10_not_head_of_k50"] for n, s in systems.items() if s["k10_not_head_of_k50"]}
    if odd:
        lines += ["", f"k=10 results that are not the head of the k={DEPTH} results: {odd}"]
    return lines


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    v = env["versions"]
    systems = report["systems"]
    peers: list[str] = []
    if "mem0" in systems:
        peers.append(f"mem0ai {v['mem0ai']} (qdrant-client {v['qdrant-client']}, local path mode)")
    if "chroma" in systems:
        peers.append(f"chromadb {v['chromadb']}")
    lines = [
        "```",
        f"$ {report['command']}",
        "```",
        "",
        f"memex {env['memex']} ({(env['memex_source']['commit'] or '?')[:7]})"
        + "".join(f", {p}" for p in peers)
        + f"; Python {env['python']}, SQLite {env['sqlite']}, "
        f"{env['machine']}, {env['cpus']} CPUs. Whole run {report['total_seconds']:,.0f} s.",
        "",
    ]
    if "speed" in report:
        lines += [*speed_markdown(report), ""]
    if "quality" in report:
        lines += [*quality_markdown(report), ""]
    return "\n".join(lines).rstrip() + "\n"


# -- main ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--parts", default="speed,quality", help="speed, quality or both")
    parser.add_argument("--size", type=int, default=100_000, help="memories in the speed part")
    parser.add_argument("--queries", type=int, default=QUERIES, help="search questions")
    parser.add_argument("--mem0-queries", type=int, default=50, help="questions asked of mem0")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo dev directory")
    parser.add_argument("--workdir", type=Path, help="where stores are made (default: temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="memex and one or both peers, comma-separated (default: memex,chromadb,mem0)",
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw results here")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"speed", "quality"}:
        parser.error("--parts takes speed, quality or both")
    if args.size < BATCH or args.queries < 1 or args.mem0_queries < 1:
        parser.error(f"--size must be at least {BATCH}, the counts positive")
    chosen = {s.strip() for s in args.systems.split(",") if s.strip()}
    if "memex" not in chosen or len(chosen) < 2 or chosen - set(SYSTEMS):
        parser.error("--systems takes memex and chromadb, mem0 or both, comma-separated")
    # Internal keys, in the fixed order the ingest rotation and the tables start from.
    args.systems = [SYSTEMS[s] for s in SYSTEMS if s in chosen]

    started = time.perf_counter()
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="memex-peers-")) if own_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    peer_log = PeerLog()
    logging.getLogger().addHandler(peer_log)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    report: dict[str, Any] = {"command": command_line(), "systems": args.systems}
    try:
        if "speed" in parts:
            report["speed"] = speed(args, workdir / "speed")
        if "quality" in parts:
            report["quality"] = quality(args, workdir / "quality")
    finally:
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["environment"] = {
        "memex": memex.__version__,
        "memex_source": memex_source(),
        "versions": versions(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "workdir": str(workdir),
    }
    report["peer_warnings"] = list(peer_log.seen)
    report["total_seconds"] = time.perf_counter() - started
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(markdown(report) if args.markdown else json.dumps(report, indent=2))
    if report["peer_warnings"]:
        log("warnings logged by the peers:\n  " + "\n  ".join(report["peer_warnings"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Retrieval quality of memex on the LoCoMo dev set, next to two plain baselines.

What it measures
----------------
Every dialogue turn of every LoCoMo conversation becomes one memory (content
``"{speaker}: {text}"``, metadata ``dia_id``/``session``/``session_date``, ``created_at`` the
session's date-time plus one second per turn), one scope ``{"project": "conv-<file>"}`` per
conversation, all in one store file in a temporary directory. Each question of
categories 1-4 with evidence is then asked inside its conversation's scope, and the
ranked dialogue ids are scored against the question's evidence ids:

* ``R@5``, ``R@10``: share of the evidence turns found in the top 5 / 10, averaged over questions;
* ``Hit@5``: share of questions with at least one evidence turn in the top 5;
* ``MRR``: mean of 1 / rank of the first evidence turn in the top 50 (0 if none).

Systems, all in the same run:

* ``memex hybrid`` / ``memex lexical`` / ``memex vector``: ``Memex.recall`` with default
  settings and ``mode=`` hybrid, lexical, vector;
* ``BM25 (rank_bm25)``: ``rank_bm25.BM25Okapi`` per conversation, tokens are lowercased
  runs of letters and digits, no stop words removed;
* ``dense exact cosine``: the same embedder's vectors (``mx.embedder.embed``) and a numpy
  dot product, per conversation.

Latency is the median wall time of one search, in process. Query vectors are computed
once per question, timed separately as "query embedding": ``mx.embed_query(question)``
(the vector ``recall`` would compute itself) is passed to memex as ``query_vector=``,
and the plain ``mx.embedder.embed([question])`` to the dense baseline, so every system
is timed on search alone; add the query-embedding time for an end-to-end figure of the
systems that use vectors.

LoCoMo category numbers follow the dataset's evaluation code (see
snap-research/locomo#29): 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop
(5, adversarial, has no answer in the conversation and is left out). A few evidence
ids in the data are malformed ("D8:6; D9:17", "D:11:26"): they are split and repaired;
ids that name no turn of the conversation are dropped and counted in the output.

Memex is opened with ``Settings()`` (the built-in defaults), so a user config file or
``MEMEX_*`` variables cannot change the result.

How to run (from the repository root)::

    .venv/bin/python benchmarks/locomo.py --markdown
    .venv/bin/python benchmarks/locomo.py --embedder minilm --markdown --json locomo-minilm.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from rank_bm25 import BM25Okapi

import memex
from memex import Memex, Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import memex_source

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/locomo-dev"
CATEGORIES: dict[int, str] = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
DEPTH = 50  # ranks kept per question (MRR is over this depth)
SESSION_RE = re.compile(r"^session_(\d+)$")
DIA_ID_RE = re.compile(r"D:?(\d+):(\d+)")
TOKEN_RE = re.compile(r"[a-z0-9]+")
Mode = Literal["hybrid", "lexical", "vector"]
Matrix = npt.NDArray[np.float32]


@dataclass
class Turn:
    """One dialogue turn, as stored."""

    dia_id: str
    content: str
    session: int
    session_date: str
    created_at: datetime


@dataclass
class Question:
    """One question with its evidence turns."""

    conv: str
    question: str
    category: int
    evidence: list[str]


@dataclass
class Conversation:
    """One LoCoMo conversation: its turns and questions."""

    conv: str
    turns: list[Turn]
    questions: list[Question] = field(default_factory=list)


@dataclass
class DataStats:
    """What was loaded, and what had to be repaired or dropped."""

    conversations: int = 0
    turns: int = 0
    questions: int = 0
    repaired_evidence: int = 0
    dropped_evidence: int = 0
    dropped_questions: int = 0


# -- data ---------------------------------------------------------------------------------


def parse_session_time(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' as an aware UTC datetime."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def clean_evidence(raw: Sequence[str], known: set[str], stats: DataStats) -> list[str]:
    """Evidence ids split, repaired ('D:11:26' -> 'D11:26') and limited to existing turns."""
    out: list[str] = []
    for item in raw:
        found = [f"D{a}:{b}" for a, b in DIA_ID_RE.findall(item)]
        if found != [item]:
            stats.repaired_evidence += 1
        for dia_id in found or [item]:
            if dia_id in known and dia_id not in out:
                out.append(dia_id)
            elif dia_id not in known:
                stats.dropped_evidence += 1
    return out


def load_conversations(data_dir: Path) -> tuple[list[Conversation], DataStats]:
    """Every conversation in ``data_dir/*.json`` with its category 1-4 questions."""
    files = sorted(data_dir.glob("*.json"))
    if not files:
        raise SystemExit(f"no LoCoMo *.json files in {data_dir}")
    stats = DataStats()
    conversations: list[Conversation] = []
    for path in files:
        raw = json.loads(path.read_text(encoding="utf-8"))
        conv_id = f"conv-{path.stem}"
        numbers = sorted(
            int(m.group(1))
            for key, value in raw.items()
            if (m := SESSION_RE.match(key)) and isinstance(value, list) and value
        )
        turns: list[Turn] = []
        for number in numbers:
            date_text = raw[f"session_{number}_date_time"]
            start = parse_session_time(date_text)
            for i, turn in enumerate(raw[f"session_{number}"]):
                turns.append(
                    Turn(
                        dia_id=turn["dia_id"],
                        content=f"{turn['speaker']}: {turn['text']}",
                        session=number,
                        session_date=date_text,
                        created_at=start + timedelta(seconds=i),
                    )
                )
        conv = Conversation(conv_id, turns)
        known = {t.dia_id for t in turns}
        for qa in raw.get("qa", []):
            category = int(qa.get("category", 0))
            if category not in CATEGORIES or not qa.get("evidence"):
                continue
            evidence = clean_evidence(qa["evidence"], known, stats)
            if not evidence:
                stats.dropped_questions += 1
                continue
            conv.questions.append(Question(conv_id, qa["question"], category, evidence))
        conversations.append(conv)
        stats.conversations += 1
        stats.turns += len(turns)
        stats.questions += len(conv.questions)
    return conversations, stats


# -- scoring ------------------------------------------------------------------------------


@dataclass
class SystemResult:
    """Per-question ranked dia_ids and search times of one system."""

    name: str
    ranked: list[list[str]] = field(default_factory=list)
    """Top ``DEPTH`` dia_ids per question (for MRR)."""
    top10: list[list[str]] = field(default_factory=list)
    """Top 10 dia_ids per question, from the timed k=10 search (for R@5, R@10, Hit@5)."""
    seconds: list[float] = field(default_factory=list)
    """Time of each k=10 search."""
    mismatches: int = 0
    """Questions whose k=10 list is not the head of the k=50 list (should be 0)."""


def score(top: Sequence[str], ranked: Sequence[str], evidence: Sequence[str]) -> dict[str, float]:
    """R@5, R@10, Hit@5 (from ``top``) and reciprocal rank (over ``ranked``) of one question."""
    wanted = set(evidence)
    top5, top10 = set(top[:5]), set(top[:10])
    rr = 0.0
    for rank, dia_id in enumerate(ranked, start=1):
        if dia_id in wanted:
            rr = 1.0 / rank
            break
    return {
        "r5": len(wanted & top5) / len(wanted),
        "r10": len(wanted & top10) / len(wanted),
        "hit5": 1.0 if wanted & top5 else 0.0,
        "mrr": rr,
    }


def summarise(result: SystemResult, questions: Sequence[Question]) -> dict[str, Any]:
    """Averaged metrics, per-category R@10 and latency of one system."""
    per_q = [
        score(t, r, q.evidence)
        for t, r, q in zip(result.top10, result.ranked, questions, strict=True)
    ]
    overall = {m: statistics.fmean(s[m] for s in per_q) for m in ("r5", "r10", "hit5", "mrr")}
    by_cat: dict[str, float] = {}
    for cat in CATEGORIES:
        values = [s["r10"] for s, q in zip(per_q, questions, strict=True) if q.category == cat]
        if values:
            by_cat[str(cat)] = statistics.fmean(values)
    ms = np.asarray(result.seconds) * 1000
    return {
        **overall,
        "r10_by_category": by_cat,
        "search_ms_p50": float(np.percentile(ms, 50)),
        "search_ms_p99": float(np.percentile(ms, 99)),
        "k10_not_head_of_k50": result.mismatches,
    }


# -- systems ------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lowercase runs of letters and digits (no stemming, no stop words)."""
    return TOKEN_RE.findall(text.lower())


def remember_turns(mx: Memex, conversations: Sequence[Conversation]) -> float:
    """Store every turn as one memory in its conversation's scope; seconds it took."""
    t0 = time.perf_counter()
    for conv in conversations:
        mx.remember_many(
            {
                "content": t.content,
                "metadata": {
                    "dia_id": t.dia_id,
                    "session": t.session,
                    "session_date": t.session_date,
                },
                "created_at": t.created_at,
                "scope": {"project": conv.conv},
            }
            for t in conv.turns
        )
    return time.perf_counter() - t0


def run_memex(
    mx: Memex,
    name: str,
    mode: Mode,
    questions: Sequence[Question],
    qvecs: Matrix,
) -> SystemResult:
    """Ask every question with ``Memex.recall`` in its conversation's scope.

    Each question is asked twice: k=10 (timed; R@5, R@10, Hit@5) and k=``DEPTH`` (MRR).
    """
    result = SystemResult(name)
    for q, qv in zip(questions, qvecs, strict=True):
        ask: dict[str, Any] = {
            "scope": {"project": q.conv},
            "mode": mode,
            "query_vector": None if mode == "lexical" else qv,
        }
        t0 = time.perf_counter()
        hits = mx.recall(q.question, k=10, **ask)
        result.seconds.append(time.perf_counter() - t0)
        top = [h.memory.metadata["dia_id"] for h in hits]
        ranked = [h.memory.metadata["dia_id"] for h in mx.recall(q.question, k=DEPTH, **ask)]
        result.top10.append(top)
        result.ranked.append(ranked)
        result.mismatches += top != ranked[:10]
    return result


def run_bm25(conversations: Sequence[Conversation]) -> SystemResult:
    """Plain BM25Okapi over each conversation's turns."""
    result = SystemResult("BM25 (rank_bm25)")
    for conv in conversations:
        ids = [t.dia_id for t in conv.turns]
        bm25 = BM25Okapi([tokenize(t.content) for t in conv.turns])
        for q in conv.questions:
            t0 = time.perf_counter()
            scores = np.asarray(bm25.get_scores(tokenize(q.question)))
            order = np.argsort(-scores, kind="stable")[:DEPTH]
            result.seconds.append(time.perf_counter() - t0)
            result.ranked.append([ids[i] for i in order])
            result.top10.append(result.ranked[-1][:10])
    return result


def run_dense(
    conversations: Sequence[Conversation], embed: Callable[[list[str]], Matrix], qvecs: Matrix
) -> SystemResult:
    """Exact cosine (dot product of unit vectors) over each conversation's turns."""
    result = SystemResult("dense exact cosine")
    at = 0
    for conv in conversations:
        ids = [t.dia_id for t in conv.turns]
        matrix = embed([t.content for t in conv.turns])
        for _ in conv.questions:
            qv = qvecs[at]
            at += 1
            t0 = time.perf_counter()
            scores = matrix @ qv
            order = np.argsort(-scores, kind="stable")[:DEPTH]
            result.seconds.append(time.perf_counter() - t0)
            result.ranked.append([ids[i] for i in order])
            result.top10.append(result.ranked[-1][:10])
    return result


# -- output -------------------------------------------------------------------------------


def command_line() -> str:
    """The command this process was started with, shell-quoted."""
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def quality_tables(data: dict[str, Any], systems: dict[str, Any]) -> list[str]:
    """The overall table and the recall@10-by-category table, as Markdown lines."""
    lines = [
        "| System | R@5 | R@10 | Hit@5 | MRR@50 | search p50 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in systems.items():
        lines.append(
            f"| {name} | {s['r5']:.3f} | {s['r10']:.3f} | {s['hit5']:.3f} | {s['mrr']:.3f} "
            f"| {s['search_ms_p50']:.2f} |"
        )
    counts = data["questions_by_category"]
    header = " | ".join(f"{c} {n} (n={counts.get(str(c), 0)})" for c, n in CATEGORIES.items())
    lines += [
        "",
        "Recall@10 by LoCoMo category:",
        "",
        f"| System | {header} |",
        "|---|" + "---:|" * len(CATEGORIES),
    ]
    for name, s in systems.items():
        cells = " | ".join(f"{s['r10_by_category'].get(str(c), 0.0):.3f}" for c in CATEGORIES)
        lines.append(f"| {name} | {cells} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """Tables ready to paste into docs/benchmarks.md."""
    env, data, systems = report["environment"], report["data"], report["systems"]
    lines = [
        f"### LoCoMo retrieval, embedder `{env['embedder']}`",
        "",
        "```",
        f"$ {report['command']}",
        "```",
        "",
        f"{data['conversations']} conversations, {data['turns']} turns (one memory each), "
        f"{data['questions']} questions of categories 1-4 with evidence "
        f"({data['repaired_evidence']} malformed evidence ids repaired, "
        f"{data['dropped_evidence']} naming no turn dropped, "
        f"{data['dropped_questions']} questions left without evidence). "
        f"memex {env['memex']}, Python {env['python']}, SQLite {env['sqlite']}, "
        f"{env['machine']}, {env['cpus']} CPUs. Ingest took {report['ingest_seconds']:.1f} s; "
        f"whole run {report['total_seconds']:.0f} s.",
        "",
    ]
    lines += quality_tables(data, systems)
    lines += [
        "",
        f"Search times exclude embedding the query: query embedding p50 "
        f"{report['query_embedding_ms_p50']:.2f} ms (add it to memex hybrid/vector and dense "
        f"for end to end); memex times are of `recall(k=10)`. MRR is over the top {DEPTH} "
        f"(memex asked again with k={DEPTH}).",
    ]
    odd = {n: s["k10_not_head_of_k50"] for n, s in systems.items() if s["k10_not_head_of_k50"]}
    if odd:
        lines += ["", f"Warning: k=10 results differ from the head of k={DEPTH} results: {odd}"]
    return "\n".join(lines)


def plain(report: dict[str, Any]) -> str:
    """A compact human-readable summary."""
    lines = [f"embedder {report['environment']['embedder']}  ({report['command']})"]
    lines.append(f"{'system':<22}{'R@5':>7}{'R@10':>7}{'Hit@5':>7}{'MRR':>7}{'p50 ms':>9}")
    for name, s in report["systems"].items():
        lines.append(
            f"{name:<22}{s['r5']:>7.3f}{s['r10']:>7.3f}{s['hit5']:>7.3f}{s['mrr']:>7.3f}"
            f"{s['search_ms_p50']:>9.2f}"
        )
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo dev directory")
    parser.add_argument("--embedder", choices=("wordllama", "minilm"), default="wordllama")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw results here")
    parser.add_argument(
        "--vector-weight", type=float, default=None, help="override the fusion weight setting"
    )
    parser.add_argument(
        "--store",
        default=None,
        help="an empty store to ingest into (a postgresql:// URL, say); default: a new "
        "SQLite file in a temporary folder",
    )
    args = parser.parse_args(argv)
    settings = (
        Settings() if args.vector_weight is None else Settings(vector_weight=args.vector_weight)
    )

    started = time.perf_counter()
    conversations, stats = load_conversations(args.data)
    questions = [q for c in conversations for q in c.questions]
    log = sys.stderr

    with tempfile.TemporaryDirectory(prefix="memex-locomo-") as tmp:
        store: str | Path = args.store or Path(tmp) / "locomo.db"
        with Memex.open(store, settings=settings, embedder=args.embedder) as mx:
            ingest_seconds = remember_turns(mx, conversations)
            print(f"ingested {stats.turns} turns in {ingest_seconds:.1f} s", file=log)

            embed_seconds: list[float] = []
            rows: list[Matrix] = []
            for q in questions:
                t0 = time.perf_counter()
                rows.append(mx.embed_query(q.question))
                embed_seconds.append(time.perf_counter() - t0)
            qvecs = np.stack(rows).astype(np.float32)
            plain_qvecs = mx.embedder.embed([q.question for q in questions])

            mx.recall("warm up", k=5, scope={"project": conversations[0].conv})
            results: list[SystemResult] = []
            modes: list[tuple[str, Mode]] = [
                ("memex hybrid", "hybrid"),
                ("memex lexical", "lexical"),
                ("memex vector", "vector"),
            ]
            for name, mode in modes:
                results.append(run_memex(mx, name, mode, questions, qvecs))
                print(f"{name}: done", file=log)
            results.append(run_bm25(conversations))
            print("bm25: done", file=log)
            results.append(run_dense(conversations, mx.embedder.embed, plain_qvecs))
            print("dense: done", file=log)
            embedder_name = mx.embedder.name

    by_cat: dict[str, int] = {}
    for q in questions:
        by_cat[str(q.category)] = by_cat.get(str(q.category), 0) + 1
    report: dict[str, Any] = {
        "command": command_line(),
        "environment": {
            "memex": memex.__version__,
            "memex_source": memex_source(),
            "embedder": embedder_name,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "data": {
            "path": str(args.data),
            "conversations": stats.conversations,
            "turns": stats.turns,
            "questions": stats.questions,
            "questions_by_category": by_cat,
            "repaired_evidence": stats.repaired_evidence,
            "dropped_evidence": stats.dropped_evidence,
            "dropped_questions": stats.dropped_questions,
        },
        "ingest_seconds": ingest_seconds,
        "query_embedding_ms_p50": float(np.percentile(np.asarray(embed_seconds) * 1000, 50)),
        "systems": {r.name: summarise(r, questions) for r in results},
        "total_seconds": time.perf_counter() - started,
    }
    if args.json:
        raw = dict(report)
        raw["questions"] = [
            {
                "conv": q.conv,
                "question": q.question,
                "category": q.category,
                "evidence": q.evidence,
                "top10": {r.name: r.top10[i] for r in results},
                "first_hit_rank": {
                    r.name: next((n for n, d in enumerate(r.ranked[i], 1) if d in q.evidence), None)
                    for r in results
                },
            }
            for i, q in enumerate(questions)
        ]
        args.json.write_text(json.dumps(raw, indent=2), encoding="utf-8")
    print(markdown(report) if args.markdown else plain(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

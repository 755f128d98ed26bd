"""Context assembly of memex on LoCoMo: evidence coverage, prompt-prefix reuse, assembly time.

What it measures
----------------
Three parts, each on its own store in a temporary directory (``--parts`` picks some):

(a) Evidence coverage. Every dialogue turn of every LoCoMo dev conversation becomes one
memory, as in ``benchmarks/locomo.py`` (kind ``message``, content ``"{speaker}: {text}"``,
``dia_id`` in metadata, ``created_at`` the session's date-time plus one second per turn),
one scope ``{"project": "conv-<file>"}`` per conversation. For each question of
categories 1-4 with evidence and each budget of ``--budgets`` (1000, 2000, 4000 tokens),
``mx.scoped(project=conv).context(question, budget_tokens=B)`` is built with the default
sections (the stable ones are empty here: the store holds messages only, so the budget
flows to recall and recent). Coverage is the share of the question's evidence turns whose
memory appears in any section of the context. Baseline in the same run: plain top-k
recall, ``recall(question, k=200)`` on the same handle, cut to the same budget: hits are
taken in rank order, each rendered as the context renders it
(``memex.core.context.memory_line(memory, "markdown")``) and counted with the context's own
token counter, while the running total stays within the budget (the first hit that does
not fit ends the list). Reported: mean coverage per budget, and per category at 2000.

(b) Prefix reuse over a simulated agent session. Per conversation, a project
``agent-conv-<file>`` gets stable memories from the same file: every
``session_N_observation`` sentence as a ``fact`` (its ``dia_id`` in metadata) and every
``session_N_summary`` as a ``summary``, both dated at their session; plus the
conversation's turns as ``message`` memories except the last ``2 * --calls``. Then an
agent makes ``--calls`` (50) calls: before each, the next 2 held-back turns are remembered
(in order, with their own dates); the call is
``context(question_i, budget_tokens=4000, session="agent-conv-<file>")`` on one scoped
handle, ``question_i`` the conversation's i-th question (cycling). Reported per
conversation and overall: the mean over calls 2..n of ``prefix_tokens_reused / tokens``
(the share of the context a prompt cache could reuse from the previous call; goal 0.85),
the mean stable share ``stats["stable_tokens"] / tokens``, the section-cache hit rate, and
how many calls broke the stable prefix (reused fewer tokens than the stable part).

(c) Assembly time at N memories (``--size``, default 100,000). A store of N memories
made from LoCoMo text with random extra words (``benchmarks/latency.py``'s generator, so
every content is distinct): 70% ``message`` and 5% ``event`` (dialogue turns), 10% ``fact``,
5% ``decision``, 3% ``preference``, 2% ``pattern`` (observation sentences), 3% ``summary``
and 2% ``reference`` (session summaries); 1% tagged ``pinned``; 5 projects; one creation
time every 30 s. Then ``context(q, budget_tokens=4000, scope={"project": p})`` is timed
(the call alone) for ``--queries`` (100) distinct LoCoMo questions, projects in rotation:

* cold, new handle: ``Memex.open`` of the same file for each question, then the timed
  call is the handle's first, so it also loads the tokenizer and the vector matrix;
* cold: a new handle for each question, the vector matrix and tokenizer loaded first by
  an untimed ``recall`` and ``context_state``, so only the section cache (and the
  token-count cache) is empty;
* warm: one handle; each timed call follows one untimed call with another question on
  the same project, so the stable sections come from the section cache and recall is new.

Each of the four question lists (cold new handle, cold, warm, warm-up) is distinct, so
memex's query-embedding cache never answers a timed call: every timed call embeds its
question. Reported: p50/p99 of each, warm vs cold (goal: warm at least 60% faster, warm
p50 under 15 ms) and the section-cache hit rate of the timed warm calls. A short extra
pass times each section of warm calls (``context_iter``) to show where the time goes.
``--fact-every N`` makes (b) remember one new fact before every N-th call, to show what a
change to a stable section does to the reused prefix.

Memex is opened with ``Settings()`` (the built-in defaults), so a user config file or
``MEMEX_*`` variables cannot change the result.

How to run (from the repository root)::

    .venv/bin/python benchmarks/context.py --markdown --json .bench/context.json
    .venv/bin/python benchmarks/context.py --size 5000 --quick --markdown    # a fast check
    .venv/bin/python benchmarks/context.py --parts a,b --conversations 26 --markdown
    .venv/bin/python benchmarks/context.py --parts b --fact-every 5 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

import memex
from memex import Context, Memex, Settings
from memex.core.context import memory_line

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import Corpus, Generator, load_corpus, memex_source, stats_ms
from locomo import (
    CATEGORIES,
    DEFAULT_DATA,
    Conversation,
    DataStats,
    Turn,
    command_line,
    load_conversations,
    parse_session_time,
)

BUDGETS = (1000, 2000, 4000)
CATEGORY_BUDGET = 2000
BASELINE_K = 200
CALLS = 50
TURNS_PER_CALL = 2
SESSION_BUDGET = 4000
SIZE = 100_000
QUERIES = 100
BATCH = 5_000
TIMING_BUDGET = 4000
BREAKDOWN = 20
PROJECTS = ("alpha", "beta", "gamma", "delta", "epsilon")
PINNED_SHARE = 0.01
KIND_MIX: tuple[tuple[str, float, str], ...] = (
    # kind, share of the store, where its text comes from
    ("message", 0.70, "turn"),
    ("event", 0.05, "turn"),
    ("fact", 0.10, "observation"),
    ("decision", 0.05, "observation"),
    ("preference", 0.03, "observation"),
    ("pattern", 0.02, "observation"),
    ("summary", 0.03, "summary"),
    ("reference", 0.02, "summary"),
)
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
STEP_SECONDS = 30
GOAL_REUSE = 0.85
GOAL_WARM_FASTER = 0.60
GOAL_WARM_P50_MS = 15.0


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def context_state(engine: Any) -> Any:
    """The engine's context state (token counter, caches), found where the memex being
    measured keeps it: ``memex.context.api.context_state``, or the engine's own method in
    older trees, so one script can measure both sides of a change."""
    try:
        from memex.context.api import context_state as state_of
    except ImportError:
        return engine.context_state()
    return state_of(engine)


def mean(values: Sequence[float]) -> float:
    """The mean, or 0.0 for no values."""
    return statistics.fmean(values) if values else 0.0


# -- data ---------------------------------------------------------------------------------


@dataclass
class Note:
    """An observation sentence or a session summary of a LoCoMo file."""

    text: str
    session: int
    created_at: datetime
    dia_id: str | None = None


@dataclass
class Notes:
    """The stable material of one conversation: observations (facts) and summaries."""

    conv: str
    observations: list[Note] = field(default_factory=list)
    summaries: list[Note] = field(default_factory=list)


def load_notes(data_dir: Path) -> dict[str, Notes]:
    """``session_N_observation`` and ``session_N_summary`` of every file, by conversation id."""
    out: dict[str, Notes] = {}
    for path in sorted(data_dir.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        notes = Notes(f"conv-{path.stem}")
        for key, value in raw.items():
            number, _, what = key.removeprefix("session_").partition("_")
            if not key.startswith("session_") or not number.isdigit():
                continue
            date_text = raw.get(f"session_{number}_date_time")
            if not date_text or what not in ("observation", "summary"):
                continue
            start = parse_session_time(date_text)
            if what == "summary" and isinstance(value, str) and value.strip():
                notes.summaries.append(Note(value.strip(), int(number), start))
            elif what == "observation" and isinstance(value, dict):
                i = 0
                for items in value.values():
                    for text, dia_id in _observation_items(items):
                        i += 1
                        at = start + timedelta(seconds=i)
                        notes.observations.append(Note(text, int(number), at, dia_id))
        notes.observations.sort(key=lambda n: n.created_at)
        notes.summaries.sort(key=lambda n: n.created_at)
        out[notes.conv] = notes
    return out


def _observation_items(items: Any) -> list[tuple[str, str | None]]:
    """``[[text, dia_id], ...]`` (dia_id sometimes a list or missing) as clean pairs."""
    out: list[tuple[str, str | None]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, list) and item and isinstance(item[0], str) and item[0].strip():
            ref = item[1] if len(item) > 1 else None
            dia_id = ref if isinstance(ref, str) else None
            out.append((item[0].strip(), dia_id))
    return out


def turn_item(turn: Turn, project: str) -> dict[str, Any]:
    """A dialogue turn as a ``remember_many`` item (as ``benchmarks/locomo.py`` stores it)."""
    return {
        "content": turn.content,
        "kind": "message",
        "metadata": {
            "dia_id": turn.dia_id,
            "session": turn.session,
            "session_date": turn.session_date,
        },
        "created_at": turn.created_at,
        "scope": {"project": project},
    }


# -- (a) evidence coverage ----------------------------------------------------------------


def context_ids(ctx: Context) -> dict[str, str]:
    """dia_id -> name of the section that holds it, over every section of a context."""
    out: dict[str, str] = {}
    for section in ctx.sections:
        for m in section.memories:
            dia_id = m.metadata.get("dia_id")
            if isinstance(dia_id, str):
                out.setdefault(dia_id, section.name)
    return out


def baseline_cut(lines: Sequence[str], counts: Sequence[int], budget: int) -> tuple[int, int]:
    """How many ranked lines fit in ``budget`` (stopping at the first that does not), and
    their tokens."""
    used = 0
    for i, n in enumerate(counts):
        if used + n > budget:
            return i, used
        used += n
    return len(lines), used


def run_coverage(
    mx: Memex, conversations: Sequence[Conversation], budgets: Sequence[int], limit: int | None
) -> list[dict[str, Any]]:
    """One row per question and budget: coverage of context and of the top-k baseline."""
    counter = context_state(mx._engine).counter
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for conv in conversations:
        handle = mx.scoped(project=conv.conv)
        questions = conv.questions
        if limit and len(questions) > limit:  # spread over the file, so every category shows
            step = len(questions) / limit
            questions = [questions[int(i * step)] for i in range(limit)]
        for q in questions:
            wanted = set(q.evidence)
            hits = handle.recall(q.question, k=BASELINE_K)
            lines = [memory_line(h.memory, "markdown") for h in hits]
            counts = counter.count_many(lines)
            ranked = [str(h.memory.metadata.get("dia_id")) for h in hits]
            for budget in budgets:
                ctx = handle.context(q.question, budget_tokens=budget)
                found = context_ids(ctx)
                kept, base_tokens = baseline_cut(lines, counts, budget)
                covered = wanted & found.keys()
                base_covered = wanted & set(ranked[:kept])
                rows.append(
                    {
                        "conv": conv.conv,
                        "question": q.question,
                        "category": q.category,
                        "budget": budget,
                        "evidence": q.evidence,
                        "coverage": len(covered) / len(wanted),
                        "baseline_coverage": len(base_covered) / len(wanted),
                        "covered_in": {d: found[d] for d in sorted(covered)},
                        "tokens": ctx.tokens,
                        "baseline_tokens": base_tokens,
                        "baseline_items": kept,
                        "context_items": sum(len(s.memories) for s in ctx.sections),
                        "tokens_by_section": ctx.stats["tokens_by_section"],
                        "over_budget": ctx.tokens > budget,
                        "trimmed": len(ctx.stats["trimmed"]),
                        "ms": ctx.stats["milliseconds"],
                    }
                )
        log(f"  (a) {conv.conv}: {len(questions)} questions, {time.perf_counter() - started:.0f} s")
    return rows


def summarise_coverage(rows: Sequence[dict[str, Any]], budgets: Sequence[int]) -> dict[str, Any]:
    """Mean coverage per budget (context and baseline), per category at CATEGORY_BUDGET."""
    by_budget: dict[str, Any] = {}
    for budget in budgets:
        sel = [r for r in rows if r["budget"] == budget]
        sections: dict[str, int] = {}
        for r in sel:
            for name in r["covered_in"].values():
                sections[name] = sections.get(name, 0) + 1
        by_budget[str(budget)] = {
            "questions": len(sel),
            "context": mean([r["coverage"] for r in sel]),
            "baseline": mean([r["baseline_coverage"] for r in sel]),
            "context_full": mean([float(r["coverage"] == 1.0) for r in sel]),
            "baseline_full": mean([float(r["baseline_coverage"] == 1.0) for r in sel]),
            "context_tokens": mean([r["tokens"] for r in sel]),
            "baseline_tokens": mean([r["baseline_tokens"] for r in sel]),
            "context_items": mean([r["context_items"] for r in sel]),
            "baseline_items": mean([r["baseline_items"] for r in sel]),
            "over_budget": sum(r["over_budget"] for r in sel),
            "trimmed_calls": sum(1 for r in sel if r["trimmed"]),
            "evidence_found_by_section": sections,
            "context_ms_p50": float(np.percentile([r["ms"] for r in sel], 50)) if sel else 0.0,
        }
    cat_budget = CATEGORY_BUDGET if CATEGORY_BUDGET in budgets else budgets[len(budgets) // 2]
    by_category: dict[str, Any] = {}
    for cat in CATEGORIES:
        sel = [r for r in rows if r["budget"] == cat_budget and r["category"] == cat]
        if sel:
            by_category[str(cat)] = {
                "questions": len(sel),
                "context": mean([r["coverage"] for r in sel]),
                "baseline": mean([r["baseline_coverage"] for r in sel]),
            }
    return {"by_budget": by_budget, "category_budget": cat_budget, "by_category": by_category}


# -- (b) prefix reuse ---------------------------------------------------------------------


def fact_item(note: Note) -> dict[str, Any]:
    """An observation sentence as a ``fact``."""
    return {
        "content": note.text,
        "kind": "fact",
        "metadata": {"dia_id": note.dia_id, "session": note.session} if note.dia_id else {},
        "created_at": note.created_at,
    }


def run_session(
    mx: Memex, conv: Conversation, notes: Notes, calls: int, budget: int, fact_every: int = 0
) -> dict[str, Any]:
    """A simulated agent session of ``calls`` context calls on one conversation.

    With ``fact_every`` N > 0, the newest observations are held back and one is remembered
    as a new fact before every N-th call (from call N+1 on), as an agent that learns.
    """
    project = f"agent-{conv.conv}"
    session = f"agent-{conv.conv}"
    handle = mx.scoped(project=project)
    held = min(TURNS_PER_CALL * calls, len(conv.turns))
    history, live = conv.turns[: len(conv.turns) - held], conv.turns[len(conv.turns) - held :]
    learned = (calls - 1) // fact_every if fact_every > 0 else 0
    learned = min(learned, len(notes.observations))
    known_facts = notes.observations[: len(notes.observations) - learned]
    new_facts = notes.observations[len(notes.observations) - learned :]
    items: list[dict[str, Any]] = [fact_item(n) for n in known_facts]
    items += [
        {
            "content": n.text,
            "kind": "summary",
            "metadata": {"session": n.session},
            "created_at": n.created_at,
        }
        for n in notes.summaries
    ]
    items += [turn_item(t, project) for t in history]
    handle.remember_many(items)
    questions = [q.question for q in conv.questions] or ["What happened recently?"]
    rows: list[dict[str, Any]] = []
    for i in range(calls):
        new = [turn_item(t, project) for t in live[TURNS_PER_CALL * i : TURNS_PER_CALL * (i + 1)]]
        fact_added = bool(fact_every and i and i % fact_every == 0 and new_facts)
        if fact_added:
            new.append(fact_item(new_facts.pop(0)))
        if new:
            handle.remember_many(new)
        ctx = handle.context(questions[i % len(questions)], budget_tokens=budget, session=session)
        stable = int(ctx.stats["stable_tokens"])
        reused = ctx.prefix_tokens_reused
        rows.append(
            {
                "call": i + 1,
                "fact_added": fact_added,
                "tokens": ctx.tokens,
                "reused": reused,
                "stable_tokens": stable,
                "reuse_share": (reused or 0) / ctx.tokens
                if reused is not None and ctx.tokens
                else None,
                "stable_share": stable / ctx.tokens if ctx.tokens else 0.0,
                "cache_hits": ctx.stats["cache_hits"],
                "cache_misses": ctx.stats["cache_misses"],
                "tokens_by_section": ctx.stats["tokens_by_section"],
                "over_budget": ctx.tokens > budget,
                "ms": ctx.stats["milliseconds"],
            }
        )
    later = rows[1:]
    hits = sum(r["cache_hits"] for r in later)
    looked = hits + sum(r["cache_misses"] for r in later)
    return {
        "conv": conv.conv,
        "facts": len(notes.observations),
        "summaries": len(notes.summaries),
        "history_messages": len(history),
        "live_messages": len(live),
        "calls": len(rows),
        "reuse_share": mean([r["reuse_share"] for r in later if r["reuse_share"] is not None]),
        "stable_share": mean([r["stable_share"] for r in rows]),
        "mean_tokens": mean([r["tokens"] for r in rows]),
        "mean_stable_tokens": mean([r["stable_tokens"] for r in rows]),
        "mean_reused_tokens": mean([r["reused"] or 0 for r in later]),
        "prefix_broken_calls": sum(1 for r in later if (r["reused"] or 0) < r["stable_tokens"]),
        "facts_added": sum(r["fact_added"] for r in rows),
        "reuse_share_after_new_fact": mean(
            [r["reuse_share"] for r in later if r["fact_added"] and r["reuse_share"] is not None]
        ),
        "cache_hit_rate": hits / looked if looked else 0.0,
        "over_budget": sum(r["over_budget"] for r in rows),
        "context_ms_p50": float(np.percentile([r["ms"] for r in rows], 50)) if rows else 0.0,
        "tokens_by_section_mean": {
            name: mean([r["tokens_by_section"].get(name, 0) for r in rows])
            for name in rows[0]["tokens_by_section"]
        }
        if rows
        else {},
        "rows": rows,
    }


# -- (c) assembly time --------------------------------------------------------------------


class StoreMaker:
    """N distinct memories over kinds, projects and a pinned tag, made in batches."""

    def __init__(self, corpus: Corpus, notes: dict[str, Notes], seed: int) -> None:
        self.rng = random.Random(seed)
        self.turns = Generator(corpus, seed)
        self.vocabulary = corpus.vocabulary
        self.sources = {
            "observation": [o.text for n in notes.values() for o in n.observations],
            "summary": [s.text for n in notes.values() for s in n.summaries],
        }
        self.seen: set[str] = set()
        self.kinds = [k for k, _, _ in KIND_MIX]
        self.weights = [w for _, w, _ in KIND_MIX]
        self.source_of = {k: s for k, _, s in KIND_MIX}

    def content(self, source: str) -> str:
        if source == "turn" or not self.sources[source]:
            return self.turns.content()
        rng = self.rng
        while True:
            extra = " ".join(rng.choices(self.vocabulary, k=rng.randint(3, 10)))
            text = f"{rng.choice(self.sources[source])} {extra}"
            if text not in self.seen:
                self.seen.add(text)
                return text

    def items(self, start: int, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        out: list[dict[str, Any]] = []
        for i in range(start, start + count):
            kind = rng.choices(self.kinds, self.weights)[0]
            created = EPOCH + timedelta(
                seconds=i * STEP_SECONDS + rng.random() * (STEP_SECONDS - 1)
            )
            out.append(
                {
                    "content": self.content(self.source_of[kind]),
                    "kind": kind,
                    "tags": ["pinned"] if rng.random() < PINNED_SHARE else [],
                    "metadata": {"n": i},
                    "created_at": created,
                    "scope": {"project": rng.choice(PROJECTS)},
                }
            )
        return out


def build_store(path: Path, n: int, maker: StoreMaker, embedder: str) -> dict[str, Any]:
    """Fill a new store at ``path`` with ``n`` memories."""
    started = time.perf_counter()
    with Memex.open(path, settings=Settings(), embedder=embedder) as mx:
        done = 0
        while done < n:
            count = min(BATCH, n - done)
            mx.remember_many(maker.items(done, count))
            done += count
            log(f"  (c) ingest {done:,}/{n:,}  {time.perf_counter() - started:.0f} s")
        by_kind = mx.stats().by_kind
        pinned = len(mx.list(tags=["pinned"], limit=10_000).items)
    return {"ingest_seconds": time.perf_counter() - started, "by_kind": by_kind, "pinned": pinned}


def timed_context(mx: Memex, query: str, project: str) -> tuple[float, Context]:
    """Seconds one ``context`` call took, and its result."""
    t0 = time.perf_counter()
    ctx = mx.context(query, budget_tokens=TIMING_BUDGET, scope={"project": project})
    return time.perf_counter() - t0, ctx


def call_row(seconds: float, ctx: Context) -> dict[str, Any]:
    """What is kept of one timed call."""
    return {
        "ms": seconds * 1000,
        "tokens": ctx.tokens,
        "stable_tokens": ctx.stats["stable_tokens"],
        "cache_hits": ctx.stats["cache_hits"],
        "cache_misses": ctx.stats["cache_misses"],
        "over_budget": ctx.tokens > TIMING_BUDGET,
        "tokens_by_section": ctx.stats["tokens_by_section"],
    }


def time_cold(
    path: Path, queries: Sequence[str], embedder: str, *, primed: bool, label: str
) -> list[dict[str, Any]]:
    """A new handle per question; ``primed`` loads vectors and tokenizer before the timing."""
    rows: list[dict[str, Any]] = []
    for i, q in enumerate(queries):
        project = PROJECTS[i % len(PROJECTS)]
        with Memex.open(path, settings=Settings(), embedder=embedder) as mx:
            if primed:
                mx.recall("priming the vector index", k=1, scope={"project": project})
                context_state(mx._engine)
            seconds, ctx = timed_context(mx, q, project)
            rows.append(call_row(seconds, ctx))
        if (i + 1) % 25 == 0:
            log(f"  (c) {label}: {i + 1}/{len(queries)}")
    return rows


def time_warm(
    path: Path, queries: Sequence[str], warmups: Sequence[str], embedder: str
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One handle; each timed question follows an untimed one on the same project.

    Afterwards, a few more pairs through ``context_iter`` give the median time per section.
    """
    rows: list[dict[str, Any]] = []
    per_section: dict[str, list[float]] = {}
    with Memex.open(path, settings=Settings(), embedder=embedder) as mx:
        for i, (q, w) in enumerate(zip(queries, warmups, strict=True)):
            project = PROJECTS[i % len(PROJECTS)]
            mx.context(w, budget_tokens=TIMING_BUDGET, scope={"project": project})
            seconds, ctx = timed_context(mx, q, project)
            rows.append(call_row(seconds, ctx))
        log(f"  (c) warm: {len(queries)}/{len(queries)}")
        # Breakdown: the same questions again (their embeddings and token counts are cached
        # by now, so these figures are a little lower than the timed calls above). Sections
        # are timed by iterating ``context_iter`` without calling ``result()`` (which, after
        # an iteration, loads every section a second time); the whole call is a ``context``
        # call right after, in the same state (after the same warm-up question).
        for i, (q, w) in enumerate(list(zip(queries, warmups, strict=True))[:BREAKDOWN]):
            project = PROJECTS[i % len(PROJECTS)]
            mx.context(w, budget_tokens=TIMING_BUDGET, scope={"project": project})
            last = time.perf_counter()
            for section in mx.context_iter(q, TIMING_BUDGET, scope={"project": project}):
                now = time.perf_counter()
                per_section.setdefault(section.name, []).append((now - last) * 1000)
                last = now
            mx.context(w, budget_tokens=TIMING_BUDGET, scope={"project": project})
            whole, _ = timed_context(mx, q, project)
            per_section.setdefault("whole call", []).append(whole * 1000)
    return rows, {name: statistics.median(v) for name, v in per_section.items()}


def summarise_calls(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles, cache hit rate and budget checks of timed calls."""
    hits = sum(r["cache_hits"] for r in rows)
    looked = hits + sum(r["cache_misses"] for r in rows)
    return {
        **stats_ms([r["ms"] / 1000 for r in rows]),
        "cache_hit_rate": hits / looked if looked else 0.0,
        "mean_tokens": mean([r["tokens"] for r in rows]),
        "mean_stable_tokens": mean([r["stable_tokens"] for r in rows]),
        "over_budget": sum(r["over_budget"] for r in rows),
    }


def run_timing(
    workdir: Path,
    n: int,
    corpus: Corpus,
    notes: dict[str, Notes],
    queries: int,
    seed: int,
    embedder: str,
) -> dict[str, Any]:
    """Part (c): build the store, then time cold (two ways) and warm calls."""
    shuffled = corpus.questions[:]
    random.Random(seed).shuffle(shuffled)
    if len(shuffled) < 4 * queries:
        raise SystemExit(f"need {4 * queries} distinct questions, the corpus has {len(shuffled)}")
    lists = [shuffled[i * queries : (i + 1) * queries] for i in range(4)]
    cold_new_q, cold_q, warm_q, warmup_q = lists
    path = workdir / f"context-{n}.db"
    built = build_store(path, n, StoreMaker(corpus, notes, seed), embedder)
    log(f"  (c) built {n:,} memories in {built['ingest_seconds']:.0f} s")
    cold_new = time_cold(path, cold_new_q, embedder, primed=False, label="cold, new handle")
    cold = time_cold(path, cold_q, embedder, primed=True, label="cold")
    warm, breakdown = time_warm(path, warm_q, warmup_q, embedder)
    out = {
        "memories": n,
        "queries": queries,
        "budget_tokens": TIMING_BUDGET,
        **built,
        "cold_new_handle": summarise_calls(cold_new),
        "cold": summarise_calls(cold),
        "warm": summarise_calls(warm),
        "warm_section_ms": breakdown,
        "rows": {"cold_new_handle": cold_new, "cold": cold, "warm": warm},
    }
    w, c = out["warm"], out["cold"]
    out["warm_faster_p50"] = 1 - w["p50_ms"] / c["p50_ms"] if c["p50_ms"] else 0.0
    out["warm_faster_p99"] = 1 - w["p99_ms"] / c["p99_ms"] if c["p99_ms"] else 0.0
    out["warm_faster_p50_vs_new_handle"] = (
        1 - w["p50_ms"] / out["cold_new_handle"]["p50_ms"]
        if out["cold_new_handle"]["p50_ms"]
        else 0.0
    )
    return out


# -- output -------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def markdown_coverage(report: dict[str, Any]) -> list[str]:
    cov, data = report["coverage"], report["data"]
    budgets = list(cov["by_budget"])
    lines = [
        "#### (a) Evidence coverage of the context",
        "",
        f"{data['conversations']} conversations, {data['turns']} turns (one `message` memory each), "
        f"{cov['by_budget'][budgets[0]]['questions']} questions of categories 1-4 with evidence. "
        "Coverage: share of a question's evidence turns present anywhere in the context, "
        "averaged over questions. Context: `scoped(project=conv).context(question, "
        "budget_tokens=B)`, default sections (stable ones empty here). Baseline: "
        f"`recall(question, k={BASELINE_K})` in rank order, each hit rendered as in the context "
        "and counted with the same tokenizer, cut at the budget.",
        "",
        "| Budget (tokens) | " + " | ".join(f"{int(b):,}" for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]

    def row(label: str, fn: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " | ".join(fn(cov["by_budget"][b]) for b in budgets) + " |"

    lines += [
        row("context: mean coverage", lambda s: f"{s['context']:.3f}"),
        row("top-k recall cut to budget: mean coverage", lambda s: f"{s['baseline']:.3f}"),
        row("context: all evidence present", lambda s: _pct(s["context_full"])),
        row("baseline: all evidence present", lambda s: _pct(s["baseline_full"])),
        row(
            "context: mean tokens / memories",
            lambda s: f"{s['context_tokens']:,.0f} / {s['context_items']:.0f}",
        ),
        row(
            "baseline: mean tokens / memories",
            lambda s: f"{s['baseline_tokens']:,.0f} / {s['baseline_items']:.0f}",
        ),
        row("context over budget (calls)", lambda s: str(s["over_budget"])),
        row("context p50 (ms)", lambda s: f"{s['context_ms_p50']:.1f}"),
    ]
    header = " | ".join(
        f"{c} {CATEGORIES[int(c)]} (n={v['questions']})" for c, v in cov["by_category"].items()
    )
    lines += [
        "",
        f"By LoCoMo category at {cov['category_budget']:,} tokens:",
        "",
        f"| System | {header} |",
        "|---|" + "---:|" * len(cov["by_category"]),
        "| context | "
        + " | ".join(f"{v['context']:.3f}" for v in cov["by_category"].values())
        + " |",
        "| top-k recall cut to budget | "
        + " | ".join(f"{v['baseline']:.3f}" for v in cov["by_category"].values())
        + " |",
    ]
    found = {b: cov["by_budget"][b]["evidence_found_by_section"] for b in budgets}
    parts = [
        f"{int(b):,}: " + ", ".join(f"{k} {v}" for k, v in sorted(found[b].items()))
        for b in budgets
    ]
    lines += ["", "Evidence turns found, by section: " + "; ".join(parts) + "."]
    return lines


def markdown_sessions(report: dict[str, Any]) -> list[str]:
    ses = report["sessions"]
    runs = ses["conversations"]
    lines = [
        "",
        "#### (b) Prompt-prefix reuse over a simulated agent session",
        "",
        f"Per conversation: every observation sentence stored as a `fact`, every session summary "
        f"as a `summary`, the turns as `message`s except the last {TURNS_PER_CALL * ses['calls']}; "
        f"then {ses['calls']} calls of `context(question_i, budget_tokens={ses['budget']:,}, "
        f"session=...)` on one scoped handle, {TURNS_PER_CALL} more turns remembered before each. "
        "Reuse: `prefix_tokens_reused / tokens`, mean over calls 2.."
        f"{ses['calls']} (goal {GOAL_REUSE:.2f}); stable: `stats['stable_tokens'] / tokens`; "
        "prefix broken: calls that reused fewer tokens than their stable part."
        + (
            f" One held-back observation is remembered as a new `fact` before every "
            f"{ses['fact_every']}th call."
            if ses["fact_every"]
            else " No stable memory is added during the session."
        ),
        "",
        "| Conversation | facts / summaries | mean tokens | prefix reused | stable share "
        "| prefix broken (calls) | section-cache hits | p50 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['conv']} | {r['facts']} / {r['summaries']} | {r['mean_tokens']:,.0f} "
            f"| {r['reuse_share']:.3f} | {r['stable_share']:.3f} | {r['prefix_broken_calls']} "
            f"| {_pct(r['cache_hit_rate'])} | {r['context_ms_p50']:.1f} |"
        )
    o = ses["overall"]
    lines.append(
        f"| **all** | | {o['mean_tokens']:,.0f} | **{o['reuse_share']:.3f}** "
        f"| {o['stable_share']:.3f} | {o['prefix_broken_calls']} | {_pct(o['cache_hit_rate'])} | |"
    )
    sect = o["tokens_by_section_mean"]
    if o["facts_added"]:
        lines += [
            "",
            f"Calls right after a new fact ({o['facts_added']}): prefix reused "
            f"{o['reuse_share_after_new_fact']:.3f}; the other calls: "
            f"{o['reuse_share_other_calls']:.3f}.",
        ]
    lines += [
        "",
        "Mean tokens by section: " + ", ".join(f"{k} {v:,.0f}" for k, v in sect.items()) + ".",
    ]
    return lines


def markdown_timing(report: dict[str, Any]) -> list[str]:
    t = report["timing"]
    lines = [
        "",
        f"#### (c) Assembly time at {t['memories']:,} memories",
        "",
        f"{t['memories']:,} memories over {len(PROJECTS)} projects ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(t["by_kind"].items(), key=lambda kv: -kv[1]))
        + f"; {t['pinned']:,} pinned), built in {t['ingest_seconds']:.0f} s. "
        f"`context(q, budget_tokens={t['budget_tokens']:,}, scope={{'project': p}})` for "
        f"{t['queries']} distinct questions per column (the call alone is timed; every timed "
        "question is new to memex's query-embedding cache). Cold, new handle: the first call "
        "of a freshly opened handle (loads the tokenizer and vector matrix). Cold: a fresh "
        "handle with those loaded by an untimed `recall`, section cache empty. Warm: one "
        "handle, each timed call after an untimed call with another question on the same "
        "project.",
        "",
        "| | p50 (ms) | p99 (ms) | mean (ms) | section-cache hits | mean tokens | over budget |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("cold, new handle", "cold_new_handle"), ("cold", "cold"), ("warm", "warm")):
        s = t[key]
        lines.append(
            f"| {label} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['mean_ms']:.1f} "
            f"| {_pct(s['cache_hit_rate'])} | {s['mean_tokens']:,.0f} | {s['over_budget']} |"
        )
    w = t["warm"]
    lines += [
        "",
        f"Warm vs cold: {_pct(t['warm_faster_p50'])} faster at p50, "
        f"{_pct(t['warm_faster_p99'])} at p99 ({_pct(t['warm_faster_p50_vs_new_handle'])} at p50 "
        f"vs a new handle's first call); goal at least {_pct(GOAL_WARM_FASTER)} faster and warm "
        f"p50 under {GOAL_WARM_P50_MS:.0f} ms: "
        + (
            "met."
            if t["warm_faster_p50"] >= GOAL_WARM_FASTER and w["p50_ms"] < GOAL_WARM_P50_MS
            else "not met."
        ),
        f"Warm time by section (median ms over {BREAKDOWN} calls through `context_iter`; "
        "the rest of a call renders, counts and records): "
        + ", ".join(f"{k} {v:.2f}" for k, v in t["warm_section_ms"].items())
        + ".",
    ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """Tables ready to paste into docs/benchmarks.md."""
    env = report["environment"]
    lines = [
        f"### Context assembly, embedder `{env['embedder']}`",
        "",
        "```",
        f"$ {report['command']}",
        "```",
        "",
        f"memex {env['memex']}, Python {env['python']}, SQLite {env['sqlite']}, "
        f"{env['machine']}, {env['cpus']} CPUs; tokenizer `{env['tokenizer']}`. "
        f"Whole run {report['total_seconds']:,.0f} s.",
        "",
    ]
    if "coverage" in report:
        lines += markdown_coverage(report)
    if "sessions" in report:
        lines += markdown_sessions(report)
    if "timing" in report:
        lines += markdown_timing(report)
    return "\n".join(lines)


def plain(report: dict[str, Any]) -> str:
    """A short human-readable summary."""
    lines = [report["command"]]
    if "coverage" in report:
        for b, s in report["coverage"]["by_budget"].items():
            lines.append(
                f"(a) budget {b:>5}: context {s['context']:.3f}  top-k cut {s['baseline']:.3f}"
            )
    if "sessions" in report:
        o = report["sessions"]["overall"]
        lines.append(
            f"(b) prefix reused {o['reuse_share']:.3f}  stable share {o['stable_share']:.3f}"
        )
    if "timing" in report:
        t = report["timing"]
        lines.append(
            f"(c) {t['memories']:,}: cold p50 {t['cold']['p50_ms']:.1f} ms  warm p50 "
            f"{t['warm']['p50_ms']:.1f} ms  ({_pct(t['warm_faster_p50'])} faster), warm hits "
            f"{_pct(t['warm']['cache_hit_rate'])}"
        )
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------


def overall_sessions(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Part (b) over all conversations: means over every call 2..n of every conversation."""
    later = [r for run in runs for r in run["rows"][1:]]
    every = [r for run in runs for r in run["rows"]]
    hits = sum(r["cache_hits"] for r in later)
    looked = hits + sum(r["cache_misses"] for r in later)
    names = list(every[0]["tokens_by_section"]) if every else []
    return {
        "reuse_share": mean([r["reuse_share"] for r in later if r["reuse_share"] is not None]),
        "stable_share": mean([r["stable_share"] for r in every]),
        "mean_tokens": mean([r["tokens"] for r in every]),
        "prefix_broken_calls": sum(run["prefix_broken_calls"] for run in runs),
        "facts_added": sum(run["facts_added"] for run in runs),
        "reuse_share_after_new_fact": mean(
            [r["reuse_share"] for r in later if r["fact_added"] and r["reuse_share"] is not None]
        ),
        "reuse_share_other_calls": mean(
            [
                r["reuse_share"]
                for r in later
                if not r["fact_added"] and r["reuse_share"] is not None
            ]
        ),
        "cache_hit_rate": hits / looked if looked else 0.0,
        "over_budget": sum(run["over_budget"] for run in runs),
        "tokens_by_section_mean": {
            n: mean([r["tokens_by_section"].get(n, 0) for r in every]) for n in names
        },
    }


def data_summary(stats: DataStats, conversations: Sequence[Conversation]) -> dict[str, Any]:
    return {
        "conversations": len(conversations),
        "turns": sum(len(c.turns) for c in conversations),
        "questions": sum(len(c.questions) for c in conversations),
        "repaired_evidence": stats.repaired_evidence,
        "dropped_evidence": stats.dropped_evidence,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo dev directory")
    parser.add_argument("--parts", default="a,b,c", help="which parts to run: a, b, c")
    parser.add_argument(
        "--conversations", help="comma-separated file stems for (a) and (b), e.g. 26,30"
    )
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="budgets for (a)")
    parser.add_argument("--calls", type=int, default=CALLS, help="context calls per session (b)")
    parser.add_argument(
        "--fact-every",
        type=int,
        default=0,
        metavar="N",
        help="(b): remember one new fact before every N-th call (default 0: never)",
    )
    parser.add_argument("--size", type=int, default=SIZE, help="memories in the store of (c)")
    parser.add_argument("--queries", type=int, default=QUERIES, help="timed questions in (c)")
    parser.add_argument(
        "--quick", action="store_true", help="30 questions per conversation in (a), 30 in (c)"
    )
    parser.add_argument("--workdir", type=Path, help="where stores are made (default: temp dir)")
    parser.add_argument("--embedder", choices=("wordllama", "minilm"), default="wordllama")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write raw results here")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"a", "b", "c"}:
        parser.error("--parts takes a comma-separated subset of a, b, c")
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        parser.error("--budgets must be comma-separated whole numbers")
    if (
        not budgets
        or min(budgets) < 1
        or args.calls < 2
        or args.fact_every < 0
        or args.size < 1000
        or args.queries < 1
    ):
        parser.error("budgets and --queries must be positive, --calls >= 2, --size >= 1000")
    queries = min(args.queries, 30) if args.quick else args.queries
    per_conv = 30 if args.quick else None

    started = time.perf_counter()
    conversations, stats = load_conversations(args.data)
    if args.conversations:
        wanted = {f"conv-{s.strip()}" for s in args.conversations.split(",") if s.strip()}
        conversations = [c for c in conversations if c.conv in wanted]
        if not conversations:
            parser.error(f"no conversation among {sorted(wanted)}")
    notes = load_notes(args.data)
    report: dict[str, Any] = {"command": command_line()}
    embedder_name = args.embedder
    tokenizer = "?"
    with tempfile.TemporaryDirectory(prefix="memex-context-", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        if "a" in parts:
            log("(a) evidence coverage")
            with Memex.open(
                workdir / "coverage.db", settings=Settings(), embedder=args.embedder
            ) as mx:
                t0 = time.perf_counter()
                for conv in conversations:
                    mx.remember_many(turn_item(t, conv.conv) for t in conv.turns)
                log(f"  (a) ingested in {time.perf_counter() - t0:.1f} s")
                rows = run_coverage(mx, conversations, budgets, per_conv)
                embedder_name = mx.embedder.name
                tokenizer = context_state(mx._engine).counter.name
            report["data"] = data_summary(stats, conversations)
            report["coverage"] = {**summarise_coverage(rows, budgets), "rows": rows}
        if "b" in parts:
            log("(b) prefix reuse")
            runs: list[dict[str, Any]] = []
            with Memex.open(
                workdir / "sessions.db", settings=Settings(), embedder=args.embedder
            ) as mx:
                for conv in conversations:
                    runs.append(
                        run_session(
                            mx, conv, notes[conv.conv], args.calls, SESSION_BUDGET, args.fact_every
                        )
                    )
                    log(f"  (b) {conv.conv}: prefix reused {runs[-1]['reuse_share']:.3f}")
                embedder_name = mx.embedder.name
                tokenizer = context_state(mx._engine).counter.name
            report["sessions"] = {
                "calls": args.calls,
                "fact_every": args.fact_every,
                "budget": SESSION_BUDGET,
                "conversations": runs,
                "overall": overall_sessions(runs),
            }
        if "c" in parts:
            log(f"(c) assembly time at {args.size:,} memories")
            corpus = load_corpus(args.data)
            report["timing"] = run_timing(
                workdir, args.size, corpus, notes, queries, args.seed, args.embedder
            )
            with Memex.open(workdir / f"context-{args.size}.db", settings=Settings()) as mx:
                embedder_name = mx.embedder.name
                tokenizer = context_state(mx._engine).counter.name
    report["environment"] = {
        "memex": memex.__version__,
        "memex_source": memex_source(),
        "embedder": embedder_name,
        "tokenizer": tokenizer,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    report["total_seconds"] = time.perf_counter() - started
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print(markdown(report) if args.markdown else plain(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

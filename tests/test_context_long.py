"""Long memories in a real store's contexts: cut to fit, marked, within budget, cheap."""

from __future__ import annotations

import json
import random
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memex import Memex, Settings
from memex.context.api import context_state
from memex.core.lines import fold
from memex.embedders.base import normalise
from memex.tokens import make_counter

WORDS = ["billing", "export", "gateway", "tenant", "A&B", "<tag>", "résumé", "don't", "中文"]
SETTINGS = Settings(max_content_bytes=9_000_000)


class ByteEmbedder:
    """A small real embedder (byte frequencies): storing megabytes of text stays quick."""

    name = "bytes:64"
    dimensions = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            codes = np.frombuffer(text.encode(), dtype=np.uint8) % 64
            out[row] = np.bincount(codes, minlength=64)
        out[:, 0] += 0.01
        return normalise(out)


def prose(size: int, seed: int) -> str:
    """About ``size`` UTF-8 bytes of words (markup characters and multi-byte ones too)."""
    text = " ".join(random.Random(seed).choices(WORDS, k=size // 7))
    return text.encode()[:size].decode(errors="ignore").strip()


def open_mx(path: Path) -> Memex:
    return Memex.open(path, settings=SETTINGS, embedder=ByteEmbedder())


@pytest.fixture(scope="module")
def many_long(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 facts of 64 KB each (the largest content by default)."""
    path = tmp_path_factory.mktemp("long") / "memex.db"
    with open_mx(path) as mx:
        mx.remember_many([{"content": prose(65_536, i), "kind": "fact"} for i in range(300)])
    return path


def cut_ids(ctx_text: str) -> list[str]:
    root = ET.fromstring(f"<context>{ctx_text}</context>")
    return [m.get("id", "") for m in root.iter("memory") if m.get("cut") == "true"]


@pytest.mark.parametrize("fmt", ["markdown", "xml"])
def test_300_long_memories_give_a_context_of_cut_memories(many_long: Path, fmt: str) -> None:
    with open_mx(many_long) as mx:
        ctx = mx.context("billing export gateway", budget_tokens=4000, format=fmt)
        contents = {e.memory_id: mx.get(e.memory_id).content for e in ctx.manifest if e.cut}
    assert 3000 < ctx.tokens <= 4000
    assert make_counter("auto").count(ctx.text) == ctx.tokens
    cut = [e for e in ctx.manifest if e.cut]
    assert cut and all(e.included for e in cut)
    for e in cut:
        assert e.content_chars == len(contents[e.memory_id]) > 50_000
        assert e.shown_chars is not None and 1000 < e.shown_chars < 20_000
    included = [e.memory_id for e in ctx.manifest if e.included]
    assert len(included) == len(set(included)), "a memory is shown once"
    if fmt == "xml":
        assert sorted(cut_ids(ctx.text)) == sorted(e.memory_id for e in cut)
        root = ET.fromstring(f"<context>{ctx.text}</context>")
        for element in root.iter("memory"):
            shown = (element.text or "").removesuffix(" …")
            assert fold(contents[element.get("id", "")])[0].startswith(shown)
    else:
        assert ctx.text.count(" … [cut]\n") == len(cut)
    entries = json.loads(json.dumps(ctx.to_dict()))["manifest"]
    assert {e["id"] for e in entries if e["cut"]} == set(contents)
    assert all(e["shown_chars"] is None for e in entries if not e["cut"])


@pytest.mark.parametrize("fmt", ["markdown", "xml"])
def test_one_huge_memory_is_cut_at_the_cost_of_reading_it(tmp_path: Path, fmt: str) -> None:
    with open_mx(tmp_path / "memex.db") as mx:
        mx.remember_many([{"content": f"Small fact number {i}.", "kind": "fact"} for i in range(5)])
        mx.context("", budget_tokens=4000, format=fmt)  # the tokenizer and caches are warm
        content = prose(8_500_000, 2)
        huge = mx.remember(content, kind="fact")
        tracemalloc.start()
        try:
            mx.get(huge.id)
            reading = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            ctx = mx.context("", budget_tokens=4000, format=fmt)
            assembling = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            held = tracemalloc.get_traced_memory()[0]
            again = mx.context("", budget_tokens=4000, format=fmt)
            warm = tracemalloc.get_traced_memory()[1] - held
        finally:
            tracemalloc.stop()
        with_recall = mx.context("billing export", budget_tokens=4000, format="xml")
    (entry,) = [e for e in ctx.manifest if e.memory_id == huge.id]
    assert entry.included and entry.cut and entry.content_chars == len(content)
    assert entry.shown_chars is not None and entry.shown_chars < 4000 * 16
    assert ctx.tokens <= 4000 and "Small fact number 4." in ctx.text
    # Reading the memory from the store is the floor; assembling adds only what the
    # context text takes (not a copy, a shape or a count of the whole memory).
    assert assembling < reading + 20 * len(ctx.text.encode())
    # From the section cache: the memory is neither read nor copied again.
    assert again.text == ctx.text and again.sections[0].cached
    assert warm < 50 * len(ctx.text.encode()) < len(content) // 20
    assert with_recall.text.count(huge.id) == 1 and cut_ids(with_recall.text) == [huge.id]


@pytest.mark.parametrize("fmt", ["markdown", "xml"])
def test_cached_sections_follow_growing_and_shrinking_budgets(tmp_path: Path, fmt: str) -> None:
    """A long fact is cut under a small budget and whole under a large one, whatever the
    cache held from the calls before: each context equals a fresh handle's."""
    path = tmp_path / "memex.db"
    with open_mx(path) as mx:
        long = mx.remember(prose(14_000, 3), kind="fact")  # 4,644 tokens
        mx.remember_many([{"content": f"Short fact {i}.", "kind": "fact"} for i in range(4)])
        mx.remember("We decided to keep one region.", kind="decision")
        seen = []
        for budget in (1000, 30_000, 1000, 30_000, 4000, 1000):
            ctx = mx.context("", budget_tokens=budget, format=fmt)
            with open_mx(path) as fresh:
                assert ctx.text == fresh.context("", budget_tokens=budget, format=fmt).text
            (entry,) = [e for e in ctx.manifest if e.memory_id == long.id]
            facts = next(s for s in ctx.sections if s.name == "facts")
            seen.append((budget, entry.cut, facts.cached))
            assert ctx.tokens <= budget
    assert seen == [
        (1000, True, False),
        (30_000, False, False),  # more than the cached candidates were prepared for
        (1000, True, True),  # prepared for more: served from the cache
        (30_000, False, True),
        (4000, True, True),
        (1000, True, True),
    ]


LONG = st.tuples(
    st.sampled_from(["billing export", "A&B <x>", "中文 é", "x" * 30, "a\n\n b", "don't"]),
    st.integers(min_value=1, max_value=2000),
).map(lambda word_times: " ".join([word_times[0]] * word_times[1]))
"""From one word to about 62,000 characters: longer than most sections, often than the
budget."""


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    contents=st.lists(
        st.tuples(LONG, st.sampled_from(["fact", "decision", "reference", "message", "note"])),
        max_size=8,
    ),
    budget=st.integers(min_value=1, max_value=6000),
    fmt=st.sampled_from(["markdown", "xml"]),
    strategy=st.sampled_from(["balanced", "relevance_first", "priority_first"]),
)
def test_property_long_memories_never_exceed_the_budget(
    tmp_path_factory: pytest.TempPathFactory,
    contents: list[tuple[str, str]],
    budget: int,
    fmt: str,
    strategy: str,
) -> None:
    path = tmp_path_factory.mktemp("long") / "memex.db"
    with open_mx(path) as mx:
        if contents:
            mx.remember_many([{"content": c, "kind": k} for c, k in contents])
        for query in ("billing export", "billing export"):  # the second from the cache
            ctx = mx.context(query, budget_tokens=budget, format=fmt, strategy=strategy)
            assert ctx.tokens <= budget
            assert context_state(mx._engine).counter.count(ctx.text) == ctx.tokens
            cut = [e for e in ctx.manifest if e.cut]
            assert all(e.included and e.shown_chars for e in cut)
            mark = ' cut="true">' if fmt == "xml" else " … [cut]\n"
            assert ctx.text.count(mark) == len(cut)
            if fmt == "xml":
                ET.fromstring(f"<context>{ctx.text}</context>")

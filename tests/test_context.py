"""Context assembly against a real store: budget, determinism, cache, sessions, streaming."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memex import Memex, ValidationError
from memex.context.api import context_state
from memex.core.context import Deduplicator, common_prefix, resolve_sections
from memex.tokens import HeuristicCounter, make_counter

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def seed(mx: Memex) -> None:
    rows = []
    for i in range(6):
        rows.append({"content": f"The API gateway listens on port {8000 + i}.", "kind": "fact"})
        rows.append({"content": f"We decided to shard table {i} by tenant id.", "kind": "decision"})
        rows.append(
            {"content": f"User {i} prefers concise answers with code.", "kind": "preference"}
        )
        rows.append(
            {"content": f"Runbook {i}: restart the worker pool then drain.", "kind": "reference"}
        )
    rows.append({"content": "Never deploy on Fridays.", "kind": "decision", "tags": ["pinned"]})
    for i in range(30):
        rows.append(
            {
                "content": f"user: message {i} about the billing export job",
                "kind": "message",
                "created_at": T0 + timedelta(minutes=i),
            }
        )
    mx.remember_many(rows)


def test_context_shape_and_order(mx: Memex) -> None:
    seed(mx)
    ctx = mx.context("which port does the gateway use?", budget_tokens=600)
    assert 0 < ctx.tokens <= 600
    assert make_counter("auto").count(ctx.text) == ctx.tokens
    names = [s.name for s in ctx.sections if s.memories]
    assert names[0] == "pinned" and names.index("facts") < names.index("recall")
    assert ctx.text.startswith("## Pinned\n- ") and "Never deploy on Fridays." in ctx.text
    assert ctx.breakpoints and ctx.breakpoints == sorted(ctx.breakpoints)
    assert ctx.stable_text.endswith("\n\n") and "Relevant memories" not in ctx.stable_text
    included = [e for e in ctx.manifest if e.included]
    left_out = [e for e in ctx.manifest if not e.included]
    assert {m.id for s in ctx.sections for m in s.memories} == {e.memory_id for e in included}
    assert left_out and all(e.reason for e in left_out)
    assert ctx.prefix_tokens_reused is None
    assert ctx.stats["tokenizer"] == "llama2" and ctx.stats["tokenizer_exact"] is True
    assert sum(ctx.stats["tokens_by_section"].values()) >= ctx.tokens - 5


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    contents=st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                min_size=1,
                max_size=400,
            ).filter(str.strip),
            st.sampled_from(["fact", "decision", "preference", "reference", "message", "note"]),
            st.booleans(),
        ),
        min_size=0,
        max_size=25,
    ),
    budget=st.integers(min_value=1, max_value=1500),
    fmt=st.sampled_from(["markdown", "xml"]),
    strategy=st.sampled_from(["balanced", "relevance_first", "priority_first", "time_based"]),
)
def test_property_budget_is_never_exceeded(
    tmp_path_factory: pytest.TempPathFactory,
    contents: list[tuple[str, str, bool]],
    budget: int,
    fmt: str,
    strategy: str,
) -> None:
    path = tmp_path_factory.mktemp("ctx") / "m.db"
    with Memex.open(path) as mx:
        if contents:
            mx.remember_many(
                [{"content": c, "kind": k, "tags": ["pinned"] if p else []} for c, k, p in contents]
            )
        ctx = mx.context("what matters here?", budget_tokens=budget, format=fmt, strategy=strategy)
        assert ctx.tokens <= budget
        assert context_state(mx._engine).counter.count(ctx.text) == ctx.tokens
        cut = [e for e in ctx.manifest if e.cut]
        assert all(e.included and e.shown_chars for e in cut)
        mark = ' cut="true">' if fmt == "xml" else " … [cut]\n"
        assert ctx.text.count(mark) == len(cut)


def test_identical_inputs_give_identical_bytes(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        seed(mx)
        first = mx.context("billing export", budget_tokens=800)
        again = mx.context("billing export", budget_tokens=800)
    with Memex.open(store_path) as fresh:
        other = fresh.context("billing export", budget_tokens=800)
    assert first.text == again.text == other.text
    assert first.prefix_hash == other.prefix_hash and first.breakpoints == other.breakpoints


def test_xml_layout_is_well_formed(mx: Memex) -> None:
    seed(mx)
    ctx = mx.context("ports & <gateways>", budget_tokens=700, format="xml")
    root = ET.fromstring(f"<context>{ctx.text}</context>")
    names = [s.get("name") for s in root.findall("section")]
    assert names and names[0] == "pinned"
    assert all(m.get("id") for m in root.iter("memory"))


def test_a_write_invalidates_exactly_its_section(mx: Memex) -> None:
    seed(mx)
    mx.context("gateway port", budget_tokens=800)
    warm = mx.context("billing job", budget_tokens=800)
    stable = {s.name: s.cached for s in warm.sections if s.stable}
    assert all(stable.values()), stable
    mx.remember("We decided to move billing to a queue.", kind="decision")
    after = {s.name: s.cached for s in mx.context("billing job", budget_tokens=800).sections}
    assert after["decisions"] is False
    assert all(after[n] for n in ("pinned", "patterns", "facts", "reference"))
    assert mx.context("gateway", budget_tokens=800).stats["cache_hit_rate"] == 1.0


def test_writes_from_another_handle_invalidate_too(store_path: Path) -> None:
    with Memex.open(store_path) as a, Memex.open(store_path) as b:
        seed(a)
        a.context("ports", budget_tokens=800)
        b.remember("The API gateway now also listens on port 9443.", kind="fact")
        ctx = a.context("ports", budget_tokens=800)
        facts = next(s for s in ctx.sections if s.name == "facts")
        assert facts.cached is False and "9443" in ctx.text


def test_a_section_is_rebuilt_when_one_of_its_memories_expires_or_is_superseded(
    mx: Memex,
) -> None:
    mx.context("")  # loads the tokenizer: the next calls are quick
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    mx.remember("the vicuna grazes at dawn", kind="fact", expires_at=due)
    old = mx.remember("the wombat digs at dusk", kind="fact")
    mx.supersede(old.id, "the wombat sleeps at noon", valid_from=due)
    before = mx.context("").text
    assert "vicuna" in before and "dusk" in before and "noon" not in before
    time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.05)
    after = mx.context("")  # no write since: the section's change counters are as they were
    facts = next(s for s in after.sections if s.name == "facts")
    assert facts.cached is False
    assert "vicuna" not in after.text and "dusk" not in after.text and "noon" in after.text


def test_session_reuses_the_stable_prefix(mx: Memex) -> None:
    seed(mx)
    first = mx.context("which port does the gateway use?", budget_tokens=800, session="s1")
    second = mx.context("how is the table sharded?", budget_tokens=800, session="s1")
    assert first.prefix_tokens_reused is None
    assert second.prefix_tokens_reused is not None
    assert second.prefix_tokens_reused >= first.stats["stable_tokens"] > 0
    assert second.prefix_hash == first.prefix_hash
    assert second.stats["prefix_sessions"] == 1
    other = mx.context("anything else?", budget_tokens=800, session="s2")
    assert other.stats["prefix_sessions"] == 2  # the same stable prefix, seen in two sessions


def test_sessions_are_scoped(mx: Memex) -> None:
    a, b = mx.scoped(project="a"), mx.scoped(project="b")
    a.remember("Project A uses Rust.", kind="fact")
    b.remember("Project B uses Go.", kind="fact")
    assert a.context("language", budget_tokens=300, session="chat").prefix_tokens_reused is None
    assert b.context("language", budget_tokens=300, session="chat").prefix_tokens_reused is None


def test_a_new_fact_is_appended_not_prepended(mx: Memex) -> None:
    seed(mx)
    first = mx.context("ports", budget_tokens=2000, session="s")
    mx.remember("The API gateway also serves gRPC on port 9090.", kind="fact")
    second = mx.context("ports", budget_tokens=2000, session="s")
    facts = next(s for s in second.sections if s.name == "facts")
    assert facts.memories[-1].content.startswith("The API gateway also serves gRPC")
    cut = second.text.rindex("\n", 0, second.text.index("also serves gRPC")) + 1
    assert cut > second.text.index("## Project facts") + 100
    assert first.text.startswith(second.text[:cut])
    assert (second.prefix_tokens_reused or 0) > 0


def test_iterating_then_result_is_the_same_context(mx: Memex) -> None:
    seed(mx)
    expected = mx.context("billing export", budget_tokens=700)
    stream = mx.context_iter("billing export", budget_tokens=700)
    first = next(iter(stream))
    assert first.name == "pinned"
    assert stream.result().text == expected.text
    full = mx.context_iter("billing export", budget_tokens=700)
    assert len(list(full)) == 7 and full.result().text == expected.text


def test_session_survives_a_new_process_handle(store_path: Path) -> None:
    with Memex.open(store_path) as mx:
        seed(mx)
        mx.context("ports", budget_tokens=500, session="cli")
    with Memex.open(store_path) as mx:
        assert (
            mx.context("sharding", budget_tokens=500, session="cli").prefix_tokens_reused or 0
        ) > 0


def test_near_duplicates_are_included_once(mx: Memex) -> None:
    mx.remember("The staging cluster runs in eu-west-1.", kind="fact")
    mx.remember("the staging cluster runs in EU-west-1!", kind="fact")
    mx.remember("The staging cluster runs in eu-west-1 region.", kind="note")
    ctx = mx.context("where does staging run?", budget_tokens=500)
    assert ctx.text.lower().count("staging cluster") == 1
    included = {e.memory_id for e in ctx.manifest if e.included}
    dups = {e.memory_id for e in ctx.manifest if e.reason.startswith("duplicate of")}
    assert len(included) == 1 and len(dups - included) == 2
    mx.remember("The production cluster runs in us-east-2.", kind="fact")
    assert "us-east-2" in mx.context("where do clusters run?", budget_tokens=500).text


def test_a_reused_packing_follows_an_edit_in_an_earlier_section(store_path: Path) -> None:
    """A decision repeating a fact edited to match it is left out, as a new handle does."""
    with Memex.open(store_path) as mx:
        # Near but not a near-duplicate (5 of 7 word trigrams shared), and as many tokens
        # as the edit below, so the decisions section gets the same allowance after it.
        fact = mx.remember("we decided to run nightly backups at ten", kind="fact")
        mx.remember("We decided to run nightly backups at two.", kind="decision")
        before = mx.context("backups", budget_tokens=600)
        assert before.text.lower().count("nightly backups") == 2
        again = mx.context("backups", budget_tokens=600)
        assert again.text == before.text and again.stats["cache_hit_rate"] == 1.0
        mx.update(fact.id, content="we decided to run nightly backups at two")
        after = mx.context("backups", budget_tokens=600)
        assert {s.name: s.cached for s in after.sections if s.stable}["decisions"] is True
    with Memex.open(store_path) as fresh:
        expected = fresh.context("backups", budget_tokens=600)
    assert after.text == expected.text
    assert after.text.lower().count("nightly backups") == 1
    reasons = [e.reason for e in after.manifest if e.section == "decisions"]
    assert reasons == [f"duplicate of {fact.id}"]


@pytest.mark.parametrize("fmt", ["markdown", "xml"])
def test_recent_conversation_holds_as_many_latest_turns_as_fit(mx: Memex, fmt: str) -> None:
    mx.remember_many(
        {"content": f"turn {i}: ok", "kind": "message", "created_at": T0 + timedelta(minutes=i)}
        for i in range(80)
    )
    counter = make_counter("auto")
    for budget in (40, 300, 900):
        ctx = mx.context("", budget_tokens=budget, sections=["recent"], format=fmt)
        (section,) = ctx.sections
        shown = [m.content for m in section.memories]
        assert shown == [f"turn {i}: ok" for i in range(80 - len(shown), 80)]
        left_over = [e for e in ctx.manifest if not e.included]
        assert len(shown) < 80 and left_over, "the next older turn is offered but does not fit"
        assert section.tokens + left_over[0].tokens > section.allowance
        assert counter.count(ctx.text) == ctx.tokens <= budget


def test_unused_budget_flows_to_sections_with_candidates(mx: Memex) -> None:
    mx.remember_many(
        [
            {
                "content": f"user: turn {i} talks about the lighthouse keeper",
                "kind": "message",
                "created_at": T0 + timedelta(minutes=i),
            }
            for i in range(200)
        ]
    )
    ctx = mx.context("lighthouse keeper", budget_tokens=1000)
    assert ctx.tokens > 900  # not just recall's and recent's own small shares


def test_streaming_and_time_limit(mx: Memex) -> None:
    seed(mx)
    stream = mx.context_iter("billing", budget_tokens=800)
    seen = [section.name for section in stream]
    assert seen[-2:] == ["recall", "recent"] and len(seen) == 7
    assert stream.result().tokens <= 800
    limited = mx.context("billing", budget_tokens=800, time_limit_ms=1e-6)
    assert limited.stats["sections_skipped"]
    assert limited.tokens <= 800

    async def collect() -> list[str]:
        return [s.name async for s in mx.acontext_iter("billing", budget_tokens=800)]

    assert asyncio.run(collect()) == seen


def test_strategies_shift_the_budget(mx: Memex) -> None:
    seed(mx)
    rel = mx.context("billing export job", budget_tokens=500, strategy="relevance_first")
    pri = mx.context("billing export job", budget_tokens=500, strategy="priority_first")
    volatile = {
        c: sum(s.tokens for s in x.sections if not s.stable) for c, x in (("r", rel), ("p", pri))
    }
    assert volatile["r"] > volatile["p"]
    assert (
        mx.context("", budget_tokens=500, strategy="adaptive").stats["strategy"] == "priority_first"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget_tokens": 0},
        {"strategy": "random"},
        {"sections": ["nope"]},
        {"format": "html"},
        {"shares": {"recall": 2.0}},
        {"time_limit_ms": -1},
        {"session": ""},
    ],
)
def test_bad_requests(mx: Memex, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        mx.context("q", **kwargs)  # type: ignore[arg-type]


def test_pure_helpers() -> None:
    assert common_prefix("## A\n- x\n- y\n", "## A\n- x\n- z\n") == "## A\n- x\n"
    assert common_prefix("abc", "abd") == ""
    dedup = Deduplicator()
    dedup.add("1", "The cat sat on the mat near the door")
    assert dedup.duplicate_of("2", "the cat sat on the mat near the door!") == "1"
    assert dedup.duplicate_of("3", "A dog slept in the garden all day") is None
    assert [s.name for s in resolve_sections(["recall", "facts"])] == ["facts", "recall"]
    assert HeuristicCounter().count("abcdefgh") == 2


def test_a_restored_snapshot_deduplicates_like_the_original() -> None:
    texts = [
        "The cat sat on the mat near the door",
        "A dog slept in the garden all day long",
        "Deploys happen on Tuesdays after the standup",
        "the cat sat on the mat near the door!",
        "A dog slept in the garden all day long too",
        "Rollbacks need a ticket and a second reviewer",
    ]
    original = Deduplicator()
    original.add("a", texts[0])
    original.add("b", texts[1])
    snapshot = original.snapshot()
    original.add("c", texts[2])
    restored = Deduplicator()
    restored.restore(snapshot)
    restored.add("c", texts[2])
    assert restored.included == original.included
    probes = [*texts[3:], texts[2].lower(), "Something else entirely, with no overlap at all"]
    answers = [original.duplicate_of("x", t) for t in probes]
    assert answers == [restored.duplicate_of("x", t) for t in probes]
    assert answers[:2] == ["a", "b"] and answers[2] is None and answers[3] == "c"
    restored.add("d", texts[5])  # a snapshot is never changed by what comes after it
    assert [item[0] for item in snapshot.items] == ["a", "b"]
    assert sorted(snapshot.exact.values()) == ["a", "b"]

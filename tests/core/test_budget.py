"""A context's budget, as tables of cases: each section's allowance with carry-over, and
the final trim that brings the rendered whole within budget.

Shares are binary fractions (halves, quarters, eighths) so every allowance can be worked
out by hand without rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memex.core.budget import Allocation, fit, trim_target
from memex.core.build import build_memory
from memex.core.context import (
    Candidate,
    SectionSpec,
    load_order,
    render_context,
    render_order,
)
from memex.core.models import Scope

S1 = SectionSpec("s1", "Stable one", 0.5, "kinds", True, ("fact",))
S2 = SectionSpec("s2", "Stable two", 0.25, "kinds", True, ("decision",))
V1 = SectionSpec("v1", "Volatile one", 0.125, "recall", False)
V2 = SectionSpec("v2", "Volatile two", 0.125, "recent", False, ("message",))
SPECS = (S1, S2, V1, V2)  # shares of 800 tokens: 400, 200, 100, 100
ALL = 10**6  # a section that would take everything it is given


def allocate(
    specs: Sequence[SectionSpec],
    strategy: str,
    budget: int,
    wants: Mapping[str, int],
    skipped: frozenset[str] = frozenset(),
) -> list[tuple[str, int, int]]:
    """Each section's (name, allowance, tokens taken) in load order; a section takes what
    it wants up to its allowance, a skipped one is passed over unpacked."""
    allocation = Allocation.start(specs, strategy, budget)
    taken: list[tuple[str, int, int]] = []
    for spec in load_order(specs):
        if spec.name in skipped:
            continue
        allowance = allocation.allowance(spec)
        tokens = min(wants.get(spec.name, ALL), allowance)
        allocation = allocation.after(spec, allowance, tokens)
        taken.append((spec.name, allowance, tokens))
    return taken


@pytest.mark.parametrize(
    ("strategy", "budget", "wants", "skipped", "expected"),
    [
        # Every section fills its share exactly.
        ("balanced", 800, {}, (),
         [("s1", 400, 400), ("s2", 200, 200), ("v1", 100, 100), ("v2", 100, 100)]),
        # What a stable section leaves goes to the next stable one.
        ("balanced", 800, {"s1": 100}, (),
         [("s1", 400, 100), ("s2", 500, 500), ("v1", 100, 100), ("v2", 100, 100)]),
        # Stable carry left after the last stable section goes to the first volatile
        # one, which spends it: the next volatile one gets only its own leftover.
        ("balanced", 800, {"s1": 100, "s2": 50}, (),
         [("s1", 400, 100), ("s2", 500, 50), ("v1", 550, 550), ("v2", 100, 100)]),
        ("balanced", 800, {"s1": 100, "s2": 50, "v1": 0}, (),
         [("s1", 400, 100), ("s2", 500, 50), ("v1", 550, 0), ("v2", 650, 650)]),
        # What a volatile section leaves goes to the next volatile one.
        ("balanced", 800, {"v1": 10}, (),
         [("s1", 400, 400), ("s2", 200, 200), ("v1", 100, 10), ("v2", 190, 190)]),
        # Nothing to show anywhere: the whole budget rolls on to the last section.
        ("balanced", 800, {"s1": 0, "s2": 0, "v1": 0, "v2": 0}, (),
         [("s1", 400, 0), ("s2", 600, 0), ("v1", 700, 0), ("v2", 800, 0)]),
        # A section skipped (time limit) passes the carry on untouched.
        ("balanced", 800, {"s1": 100}, ("s2",),
         [("s1", 400, 100), ("v1", 400, 400), ("v2", 100, 100)]),
        # Shares round down: an eighth of 100 tokens is 12.
        ("balanced", 100, {}, (),
         [("s1", 50, 50), ("s2", 25, 25), ("v1", 12, 12), ("v2", 12, 12)]),
        # priority_first: the stable sections share 3/4 of the budget (600 tokens);
        # each may take what those before it did not, and the stable carry on top of
        # that, capped by what is left of the budget.
        ("priority_first", 800, {}, (),
         [("s1", 600, 600), ("s2", 0, 0), ("v1", 100, 100), ("v2", 100, 100)]),
        ("priority_first", 800, {"s1": 100}, (),
         [("s1", 600, 100), ("s2", 700, 700), ("v1", 0, 0), ("v2", 0, 0)]),
        ("priority_first", 800, {"s1": 100, "s2": 100}, (),
         [("s1", 600, 100), ("s2", 700, 100), ("v1", 600, 600), ("v2", 0, 0)]),
        # time_based allocates as balanced does (it only changes the load order).
        ("time_based", 800, {"s1": 100}, (),
         [("s1", 400, 100), ("s2", 500, 500), ("v1", 100, 100), ("v2", 100, 100)]),
    ],
)  # fmt: skip
def test_allowances_carry_what_earlier_sections_left(
    strategy: str,
    budget: int,
    wants: dict[str, int],
    skipped: tuple[str, ...],
    expected: list[tuple[str, int, int]],
) -> None:
    assert allocate(SPECS, strategy, budget, wants, frozenset(skipped)) == expected


def test_relevance_first_moves_budget_to_volatile_sections() -> None:
    # Stable shares halve, volatile ones gain a quarter: 0.25, 0.125, 0.25, 0.375.
    specs = (S1, S2, replace(V1, share=0.0), V2)
    assert allocate(specs, "relevance_first", 800, {}) == [
        ("s1", 200, 200), ("s2", 100, 100), ("v1", 200, 200), ("v2", 300, 300),
    ]  # fmt: skip
    assert allocate(specs, "balanced", 800, {}) == [
        ("s1", 457, 457), ("s2", 228, 228), ("v1", 0, 0), ("v2", 114, 114),
    ]  # fmt: skip


@given(
    budget=st.integers(1, 5000),
    strategy=st.sampled_from(["balanced", "priority_first", "relevance_first", "time_based"]),
    shares=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    wants=st.lists(st.integers(0, 6000), min_size=4, max_size=4),
)
def test_property_the_budget_is_never_exceeded(
    budget: int, strategy: str, shares: list[float], wants: list[int]
) -> None:
    specs = tuple(replace(s, share=x) for s, x in zip(SPECS, shares, strict=True))
    taken = allocate(
        specs, strategy, budget, {s.name: w for s, w in zip(SPECS, wants, strict=True)}
    )
    assert all(allowance >= 0 for _, allowance, _ in taken)
    assert sum(tokens for _, _, tokens in taken) <= budget


# -- the final trim ------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def cand(name: str, day: int) -> Candidate:
    """A candidate named ``name`` (its content), created on day ``day``."""
    item = {"content": name, "kind": "fact", "created_at": T0 + timedelta(days=day)}
    memory = build_memory(item, within=Scope(tenant="t"), now=T0, max_content_bytes=1000)[0]
    return Candidate(memory, f"- {name}\n", 1)


def lines(text: str) -> int:
    """The token count of these tests: one a line (a section's header and its blank
    closing line are a line each)."""
    return text.count("\n")


def packed(**sections: str) -> dict[str, list[Candidate]]:
    """Sections' candidates in packing order, each named by a letter created on a day
    given by its position in the alphabet."""
    return {
        name: [cand(letter, ord(letter) - ord("a")) for letter in letters]
        for name, letters in sections.items()
    }


ORDERED = render_order((V1, S1, V2, S2))  # stable first, each group as given


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        (packed(s1="a", s2="b", v1="c", v2="d"), "v2"),
        (packed(s1="a", s2="b", v1="c", v2=""), "v1"),
        (packed(s1="a", s2="b", v1="c"), "v1"),  # v2 never loaded
        (packed(s1="a", s2="", v1="", v2=""), "s1"),
        (packed(s1="a", s2="b"), "s2"),
        (packed(s1="", s2="", v1="", v2=""), None),
        ({}, None),
    ],
)
def test_trim_target_is_the_last_non_empty_section_rendered(
    chosen: dict[str, list[Candidate]], expected: str | None
) -> None:
    assert [s.name for s in ORDERED] == ["s1", "s2", "v1", "v2"]
    assert trim_target(ORDERED, chosen) == expected


@pytest.mark.parametrize(
    ("chosen", "budget", "trimmed", "left"),
    [
        # 4 sections of one line: 3 lines each, 12 in all.
        (packed(s1="a", s2="b", v1="c", v2="d"), 12, [], "a b c d"),
        # One line over: v2's only memory goes, and its header and blank line with it.
        (packed(s1="a", s2="b", v1="c", v2="d"), 11, ["v2"], "a b c"),
        (packed(s1="a", s2="b", v1="cd", v2="ef"), 12, ["v2", "v2"], "a b cd"),
        # A section's last packed memory goes, not the last one it renders: v1 is recall
        # (rendered as packed), s1 renders by time.
        (packed(s1="ba", v1="dc"), 7, ["v1"], "ba d"),
        (packed(s1="ba", v1="dc"), 3, ["v1", "v1", "s1"], "b"),
        # A budget nothing fits: everything goes.
        (packed(s1="a", v2="b"), 0, ["v2", "s1"], ""),
    ],
)
def test_fit_drops_the_last_packed_memories_until_within_budget(
    chosen: dict[str, list[Candidate]], budget: int, trimmed: list[str], left: str
) -> None:
    before = {name: list(c) for name, c in chosen.items()}
    fitted = fit(ORDERED, chosen, "markdown", budget, lines)
    assert fitted.trimmed == trimmed
    kept = ["".join(c.memory.content for c in fitted.chosen.get(s.name, [])) for s in ORDERED]
    assert " ".join(k for k in kept if k) == left
    assert (fitted.text, fitted.breakpoints) == render_context(ORDERED, fitted.chosen, "markdown")
    assert fitted.tokens == lines(fitted.text) and (fitted.tokens <= budget or not fitted.text)
    assert chosen == before  # the packing given is not changed


def test_fit_stops_when_nothing_is_left_to_trim() -> None:
    fitted = fit(ORDERED, packed(s1="a", v1="b"), "markdown", 0, lambda text: lines(text) + 1)
    assert (fitted.text, fitted.tokens, fitted.trimmed) == ("", 1, ["v1", "s1"])


def test_render_context_marks_where_each_stable_section_ends() -> None:
    text, breakpoints = render_context(ORDERED, packed(s1="a", s2="", v1="c", v2="d"), "markdown")
    first = "## Stable one\n- a\n\n"
    assert text == first + "## Volatile one\n- c\n\n## Volatile two\n- d\n\n"
    assert breakpoints == [len(first)]

"""Long memories in a context: folding, cutting to fit, and which are cut or skipped.

Counted with the heuristic counter (a token per four characters, rounded up), so every
case can be worked out by hand: a markdown line is 16 characters besides its content,
a cut one 24 (``- [2024-01-01] `` ... `` … [cut]`` and the line break).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memex.context.assembler import size_class
from memex.core.build import build_memory
from memex.core.context import (
    Deduplicator,
    SectionSpec,
    make_candidates,
    pack_section,
    text_shape,
)
from memex.core.lines import CUT_MIN_TOKENS, Format, cut_line, cut_text, fold, render_line
from memex.core.models import Memory, Scope
from memex.tokens import HeuristicCounter

H = HeuristicCounter()
T0 = datetime(2024, 1, 1, tzinfo=UTC)
SPEC = SectionSpec("facts", "Project facts", 0.15, "kinds", True, ("fact",))


def mem(content: str, n: int = 0) -> Memory:
    item = {"content": content, "kind": "fact", "id": f"00000000-0000-7000-8000-{n:012d}"}
    return build_memory(item, within=Scope(tenant="default"), now=T0, max_content_bytes=10**9)[0]


def words(n: int, i: int = 0) -> str:
    return " ".join([f"{chr(97 + i)}bcd"] * n)  # a markdown line of 15 + 5n characters


@pytest.mark.parametrize(
    ("content", "limit", "expected"),
    [
        ("a  b\n c", None, ("a b c", False)),
        ("a  b\n c", 10, ("a b c", False)),
        ("alpha beta gamma", 8, ("alpha be", True)),
        ("abc", 3, ("abc", False)),
        ("abc  \n ", 3, ("abc", False)),  # only whitespace after the limit
        (" " * 300 + "x y", 3, ("x y", False)),  # mostly whitespace: read on
        ("x" + " " * 1000 + "yz", 3, ("x y", True)),
        ("ab", 0, ("", True)),
        ("", 0, ("", False)),
    ],
)
def test_fold(content: str, limit: int | None, expected: tuple[str, bool]) -> None:
    assert fold(content, limit) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (16, "alpha beta gamma"),
        (12, "alpha beta"),  # mid-word: back to the last space
        (11, "alpha beta"),
        (10, "alpha beta"),  # at a space
        (3, "alp"),  # no space in the second half: cut where it stands
        (0, ""),
    ],
)
def test_cut_text_prefers_a_word_boundary(n: int, expected: str) -> None:
    assert cut_text("alpha beta gamma", n) == expected
    assert cut_text("a " + "x" * 20, 10) == "a xxxxxxxx"  # one long word


def test_a_cut_line_is_marked_in_both_formats() -> None:
    m = mem("Tom & <Jerry>")
    assert render_line(m, "Tom &", "markdown", cut=True) == "- [2024-01-01] Tom & … [cut]\n"
    assert render_line(m, "Tom & <Jerry>", "markdown") == "- [2024-01-01] Tom & <Jerry>\n"
    element = ET.fromstring(render_line(m, "Tom & <Jer", "xml", cut=True))
    assert element.get("cut") == "true" and element.text == "Tom & <Jer …"
    assert ET.fromstring(render_line(m, "Tom & <Jerry>", "xml")).get("cut") is None


PIECES = ["Tom", "&", "<b>", "a&b", "é", "中文", "😀", "x" * 40, "\n", "  ", "word"]
JOINED = st.lists(st.sampled_from(PIECES), min_size=1, max_size=400).map(" ".join)
CONTENTS = JOINED.filter(str.strip)


@settings(max_examples=150, deadline=None)
@given(content=CONTENTS, room=st.integers(0, 400), fmt=st.sampled_from(["markdown", "xml"]))
def test_a_cut_fits_shows_a_prefix_and_never_splits_an_escape(
    content: str, room: int, fmt: Format
) -> None:
    m = mem(content)
    cut = cut_line(m, room, fmt, H.count)
    markup = H.count(render_line(m, "", fmt, cut=True))
    folded = fold(content)[0]
    if room - markup < CUT_MIN_TOKENS or len(folded) < 2:
        assert cut is None
        return
    assert cut is not None
    assert cut.tokens == H.count(cut.line) <= room
    assert cut.text and folded.startswith(cut.text) and len(cut.text) < len(folded)
    if fmt == "xml":
        element = ET.fromstring(cut.line)
        assert element.get("cut") == "true" and element.text == cut.text + " …"
    else:
        assert cut.line == render_line(m, cut.text, "markdown", cut=True)


@pytest.mark.parametrize("room", [60, 100, 400, 2000])
def test_a_cut_takes_nearly_all_the_room_and_reads_little_more(room: int) -> None:
    asked: list[int] = []

    def count(text: str) -> int:
        asked.append(len(text))
        return H.count(text)

    long = mem("lorem ipsum dolor sit amet, consectetur " * 50_000)
    cut = cut_line(long, room, "markdown", count)
    assert cut is not None
    assert room - 3 - room // 50 <= cut.tokens <= room
    assert cut.text.endswith(("lorem", "ipsum", "dolor", "sit", "amet,", "consectetur"))
    assert max(asked) <= 3 * 4 * room  # what fits is 4 * room characters
    assert len(asked) <= 16


Sizes = Sequence[int | str]


def pack(sizes: Sizes, allowance: int = 100, header: int = 5, cutting: bool = True) -> list[str]:
    """Pack memories of ``n`` four-letter words (or the given text); each one's fate."""
    memories = [mem(words(s, i) if isinstance(s, int) else s, i) for i, s in enumerate(sizes)]
    cands = make_candidates(memories, {}, "markdown", allowance, H.count_many, 4, shapes=True)
    cut = partial(cut_line, fmt="markdown", count=H.count) if cutting else None
    packed = pack_section(SPEC, cands, allowance, header, Deduplicator(), cut)
    assert packed.tokens <= allowance
    assert packed.tokens == (header if packed.chosen else 0) + sum(c.tokens for c in packed.chosen)
    assert all(H.count(c.line) == c.tokens for c in packed.chosen)
    fates = []
    for entry in packed.entries:
        assert entry.content_chars == len(memories[int(entry.memory_id[-12:])].content)
        assert (entry.shown_chars is not None) == entry.cut
        fates.append("cut" if entry.cut else "whole" if entry.included else entry.reason)
    return fates


@pytest.mark.parametrize(
    ("sizes", "fates"),
    [
        # tokens: 5 words 10, 10 words 17, 60 words 79, 73 words 95, 74 words 97,
        # 400 words 504; allowance 100, header 5: more than 95 never fits whole.
        ([5, 5], ["whole", "whole"]),
        ([60, 60, 5], ["whole", "budget", "whole"]),  # fits the section whole: skipped
        ([400, 5], ["cut", "budget"]),  # never fits whole: cut to what is left
        ([10, 400, 5], ["whole", "cut", "budget"]),
        ([60, 400, 5], ["whole", "budget", "whole"]),  # 16 left: too little to cut
        ([5, 73], ["whole", "budget"]),  # 95: would fit alone, so not cut
        ([5, 74], ["whole", "cut"]),  # 97: never fits, cut to the 85 left
        (["x" * 244, 400], ["whole", "cut"]),  # 30 left: 6 markup + 24 shown
        (["x" * 248, 400], ["whole", "budget"]),  # 29 left: one short
        ([20, 20, 20, 100, 4], ["whole", "whole", "whole", "budget", "budget"]),  # 8 left
        ([20, 20, 20, 100, 1], ["whole", "whole", "whole", "budget", "whole"]),
    ],
)
def test_which_memories_are_cut_and_which_skipped(sizes: Sizes, fates: list[str]) -> None:
    assert pack(sizes) == fates


def test_without_a_cutter_long_memories_are_skipped() -> None:
    assert pack([400, 5], cutting=False) == ["budget", "whole"]


def test_a_memory_already_shown_is_a_duplicate_even_cut_differently() -> None:
    dedup = Deduplicator()
    long = mem(words(400), 7)
    dedup.add(long.id, text_shape(words(30)))  # shown before, cut to 30 words
    cands = make_candidates([long], {}, "markdown", 100, H.count_many, 4, shapes=True)
    cut = partial(cut_line, fmt="markdown", count=H.count)
    packed = pack_section(SPEC, cands, 100, 5, dedup, cut)
    assert not packed.chosen and packed.entries[0].reason == f"duplicate of {long.id}"


def test_candidates_are_counted_only_when_they_could_fit() -> None:
    asked: list[str] = []

    def count_many(texts: Sequence[str]) -> list[int]:
        asked.extend(texts)
        return H.count_many(texts)

    short, near, long = mem("short", 0), mem("y" * 190, 1), mem("z " * 5_000, 2)
    # ceiling 50 at 4 characters a token: a content over 200 characters cannot fit
    cands = make_candidates([short, near, long], {}, "markdown", 50, count_many, 4, shapes=True)
    assert [c.tokens for c in cands] == [6, 52, 51]
    assert cands[2].line == "" and all(len(text) <= 216 for text in asked) and len(asked) == 2
    assert cands[0].shape == text_shape("short")
    assert cands[1].shape is None and cands[2].shape is None  # neither can be shown whole
    unbounded = make_candidates([long], {}, "markdown", 50, H.count_many, None, shapes=False)
    assert unbounded[0].tokens == H.count(render_line(long, fold(long.content)[0], "markdown"))


@pytest.mark.parametrize(
    ("allowance", "ceiling"),
    [(0, 64), (1, 64), (64, 64), (65, 80), (600, 640), (1024, 1024), (1025, 1280),
     (2200, 2560), (4000, 4096), (4097, 5120)],
)  # fmt: skip
def test_size_class(allowance: int, ceiling: int) -> None:
    assert size_class(allowance) == ceiling
    assert allowance <= ceiling <= max(64, allowance * 5 // 4)


def test_an_uncounted_candidate_is_never_included_whole() -> None:
    """Even offered to a section larger than it was prepared for, a candidate too long to
    count is only cut (or skipped): it has no line to include whole."""
    long = mem("z " * 5_000, 1)
    (cand,) = make_candidates([long], {}, "markdown", 50, H.count_many, 4, shapes=True)
    assert cand.line == "" and cand.tokens == 51
    cut = partial(cut_line, fmt="markdown", count=H.count)
    packed = pack_section(SPEC, [cand], 100, 5, Deduplicator(), cut)
    assert packed.entries[0].cut and 90 <= packed.tokens <= 100
    assert not pack_section(SPEC, [cand], 100, 5, Deduplicator()).chosen

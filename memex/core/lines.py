"""A memory as one line of a context, whole or cut to fit a number of tokens.

Pure functions: the token count is passed in. A memory's content is folded (runs of
whitespace become one space) and never folded or counted beyond what could be used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Literal

from memex.core.models import Memory

Format = Literal["markdown", "xml"]
TokenCount = Callable[[str], int]

CUT_MARK = " … [cut]"
"""Ends a markdown line whose content was cut to fit."""
XML_CUT_MARK = " …"
"""Ends the text of an XML memory element marked ``cut="true"``."""
CUT_MIN_TOKENS = 24
"""A memory is cut only when this many tokens of its content can be shown."""
_GUESS_CHARS_PER_TOKEN = 4
"""Where the search for a cut starts (the length is then checked by counting)."""


def quoteattr(value: str) -> str:
    """``value`` as a double-quoted XML attribute value."""
    return '"' + escape(value, quote=True) + '"'


def fold(content: str, limit: int | None = None) -> tuple[str, bool]:
    """The content with whitespace runs folded to one space, at most ``limit`` characters
    of it, and whether more follows.

    Only as much of the content is read as ``limit`` needs (more only when it is mostly
    whitespace), so a huge content costs what a short one does.
    """
    if limit is None or len(content) <= limit:
        return " ".join(content.split()), False
    read = limit + 1
    while True:
        # Folding a prefix gives a prefix of the whole folding (its last word may be part
        # of a longer one): enough to tell whether the folding is longer than ``limit``.
        folded = " ".join(content[:read].split())
        if len(folded) > limit:
            return folded[:limit], True
        if read >= len(content):
            return folded, False
        read *= 2


def render_line(memory: Memory, text: str, fmt: Format, *, cut: bool = False) -> str:
    """One memory's line holding ``text`` (its folded content, or the start of it when
    ``cut``, which marks the line as cut)."""
    day = memory.created_at.strftime("%Y-%m-%d")
    if fmt == "xml":
        mark = ' cut="true"' if cut else ""
        tail = XML_CUT_MARK if cut else ""
        return (
            f"<memory id={quoteattr(memory.id)} kind={quoteattr(memory.kind)} "
            f"date={quoteattr(day)}{mark}>{escape(text, quote=False)}{tail}</memory>\n"
        )
    return f"- [{day}] {text}{CUT_MARK if cut else ''}\n"


def memory_line(memory: Memory, fmt: Format) -> str:
    """One memory as it appears in a context (one line, whitespace folded)."""
    return render_line(memory, fold(memory.content)[0], fmt)


@dataclass(frozen=True, slots=True)
class Cut:
    """A memory's line cut to fit: the line, its tokens and the content it shows."""

    line: str
    tokens: int
    text: str


def cut_text(text: str, n: int) -> str:
    """The first ``n`` characters of a folded text, back to the last word boundary when
    one is in their second half (a longer word is cut where it stands)."""
    piece = text[:n]
    if n < len(text) and text[n] != " ":
        space = piece.rfind(" ")
        if space >= n // 2:
            piece = piece[:space]
    return piece.rstrip()


def cut_line(memory: Memory, room: int, fmt: Format, count: TokenCount) -> Cut | None:
    """The memory's line with its content cut so the line takes at most ``room`` tokens,
    or None when fewer than ``CUT_MIN_TOKENS`` of content would fit.

    The content is cut first, at a word boundary where possible, then rendered (so an
    XML escape is never split). The length is searched from a guess of four characters
    a token, doubling while the line fits and then halving the gap, each step checked
    by counting: nothing much longer than what fits is ever folded or counted.
    """
    markup = count(render_line(memory, "", fmt, cut=True))
    if room - markup < CUT_MIN_TOKENS:
        return None
    guess = (room - markup) * _GUESS_CHARS_PER_TOKEN
    folded, more = fold(memory.content, 2 * guess + 64)
    best: Cut | None = None

    def attempt(n: int) -> bool:
        nonlocal folded, more, best
        if more and n >= len(folded):
            folded, more = fold(memory.content, 2 * n)
        text = cut_text(folded, n)
        line = render_line(memory, text, fmt, cut=True)
        tokens = count(line)
        if tokens > room:
            return False
        if text and (best is None or len(text) > len(best.text)):
            best = Cut(line, tokens, text)
        return True

    def top() -> int:  # a cut shows less than the whole content
        return len(folded) if more else max(0, len(folded) - 1)

    low, high = 0, min(top(), guess)
    while attempt(high):
        low = high
        if high >= top():
            return best
        high = min(top(), 2 * high)
    while high - low > max(1, low // 64):  # within about 1.5% of the longest that fits
        middle = (low + high) // 2
        if attempt(middle):
            low = middle
        else:
            high = middle
    return best

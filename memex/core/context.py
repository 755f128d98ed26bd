"""Context assembly decisions: sections, their shares, packing, deduplication and rendering.

Each section's allowance, and the final trim of the whole, are ``core.budget``'s.

Pure functions over memories and token counts; the service gathers the candidates.
Rendering is deterministic, stable sections come first in a canonical order, so
consecutive contexts share a long identical prefix (what prompt caches reuse).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from memex.core.lines import CUT_MIN_TOKENS, Cut, Format, fold, quoteattr, render_line
from memex.core.lines import memory_line as memory_line
from memex.core.models import Memory
from memex.core.validate import shown, validate_fraction
from memex.errors import ValidationError

Source = Literal["pinned", "kinds", "recall", "recent"]
Strategy = Literal["relevance_first", "priority_first", "balanced", "time_based", "adaptive"]
STRATEGIES: tuple[str, ...] = (
    "relevance_first",
    "priority_first",
    "balanced",
    "time_based",
    "adaptive",
)
PINNED_TAG = "pinned"
Cutter = Callable[[Memory, int], Cut | None]
"""Cuts a memory's line to fit a number of tokens (``lines.cut_line`` with a format and
a token count), or None when too little would be shown."""
Shape = tuple[str, frozenset[str]]
"""A text as deduplication sees it: its normalised words and their word trigrams."""


@dataclass(frozen=True, slots=True)
class SectionSpec:
    """One section of a context: where its memories come from and its share of the budget.

    Stable sections (pinned, facts, decisions, patterns, reference) do not depend on the
    query and are rendered first; volatile ones (recall, recent) come last.
    """

    name: str
    title: str
    share: float
    source: Source
    stable: bool
    kinds: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    limit: int = 200

    def change_keys(self) -> tuple[str, ...]:
        """The change counters whose movement can alter this section's content."""
        if self.source == "pinned":
            return (f"tag:{PINNED_TAG}",)
        return tuple(f"kind:{k}" for k in self.kinds)


DEFAULT_SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("pinned", "Pinned", 0.2, "pinned", True),
    SectionSpec("patterns", "Learned patterns and preferences", 0.2, "kinds", True,
                ("pattern", "preference")),
    SectionSpec("facts", "Project facts", 0.15, "kinds", True, ("fact",)),
    SectionSpec("decisions", "Decisions", 0.15, "kinds", True, ("decision",)),
    SectionSpec("reference", "Reference", 0.2, "kinds", True, ("reference", "summary")),
    SectionSpec("recall", "Relevant memories", 0.07, "recall", False, (),
                depends_on=("pinned", "patterns", "facts", "decisions", "reference")),
    SectionSpec("recent", "Recent conversation", 0.03, "recent", False, ("message", "event"),
                depends_on=("recall",), limit=50),
)  # fmt: skip


def resolve_sections(
    names: Sequence[str] | None, shares: Mapping[str, float] | None = None
) -> tuple[SectionSpec, ...]:
    """The default sections, restricted to ``names`` (in canonical order), shares overridden."""
    known = {s.name: s for s in DEFAULT_SECTIONS}
    if names is not None:
        if isinstance(names, str) or not isinstance(names, Iterable):
            raise ValidationError("sections must be a list of section names")
        names = list(names)
        unknown = [n for n in names if not isinstance(n, str) or n not in known]
        if unknown:
            raise ValidationError(
                f"unknown section {shown(unknown[0])}; choose from {', '.join(known)}"
            )
    chosen = [s for s in DEFAULT_SECTIONS if names is None or s.name in names]
    if shares is not None and not isinstance(shares, Mapping):
        raise ValidationError("shares must map section names to numbers from 0 to 1")
    if shares:
        bad = [n for n in shares if not isinstance(n, str) or n not in known]
        if bad:
            raise ValidationError(f"unknown section {shown(bad[0])} in shares")
        for name, value in shares.items():
            validate_fraction(value, f"share of {name}")
        chosen = [_with_share(s, shares.get(s.name, s.share)) for s in chosen]
    if not chosen:
        raise ValidationError("a context needs at least one section")
    return tuple(chosen)


def _with_share(spec: SectionSpec, share: float) -> SectionSpec:
    return SectionSpec(spec.name, spec.title, share, spec.source, spec.stable, spec.kinds,
                       spec.depends_on, spec.limit)  # fmt: skip


def strategy_shares(specs: Sequence[SectionSpec], strategy: str) -> dict[str, float]:
    """Each section's share of the budget under a strategy, normalised to sum to 1."""
    raw = {s.name: s.share for s in specs}
    if strategy == "relevance_first":
        raw = {s.name: (s.share * 0.5 if s.stable else s.share + 0.25) for s in specs}
    total = sum(raw.values()) or 1.0
    return {name: value / total for name, value in raw.items()}


def load_order(specs: Sequence[SectionSpec]) -> list[SectionSpec]:
    """Sections ordered so each comes after those it depends on (stable first)."""
    by_name = {s.name: s for s in specs}
    done: list[SectionSpec] = []
    seen: set[str] = set()

    def visit(spec: SectionSpec, stack: tuple[str, ...]) -> None:
        if spec.name in seen:
            return
        if spec.name in stack:
            raise ValidationError(f"sections depend on each other in a cycle: {spec.name}")
        for dep in spec.depends_on:
            if dep in by_name:
                visit(by_name[dep], (*stack, spec.name))
        seen.add(spec.name)
        done.append(spec)

    for spec in sorted(specs, key=lambda s: (not s.stable, [x.name for x in specs].index(s.name))):
        visit(spec, ())
    return done


@dataclass(frozen=True, slots=True)
class Candidate:
    """A memory offered to a section, with its rendered line and score components.

    A memory whose folded content is longer than the section could ever hold has no
    line (``""``) and ``tokens`` is a lower bound: it is never counted whole, only cut.
    """

    memory: Memory
    line: str
    tokens: int
    score: float = 0.0
    why: Mapping[str, float] = field(default_factory=dict)
    shape: Shape | None = None
    """The content's deduplication shape (``text_shape``), if worked out in advance."""
    shown: int | None = None
    """Characters of the folded content the line shows, when it was cut to fit."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A manifest line: a memory included or left out, and why."""

    memory_id: str
    section: str
    included: bool
    reason: str
    tokens: int
    score: float
    why: Mapping[str, float]
    content_chars: int = 0
    """The memory's whole content, in characters."""
    shown_chars: int | None = None
    """Characters of its (folded) content shown, when cut."""

    @property
    def cut(self) -> bool:
        """Included with its content cut to fit."""
        return self.shown_chars is not None


@dataclass(frozen=True, slots=True)
class Packed:
    """What one section holds after allocation."""

    spec: SectionSpec
    chosen: list[Candidate]
    tokens: int
    allowance: int
    entries: list[Entry]


def normalise_text(text: str) -> str:
    """Lowercased words only: two memories with the same words are the same memory."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _shingles(text: str) -> frozenset[str]:
    words = text.split()
    if len(words) < 3:
        return frozenset((text,))
    return frozenset(" ".join(words[i : i + 3]) for i in range(len(words) - 2))


def text_shape(text: str) -> Shape:
    """The deduplication shape of a text (worth keeping beside a cached candidate)."""
    norm = normalise_text(text)
    return norm, _shingles(norm)


def shape_of(cand: Candidate) -> Shape:
    """A candidate's shape, worked out now if it was not in advance."""
    return cand.shape if cand.shape is not None else text_shape(cand.memory.content)


@dataclass(slots=True)
class DedupLayer:
    """What the deduplicator has indexed, as one unit.

    A snapshot never changes once taken, so a packing that is reused can hand the state
    after it to another context instead of adding its memories one by one again.
    """

    exact: dict[str, str] = field(default_factory=dict)
    index: dict[str, list[int]] = field(default_factory=dict)
    items: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


class Deduplicator:
    """Remembers what was included; tells whether a new text is a near-duplicate of it."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self._base = DedupLayer()  # a snapshot, shared: never changed here
        self._top = DedupLayer()

    @property
    def included(self) -> tuple[tuple[str, str], ...]:
        """Each memory added so far, in order, and its normalised text: all that the next
        decision depends on."""
        layers = (self._base, self._top)
        return tuple((memory_id, norm) for layer in layers for memory_id, norm, _ in layer.items)

    def snapshot(self) -> DedupLayer:
        """Everything included so far, in one layer that nothing changes afterwards."""
        merged = DedupLayer()
        for layer in (self._base, self._top):
            offset = len(merged.items)
            for norm, memory_id in layer.exact.items():
                merged.exact.setdefault(norm, memory_id)
            for gram, positions in layer.index.items():
                merged.index.setdefault(gram, []).extend(i + offset for i in positions)
            merged.items.extend(layer.items)
            merged.ids.update(layer.ids)
        return merged

    def restore(self, snapshot: DedupLayer) -> None:
        """Continue from a snapshot (taken from a deduplicator in the same state as this
        one, plus what it added since): as if each of its memories had been added."""
        self._base, self._top = snapshot, DedupLayer()

    def duplicate_of(self, memory_id: str, text: str | Shape) -> str | None:
        """The id of an included memory this text nearly repeats, if any (the memory's
        own, if it was included already: shown cut to two lengths it could look new)."""
        norm, grams = text_shape(text) if isinstance(text, str) else text
        layers = (self._base, self._top)
        if any(memory_id in layer.ids for layer in layers):
            return memory_id
        for layer in layers:
            if norm in layer.exact:
                return layer.exact[norm]
        for layer in layers:
            counts: dict[int, int] = {}
            for gram in grams:
                for i in layer.index.get(gram, ()):
                    counts[i] = counts.get(i, 0) + 1
            for i, shared in counts.items():
                other_id, _, other = layer.items[i]
                if shared / len(grams | other) >= self.threshold:
                    return other_id
        return None

    def add(self, memory_id: str, text: str | Shape) -> None:
        norm, grams = text_shape(text) if isinstance(text, str) else text
        top = self._top
        top.exact.setdefault(norm, memory_id)
        position = len(top.items)
        top.items.append((memory_id, norm, grams))
        top.ids.add(memory_id)
        for gram in grams:
            top.index.setdefault(gram, []).append(position)


def pack_section(
    spec: SectionSpec,
    candidates: Sequence[Candidate],
    allowance: int,
    header_tokens: int,
    dedup: Deduplicator,
    cut: Cutter | None = None,
) -> Packed:
    """Fill one section greedily in candidate order within ``allowance`` tokens.

    A candidate that fits what is left is included whole. One that could never fit
    the section whole (more tokens than the allowance less the header) is cut to what
    is left, when ``cut`` can show enough of it. Any other that does not fit what is left
    is skipped: smaller ones after it may still fit. Near-duplicates of anything already
    included (a cut one as shown) are left out.
    """
    chosen: list[Candidate] = []
    entries: list[Entry] = []
    used = 0
    smallest = min((c.tokens for c in candidates), default=0)
    if cut is not None:
        smallest = min(smallest, CUT_MIN_TOKENS)
    for position, cand in enumerate(candidates):
        header = header_tokens if not chosen else 0
        room = allowance - used - header
        if room < smallest:
            entries.extend(_entry(c, spec, False, "budget") for c in candidates[position:])
            break
        if cand.line and cand.tokens <= room:
            piece = cand
        elif cut is not None and (not cand.line or cand.tokens > allowance - header_tokens):
            made = cut(cand.memory, room)
            if made is None:
                entries.append(_entry(cand, spec, False, "budget"))
                continue
            piece = replace(
                cand, line=made.line, tokens=made.tokens, shape=text_shape(made.text),
                shown=len(made.text),
            )  # fmt: skip
        else:
            entries.append(_entry(cand, spec, False, "budget"))
            continue
        shape = shape_of(piece)
        dup = dedup.duplicate_of(piece.memory.id, shape)
        if dup is not None:
            entries.append(_entry(piece, spec, False, f"duplicate of {dup}"))
            continue
        chosen.append(piece)
        used += piece.tokens + header
        dedup.add(piece.memory.id, shape)
        entries.append(_entry(piece, spec, True, "relevance" if not spec.stable else spec.source))
    return Packed(spec, chosen, used, allowance, entries)


def _entry(cand: Candidate, spec: SectionSpec, included: bool, reason: str) -> Entry:
    return Entry(
        cand.memory.id, spec.name, included, reason, cand.tokens, cand.score, cand.why,
        content_chars=len(cand.memory.content), shown_chars=cand.shown if included else None,
    )  # fmt: skip


def make_candidates(
    memories: Sequence[Memory],
    scores: Mapping[str, tuple[float, Mapping[str, float]]],
    fmt: Format,
    ceiling: int,
    count_many: Callable[[Sequence[str]], list[int]],
    max_token_chars: int | None,
    *,
    shapes: bool,
) -> list[Candidate]:
    """The memories as candidates for a section of at most ``ceiling`` tokens (scored by
    ``scores``, else by importance).

    A memory whose folded content has more characters than ``ceiling`` tokens could hold
    (``max_token_chars`` a token at most) never fits whole: it is not folded beyond that
    nor counted, and its candidate has no line and ``ceiling + 1`` tokens, to be cut.
    With ``shapes``, the deduplication shape of each one that could fit is kept with it.
    """
    longest = ceiling * max_token_chars if max_token_chars is not None else None
    out: list[Candidate] = []
    texts: list[tuple[int, str, str]] = []
    for memory in memories:
        score, why = scores.get(memory.id, (memory.importance, {}))
        text, over = fold(memory.content, longest)
        if not over:
            texts.append((len(out), text, render_line(memory, text, fmt)))
        out.append(Candidate(memory, "", ceiling + 1, score, why))
    counts = count_many([line for _, _, line in texts])
    for (i, text, line), n in zip(texts, counts, strict=True):
        shape = text_shape(text) if shapes and n <= ceiling else None
        out[i] = replace(out[i], line=line, tokens=n, shape=shape)
    return out


def canonical(spec: SectionSpec, chosen: Sequence[Candidate]) -> list[Candidate]:
    """The order a section renders in: stable and recent by time, recall by score."""
    if spec.source == "recall":
        return list(chosen)
    return sorted(chosen, key=lambda c: (c.memory.created_at, c.memory.id))


def section_header(spec: SectionSpec, fmt: Format) -> str:
    """The opening of a section."""
    if fmt == "xml":
        return f"<section name={quoteattr(spec.name)} title={quoteattr(spec.title)}>\n"
    return f"## {spec.title}\n"


def section_footer(fmt: Format) -> str:
    """The close of a section (and the blank line between sections)."""
    return "</section>\n" if fmt == "xml" else "\n"


def render_section(spec: SectionSpec, chosen: Sequence[Candidate], fmt: Format) -> str:
    """A whole section's text, or '' for an empty one."""
    if not chosen:
        return ""
    body = "".join(c.line for c in canonical(spec, chosen))
    return section_header(spec, fmt) + body + section_footer(fmt)


def render_order(specs: Sequence[SectionSpec]) -> list[SectionSpec]:
    """The order sections are rendered in: stable ones first, each group as given."""
    return [s for s in specs if s.stable] + [s for s in specs if not s.stable]


def render_context(
    ordered: Sequence[SectionSpec], chosen: Mapping[str, Sequence[Candidate]], fmt: Format
) -> tuple[str, list[int]]:
    """The whole text, and where each non-empty stable section ends (its breakpoints)."""
    parts: list[str] = []
    breakpoints: list[int] = []
    length = 0
    for spec in ordered:
        chunk = render_section(spec, chosen.get(spec.name, []), fmt)
        parts.append(chunk)
        length += len(chunk)
        if spec.stable and chunk:
            breakpoints.append(length)
    return "".join(parts), breakpoints


def common_prefix(a: str, b: str) -> str:
    """The longest common prefix of two texts, cut back to a line boundary."""
    limit = min(len(a), len(b))
    i = 0
    while i < limit and a[i] == b[i]:
        i += 1
    cut = a.rfind("\n", 0, i)
    return a[: cut + 1] if cut >= 0 else ""


def digest(text: str) -> str:
    """Content address of a rendered prefix."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

"""Assembling a context: gather each section's candidates, pack, cache, render, track prefixes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from memex.context.cache import SectionCache
from memex.core.assembled import Context, ContextSection
from memex.core.budget import Allocation, fit
from memex.core.context import (
    PINNED_TAG,
    Candidate,
    DedupLayer,
    Deduplicator,
    Entry,
    Packed,
    SectionSpec,
    canonical,
    common_prefix,
    digest,
    load_order,
    make_candidates,
    pack_section,
    render_order,
    render_section,
    section_footer,
    section_header,
)
from memex.core.lines import Format, cut_line
from memex.core.models import Hit, Scope, utcnow
from memex.core.query import Filters, Order
from memex.storage.base import Store
from memex.tokens import TokenCounter

RecallFn = Callable[[str, int], list[Hit]]
_PACKS_KEPT = 8
"""Packings kept per cached section (one per allowance and earlier inclusions seen)."""
_SMALLEST_CLASS = 64
"""The smallest size class (in tokens) a stable section's candidates are prepared for."""


_Packing = tuple["Packed", "ContextSection", DedupLayer]
"""A packing worth reusing: the packed section, its rendering, and the deduplicator's
state after it."""


@dataclass(slots=True)
class _CachedSection:
    """A stable section's cache entry: its candidates, prepared for allowances up to
    ``ceiling`` tokens, and packings already worked out."""

    candidates: list[Candidate]
    ceiling: int
    packs: dict[tuple[int, tuple[tuple[str, str], ...]], _Packing] = field(default_factory=dict)
    # When the first candidate expires or is superseded: no write marks that moment, so
    # the entry itself must not outlive it.
    until: datetime | None = None

    @classmethod
    def of(cls, candidates: list[Candidate], ceiling: int) -> _CachedSection:
        ends = [t for c in candidates for t in (c.memory.expires_at, c.memory.valid_until) if t]
        return cls(candidates, ceiling, until=min(ends, default=None))


class Snapshots(Protocol):
    """Where sessions' latest contexts are saved without waiting for another writer."""

    def pending_context(self, tenant: str, session: str) -> str | None:
        """A session's latest context while it waits to be written, else None."""
        ...

    def save_context(
        self, tenant: str, session: str, text: str, prefix_hash: str, ids: Sequence[str]
    ) -> str:
        """Save now or later, with the ids of the memories it shows: ``saved``,
        ``pending`` or ``read-only`` (not saved)."""
        ...


class ContextState:
    """What outlives one call in this process: the token counter and the section cache."""

    def __init__(self, counter: TokenCounter, cache: SectionCache) -> None:
        self.counter = counter
        self.cache = cache
        self._min_line: dict[str, int] = {}

    def min_line_tokens(self, fmt: Format) -> int:
        """Fewer tokens than any memory line takes in ``fmt`` (the date and markup alone,
        with a margin for how a tokenizer may join them to the content)."""
        if fmt not in self._min_line:
            shortest = {"xml": '<memory id="" kind="" date="2000-01-01">x</memory>\n'}
            line = shortest.get(fmt, "- [2000-01-01] x\n")
            self._min_line[fmt] = max(1, self.counter.count(line) - 2)
        return self._min_line[fmt]


@dataclass
class Request:
    """One context request, validated."""

    query: str
    budget: int
    scope: Scope
    specs: tuple[SectionSpec, ...]
    strategy: str
    fmt: Format
    session: str | None
    time_limit: float | None


class Assembly:
    """One context being assembled: iterate for sections as they are ready, then ``result``."""

    def __init__(
        self,
        req: Request,
        store: Store,
        state: ContextState,
        recall: RecallFn,
        snapshots: Snapshots,
    ) -> None:
        self.req = req
        self.store = store
        self.state = state
        self.recall = recall
        self.snapshots = snapshots
        self.started = time.perf_counter()
        self.packed: dict[str, Packed] = {}
        self.done: dict[str, ContextSection] = {}
        self.dedup = Deduplicator()
        self.hits = 0
        self._stream = self._load_all()
        self.misses = 0

    # -- loading -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[ContextSection]:
        return self._stream

    def _load_all(self) -> Iterator[ContextSection]:
        req = self.req
        counter = self.state.counter
        versions = self.store.changes(
            req.scope, sorted({k for s in req.specs for k in s.change_keys()})
        )
        order = load_order(req.specs)
        if req.strategy == "time_based":
            order = self._cheapest_first(order, versions)
        allocation = Allocation.start(req.specs, req.strategy, req.budget)
        for spec in order:
            if req.time_limit is not None and time.perf_counter() - self.started > req.time_limit:
                section = self._skip(spec, "time limit")
                self.done[spec.name] = section
                yield section
                continue
            allowance = allocation.allowance(spec)
            section, packed = self._load(spec, allowance, versions, counter)
            self.packed[spec.name] = packed
            self.done[spec.name] = section
            allocation = allocation.after(spec, allowance, packed.tokens)
            yield section

    def _cheapest_first(
        self, order: list[SectionSpec], versions: dict[str, int]
    ) -> list[SectionSpec]:
        def cost(spec: SectionSpec) -> int:
            stored = self.state.cache.peek_version(self._slot(spec))
            if spec.stable and stored == self._version(spec, versions):
                return 0
            return {"pinned": 1, "kinds": 1, "recent": 2, "recall": 3}[spec.source]

        return sorted(order, key=cost)

    def _slot(self, spec: SectionSpec) -> tuple[Any, ...]:
        return (tuple(self.req.scope.items()), spec.name, spec.kinds, self.req.fmt)

    def _version(self, spec: SectionSpec, versions: dict[str, int]) -> tuple[Any, ...]:
        return (tuple(versions.get(k, 0) for k in spec.change_keys()), spec.limit)

    def _load(
        self, spec: SectionSpec, allowance: int, versions: dict[str, int], counter: TokenCounter
    ) -> tuple[ContextSection, Packed]:
        """Pack a section. A stable section's candidates come from the cache while nothing
        they were built from has changed, and so does its packing while the allowance and
        what earlier sections included are the same as when it was packed.

        Candidates are prepared for a ceiling of tokens: a memory too long for it is not
        counted, only cut. A cached section's ceiling (its first allowance, rounded up)
        serves every allowance up to it; a larger one gathers the candidates again."""
        if not spec.stable:
            candidates = self._candidates(spec, counter, allowance)
            packed = self._pack(spec, candidates, allowance)
            return self._section(packed, cached=False), packed
        slot, version = self._slot(spec), self._version(spec, versions)
        entry: _CachedSection | None = self.state.cache.get(slot, version)
        if entry is not None and entry.until is not None and entry.until <= utcnow():
            entry = None
        if entry is not None and allowance > entry.ceiling:
            entry = None  # a memory skipped as too long for the old ceiling may fit now
        hit = entry is not None
        if entry is None:
            self.misses += 1
            ceiling = size_class(allowance)
            entry = _CachedSection.of(self._candidates(spec, counter, ceiling), ceiling)
            # Contents are held, not compressed: a hit would otherwise copy them back.
            own = sum(len(c.line) + 600 + (len(c.memory.content) if c.shape else 0)
                      for c in entry.candidates)  # fmt: skip
            held = sum(len(c.memory.content) for c in entry.candidates)
            self.state.cache.put(slot, version, entry, own, held=held)
        else:
            self.hits += 1
        key = (allowance, self.dedup.included)
        done = entry.packs.get(key)
        if done is None:
            packed = self._pack(spec, entry.candidates, allowance)
            done = (packed, self._section(packed, cached=True), self.dedup.snapshot())
            if len(entry.packs) >= _PACKS_KEPT:
                entry.packs.clear()
            entry.packs[key] = done
        else:  # the same packing as before, from the same state: take the state after it
            self.dedup.restore(done[2])
        return (done[1] if hit else replace(done[1], cached=False)), done[0]

    def _pack(self, spec: SectionSpec, candidates: list[Candidate], allowance: int) -> Packed:
        cut = partial(cut_line, fmt=self.req.fmt, count=self.state.counter.count)
        header = self._header_tokens(spec)
        return pack_section(spec, candidates, allowance, header, self.dedup, cut)

    def _header_tokens(self, spec: SectionSpec) -> int:
        fmt = self.req.fmt
        return self.state.counter.count(section_header(spec, fmt) + section_footer(fmt))

    def _candidates(
        self, spec: SectionSpec, counter: TokenCounter, allowance: int
    ) -> list[Candidate]:
        """The section's memories as candidates for at most ``allowance`` tokens."""
        req = self.req
        scores: dict[str, tuple[float, Mapping[str, float]]] = {}
        if spec.source == "recall":
            if not req.query.strip() or allowance <= 0:
                return []
            # Enough hits to fill the allowance (a memory line is rarely under 15 tokens)
            # without paying to fetch hundreds that cannot fit.
            hits = self.recall(req.query, max(10, min(spec.limit, allowance // 15 + 5)))
            memories = [h.memory for h in hits]
            scores = {h.memory.id: (h.score, dict(h.explain)) for h in hits}
        else:
            filters = Filters(
                scope=req.scope,
                kinds=spec.kinds,
                tags=(PINNED_TAG,) if spec.source == "pinned" else (),
            )
            order: Order = "asc" if spec.stable else "desc"
            limit = spec.limit
            if not spec.stable:
                # The latest first, and no more than can fit.
                limit = min(limit, allowance // self.state.min_line_tokens(req.fmt) + 1)
            memories, _ = self.store.list(filters, order, limit, None)
            if spec.source == "kinds":
                memories = [m for m in memories if PINNED_TAG not in m.tags]
                # Most important first, then oldest first: a new memory of the usual
                # importance is appended (or waits for room) instead of displacing an
                # older one, so the rendered prefix stays as it was.
                memories.sort(key=lambda m: (-m.importance, m.created_at, m.id))
        return make_candidates(
            memories, scores, req.fmt, allowance, counter.count_many, counter.max_token_chars,
            shapes=spec.stable,
        )  # fmt: skip

    def _section(self, packed: Packed, *, cached: bool) -> ContextSection:
        spec = packed.spec
        chosen = canonical(spec, packed.chosen)
        return ContextSection(
            name=spec.name,
            title=spec.title,
            stable=spec.stable,
            memories=[c.memory for c in chosen],
            tokens=packed.tokens,
            allowance=packed.allowance,
            text=render_section(spec, chosen, self.req.fmt),
            cached=cached,
        )

    def _skip(self, spec: SectionSpec, reason: str) -> ContextSection:
        return ContextSection(spec.name, spec.title, spec.stable, [], 0, 0, "", False, reason)

    # -- result ------------------------------------------------------------------------

    def result(self) -> Context:
        """Render what was loaded (loading what is left first) into the final Context."""
        for _ in self._stream:  # load what iteration has not reached yet
            pass
        req = self.req
        ordered = render_order(req.specs)
        chosen = {name: p.chosen for name, p in self.packed.items()}
        fitted = fit(ordered, chosen, req.fmt, req.budget, self.state.counter.count)
        text, breakpoints, packed = fitted.text, fitted.breakpoints, fitted.chosen
        stable_part = text[: breakpoints[-1]] if breakpoints else ""
        prefix_hash = digest(stable_part)
        sections = [self._final_section(s, packed) for s in ordered]
        kept = {m.id for s in sections for m in s.memories}
        reused: int | None = None
        sessions_seen = 0
        snapshot: str | None = None
        if req.session is not None:
            key = "&".join(f"{k}={v}" for k, v in req.scope.items() if k != "tenant")
            session, tenant = f"{key}#{req.session}", str(req.scope.tenant)
            previous, others = self.store.last_context(req.scope, session, prefix_hash)
            waiting = self.snapshots.pending_context(tenant, session)
            previous = waiting if waiting is not None else previous
            if previous is not None:
                shared = common_prefix(previous, text)
                reused = self.state.counter.count(shared) if shared else 0
            snapshot = self.snapshots.save_context(tenant, session, text, prefix_hash, sorted(kept))
            sessions_seen = others + 1
        manifest = [e for p in self.packed.values() for e in p.entries]
        manifest = [e if not e.included or e.memory_id in kept else _trimmed(e) for e in manifest]
        stats = {
            "tokens_by_section": {s.name: s.tokens for s in sections},
            "sections_loaded": sum(1 for s in self.done.values() if s.skipped is None),
            "sections_skipped": [s.name for s in self.done.values() if s.skipped],
            "cache_hits": self.hits,
            "cache_misses": self.misses,
            "cache_hit_rate": self.hits / (self.hits + self.misses)
            if self.hits + self.misses
            else 0.0,
            "milliseconds": (time.perf_counter() - self.started) * 1000,
            "tokenizer": self.state.counter.name,
            "tokenizer_exact": self.state.counter.exact,
            "strategy": req.strategy,
            "stable_tokens": self.state.counter.count(stable_part) if stable_part else 0,
            "prefix_sessions": sessions_seen,
            "session_snapshot": snapshot,
            "trimmed": fitted.trimmed,
        }
        return Context(
            text=text,
            tokens=fitted.tokens,
            budget_tokens=req.budget,
            format=req.fmt,
            sections=sections,
            manifest=manifest,
            breakpoints=breakpoints,
            prefix_hash=prefix_hash,
            prefix_tokens_reused=reused,
            stats=stats,
        )

    def _final_section(
        self, spec: SectionSpec, packed: dict[str, list[Candidate]]
    ) -> ContextSection:
        loaded = self.done.get(spec.name)
        chosen = canonical(spec, packed.get(spec.name, []))
        text = render_section(spec, chosen, self.req.fmt)
        return ContextSection(
            name=spec.name,
            title=spec.title,
            stable=spec.stable,
            memories=[c.memory for c in chosen],
            tokens=self.state.counter.count(text) if text else 0,
            allowance=loaded.allowance if loaded else 0,
            text=text,
            cached=loaded.cached if loaded else False,
            skipped=loaded.skipped if loaded else "not loaded",
        )


def _trimmed(entry: Entry) -> Entry:
    return replace(entry, included=False, reason="budget (trimmed)", shown_chars=None)


def size_class(allowance: int) -> int:
    """The ceiling a stable section's candidates are prepared for: the allowance rounded
    up to a multiple of an eighth of the power of two above it (at most a quarter more;
    at least 64), so a slightly larger allowance later finds them still good.

    A memory longer than the ceiling could hold is not counted but offered to be cut;
    the closer the ceiling, the fewer long memories are counted for nothing."""
    step = 1 << max(0, (allowance - 1).bit_length() - 3)
    return max(_SMALLEST_CLASS, -(-allowance // step) * step)

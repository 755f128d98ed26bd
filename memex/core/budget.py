"""A context's budget: each section's allowance, and the trim that keeps the whole within it.

Sections are packed one at a time in load order (``context.load_order``). Each gets its
share of the budget plus what the sections before it left unused, never more than is
left. The rendered whole is then counted once more: token boundaries between lines can
add a token or two, and the last included memories go until it fits. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from memex.core.context import Candidate, SectionSpec, render_context, strategy_shares
from memex.core.lines import Format


@dataclass(frozen=True, slots=True)
class Allocation:
    """What the sections packed so far took of the budget; what the next one may take.

    A stable section's allowance is its share plus what the stable sections before it
    left unused. A volatile section's is its share plus what the volatile section before
    it left, plus whatever stable carry is still unspent (which it uses up). Under
    ``priority_first`` the stable sections share one pool: each may take what the
    stable sections before it did not (and the stable carry on top, as any stable one).
    """

    budget: int
    shares: Mapping[str, float]
    stable_pool: int | None = None
    """Under ``priority_first``, the tokens the stable sections share; else None."""
    used: int = 0
    stable_used: int = 0
    carry: int = 0
    """What the last volatile section left of its allowance."""
    carry_stable: int = 0
    """What the stable sections left, not yet spent by a volatile one."""

    @classmethod
    def start(cls, specs: Sequence[SectionSpec], strategy: str, budget: int) -> Allocation:
        """The allocation before any section is packed."""
        shares = strategy_shares(specs, strategy)
        pool = None
        if strategy == "priority_first":
            pool = int(sum(shares[s.name] for s in specs if s.stable) * budget)
        return cls(budget, shares, pool)

    def allowance(self, spec: SectionSpec) -> int:
        """The tokens ``spec`` may take, packed next."""
        share = int(self.shares[spec.name] * self.budget)
        if spec.stable and self.stable_pool is not None:
            share = self.stable_pool - self.stable_used
        carried = self.carry_stable if spec.stable else self.carry + self.carry_stable
        return max(0, min(share + carried, self.budget - self.used))

    def after(self, spec: SectionSpec, allowance: int, tokens: int) -> Allocation:
        """The allocation once ``spec`` was packed into ``tokens`` of its ``allowance``
        (a section skipped unpacked changes nothing)."""
        used, left = self.used + tokens, allowance - tokens
        if not spec.stable:
            return replace(self, used=used, carry=left, carry_stable=0)
        return replace(self, used=used, stable_used=self.stable_used + tokens, carry_stable=left)


def trim_target(
    ordered: Sequence[SectionSpec], chosen: Mapping[str, Sequence[Candidate]]
) -> str | None:
    """The section whose last packed memory goes next when the whole is over budget:
    the last non-empty one in rendering order (volatile before stable, so the shared
    prefix stays as long as it can); None when every section is empty."""
    for spec in reversed(ordered):
        if chosen.get(spec.name):
            return spec.name
    return None


@dataclass(frozen=True, slots=True)
class Fitted:
    """A rendered context within budget, and what was trimmed to get there."""

    text: str
    breakpoints: list[int]
    tokens: int
    chosen: dict[str, list[Candidate]]
    trimmed: list[str]
    """The section of each memory trimmed, in the order they went."""


def fit(
    ordered: Sequence[SectionSpec],
    chosen: Mapping[str, Sequence[Candidate]],
    fmt: Format,
    budget: int,
    count: Callable[[str], int],
) -> Fitted:
    """Render the packed sections and, while the whole counts more than ``budget``
    tokens, drop the last packed memory of ``trim_target``'s section."""
    kept = {name: list(cands) for name, cands in chosen.items()}
    text, breakpoints = render_context(ordered, kept, fmt)
    tokens = count(text)
    trimmed: list[str] = []
    while tokens > budget:
        name = trim_target(ordered, kept)
        if name is None:
            break
        kept[name].pop()
        trimmed.append(name)
        text, breakpoints = render_context(ordered, kept, fmt)
        tokens = count(text)
    return Fitted(text, breakpoints, tokens, kept, trimmed)

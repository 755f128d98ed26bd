"""An assembled context: the values ``Memex.context`` returns, and their JSON.

``Context.to_dict`` writes everything a context holds (each section's text and
memories too), so ``core.wire.context_from_dict`` rebuilds the same value on the other
side of the HTTP API. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memex.core.context import Entry
from memex.core.models import Memory


@dataclass(frozen=True, slots=True)
class ContextSection:
    """One section of an assembled context."""

    name: str
    title: str
    stable: bool
    memories: list[Memory]
    tokens: int
    allowance: int
    text: str
    cached: bool
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the section's memories in full."""
        return {
            "name": self.name,
            "title": self.title,
            "stable": self.stable,
            "tokens": self.tokens,
            "allowance": self.allowance,
            "cached": self.cached,
            "skipped": self.skipped,
            "text": self.text,
            "memories": [m.to_dict() for m in self.memories],
        }


@dataclass(frozen=True, slots=True)
class Context:
    """The context for one model call: text within budget, and how it was made."""

    text: str
    tokens: int
    budget_tokens: int
    format: str
    sections: list[ContextSection]
    manifest: list[Entry]
    breakpoints: list[int]
    prefix_hash: str
    prefix_tokens_reused: int | None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def stable_text(self) -> str:
        """The part that does not depend on the query (ends at the last breakpoint)."""
        return self.text[: self.breakpoints[-1]] if self.breakpoints else ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "text": self.text,
            "tokens": self.tokens,
            "budget_tokens": self.budget_tokens,
            "format": self.format,
            "breakpoints": self.breakpoints,
            "prefix_hash": self.prefix_hash,
            "prefix_tokens_reused": self.prefix_tokens_reused,
            "sections": [s.to_dict() for s in self.sections],
            "manifest": [entry_to_dict(e) for e in self.manifest],
            "stats": self.stats,
        }


def entry_to_dict(entry: Entry) -> dict[str, Any]:
    """A manifest entry as JSON (``cut`` is derived from ``shown_chars``)."""
    return {
        "id": entry.memory_id,
        "section": entry.section,
        "included": entry.included,
        "reason": entry.reason,
        "tokens": entry.tokens,
        "cut": entry.cut,
        "content_chars": entry.content_chars,
        "shown_chars": entry.shown_chars,
        "score": entry.score,
        "why": dict(entry.why),
    }

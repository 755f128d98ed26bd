"""The context operations of a Memex handle (mixed into ``Memex``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.models import Scope
from memex.core.validate import (
    MAX_SESSION_CHARS,
    validate_count,
    validate_positive,
    validate_text,
)
from memex.errors import ValidationError

if TYPE_CHECKING:
    from memex.context.assembler import Assembly, ContextState
    from memex.core.assembled import Context, ContextSection
    from memex.engine import Engine


ADAPTIVE_LARGE_STORE = 50_000


def context_state(engine: Engine) -> ContextState:
    """The token counter and section cache every handle on the store shares, made on
    first use (the section cache is shared on its own, so a purge clears it)."""
    from memex.context.assembler import ContextState
    from memex.context.cache import SectionCache
    from memex.tokens import make_counter

    s = engine.settings
    cache = engine.shared(
        "context.sections", lambda: SectionCache(s.context_cache_bytes, s.context_cache_seconds)
    )
    return engine.shared("context.state", lambda: ContextState(make_counter(s.tokenizer), cache))


class ContextMixin:
    """``context``, ``context_iter`` and ``acontext_iter`` for a scoped handle."""

    _engine: Engine
    _scope: Scope

    def _within(self, scope: Scope | Mapping[str, Any] | None) -> Scope:
        raise NotImplementedError

    def context(
        self,
        query: str = "",
        budget_tokens: int = 4000,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        strategy: str = "balanced",
        sections: Sequence[str] | None = None,
        shares: Mapping[str, float] | None = None,
        session: str | None = None,
        format: str = "markdown",
        time_limit_ms: float | None = None,
    ) -> Context:
        """The best context for ``query`` within ``budget_tokens``: stable sections first.

        ``session`` names a conversation: the result reports how many tokens repeat the
        session's previous context (what a prompt cache can reuse).
        """
        return self.context_iter(
            query, budget_tokens, scope=scope, strategy=strategy, sections=sections,
            shares=shares, session=session, format=format, time_limit_ms=time_limit_ms,
        ).result()  # fmt: skip

    def context_iter(
        self,
        query: str = "",
        budget_tokens: int = 4000,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        strategy: str = "balanced",
        sections: Sequence[str] | None = None,
        shares: Mapping[str, float] | None = None,
        session: str | None = None,
        format: str = "markdown",
        time_limit_ms: float | None = None,
    ) -> Assembly:
        """Iterate over sections as they are ready; ``.result()`` gives the Context."""
        validate_text(query, "query")
        validate_count(budget_tokens, "budget_tokens", 1, 1_000_000)
        # Assembly is imported when first used: a handle that never assembles a context
        # (a command-line `get`, say) does not pay for loading it.
        from memex.context.assembler import Assembly, Request
        from memex.core.context import STRATEGIES, resolve_sections

        if strategy not in STRATEGIES:
            raise ValidationError(f"strategy must be one of {', '.join(STRATEGIES)}")
        if format not in ("markdown", "xml"):
            raise ValidationError("format must be markdown or xml")
        if time_limit_ms is not None:
            validate_positive(time_limit_ms, "time_limit_ms")
        if session is not None and not validate_text(session, "session", MAX_SESSION_CHARS):
            raise ValidationError("session must not be empty")
        within = self._within(scope)
        engine = self._engine
        if strategy == "adaptive":
            strategy = self._adapt(query, time_limit_ms)
        request = Request(
            query=query,
            budget=budget_tokens,
            scope=within,
            specs=resolve_sections(sections, shares),
            strategy=strategy,
            fmt=format,  # type: ignore[arg-type]
            session=session,
            time_limit=time_limit_ms / 1000 if time_limit_ms is not None else None,
        )
        handle = self

        def recall(text: str, k: int) -> list[Any]:
            return handle.recall(text, k, scope=scope)  # type: ignore[attr-defined, no-any-return]

        return Assembly(request, engine.store, context_state(engine), recall, engine.access)

    async def acontext_iter(
        self, query: str = "", budget_tokens: int = 4000, **options: Any
    ) -> AsyncIterator[ContextSection]:
        """``context_iter`` for asyncio: each section is loaded in a worker thread."""
        import asyncio

        assembly = self.context_iter(query, budget_tokens, **options)
        sections = iter(assembly)
        done = object()
        while True:
            section = await asyncio.to_thread(next, sections, done)
            if section is done:
                return
            yield section  # type: ignore[misc]

    def _adapt(self, query: str, time_limit_ms: float | None) -> str:
        if not query.strip():
            return "priority_first"
        if time_limit_ms is not None and self._engine.size_estimate() > ADAPTIVE_LARGE_STORE:
            return "time_based"
        return "balanced"

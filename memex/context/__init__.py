"""Context assembly: the right memories for a model call, under a token budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memex.core.assembled import Context, ContextSection

__all__ = ["Context", "ContextSection"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: a handle that never assembles a context does not pay for it.
    if name in __all__:
        from memex.core import assembled

        return getattr(assembled, name)
    raise AttributeError(f"module 'memex.context' has no attribute {name!r}")

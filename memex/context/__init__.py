"""Context assembly: the right memories for a model call, under a token budget."""

from memex.context.assembler import Context, ContextSection

__all__ = ["Context", "ContextSection"]

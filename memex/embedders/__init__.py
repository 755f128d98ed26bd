"""Embedding models behind one small protocol, chosen by name."""

from memex.embedders.base import Embedder, make_embedder, normalise

__all__ = ["Embedder", "make_embedder", "normalise"]

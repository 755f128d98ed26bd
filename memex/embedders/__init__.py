"""Embedding models behind one small protocol, chosen by name."""

from memex.embedders.base import Embedder, normalise
from memex.embedders.open import make_embedder

__all__ = ["Embedder", "make_embedder", "normalise"]

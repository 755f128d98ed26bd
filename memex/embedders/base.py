"""The Embedder protocol and what every embedder shares (the factory is in ``open.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

from memex.core.text import query_terms

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# numpy is imported only where vectors are made: a process that embeds nothing (a
# command-line `get`) does not load it.
Vectors: TypeAlias = "npt.NDArray[np.float32]"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors, offline unless configured otherwise.

    ``name`` identifies the model and its settings: a store records it, and vectors
    from two different names are never mixed in one store.
    """

    @property
    def name(self) -> str:
        """A stable identifier of the model, e.g. ``wordllama:l2_supercat:256``."""
        ...

    @property
    def dimensions(self) -> int:
        """Length of every vector."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed a batch of texts into an array of shape (len(texts), dimensions)."""
        ...


def normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    """Scale rows to unit length (zero rows stay zero) as contiguous float32."""
    import numpy as np

    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != 2:
        raise ValueError("expected a 2-D array of vectors")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)


DEFAULT_VECTOR_WEIGHT = 0.4


def vector_weight_for(embedder: Embedder) -> float:
    """The fusion weight an embedder's vectors deserve by default.

    Embedders may declare ``fusion_weight``; static token embeddings are weaker than
    contextual ones and declare less. Measured on LoCoMo in docs/benchmarks.md.
    """
    weight = getattr(embedder, "fusion_weight", DEFAULT_VECTOR_WEIGHT)
    return float(weight)


def query_text_for(embedder: Embedder, query: str) -> str:
    """The text to embed for a search query.

    Static token embedders (``query_content_words = True``) average every token, so the
    function words of a question ("what did ... do in the ...") pull its vector towards
    every memory alike; they embed the query's content words only (LoCoMo dense R@10 with
    WordLlama: 0.437 whole question, 0.518 content words). Contextual models read the
    whole question.
    """
    if not getattr(embedder, "query_content_words", False):
        return query
    return " ".join(query_terms(query)) or query

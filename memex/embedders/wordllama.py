"""WordLlama: a static token-embedding model that ships inside the ``wordllama`` package.

It needs only numpy and a tokenizer, embeds tens of thousands of texts a second on a
CPU, and is the default. The files are loaded from the installed package directly:
the package's own loader looks for its tokenizer in a folder that it does not ship
and would then try to download it.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memex.embedders.base import Vectors, normalise
from memex.errors import ConfigError, EmbedderError

CONFIG = "l2_supercat"
DIMENSIONS = 256


class WordLlamaEmbedder:
    """Mean-pooled WordLlama token embeddings (256 dimensions), loaded on first use."""

    fusion_weight = 0.25
    """Static vectors: they add to BM25 in hybrid recall, at a smaller share."""

    query_content_words = True
    """A query is embedded without its stop words (see ``query_text_for``)."""

    def __init__(self, dimensions: int = DIMENSIONS) -> None:
        if dimensions not in (64, 128, 256):
            raise ConfigError("wordllama dimensions must be 64, 128 or 256")
        self._dimensions = dimensions
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"wordllama:{CONFIG}:{self._dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            spec = importlib.util.find_spec("wordllama")
            if spec is None or spec.origin is None:
                raise ConfigError("the wordllama embedder needs the 'wordllama' package")
            root = Path(spec.origin).parent
            weights = root / "weights" / f"{CONFIG}_256.safetensors"
            tokenizer_file = root / "tokenizers" / f"{CONFIG}_tokenizer_config.json"
            if not weights.is_file() or not tokenizer_file.is_file():
                raise EmbedderError(f"wordllama model files are missing under {root}")
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer

            table = load_file(str(weights))["embedding.weight"][:, : self._dimensions]
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._model = (np.ascontiguousarray(table, dtype=np.float32), tokenizer)
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        table, tokenizer = self._load()
        out = np.zeros((len(texts), self._dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        for row, enc in enumerate(encodings):
            ids = enc.ids
            if ids:
                out[row] = table[ids].mean(axis=0)
        return normalise(out)

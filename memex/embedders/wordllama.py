"""WordLlama: a static token-embedding model that ships inside the ``wordllama`` package.

It needs only numpy and a tokenizer, embeds tens of thousands of texts a second on a
CPU, and is the default. The files are loaded from the installed package directly:
the package's own loader looks for its tokenizer in a folder that it does not ship
and would then try to download it.

The embedding table (32,000 tokens × 256 float16 values in a safetensors file) is
mapped into memory, not read: embedding a query touches the rows of its own tokens
only, so a command-line process that embeds one query starts in milliseconds.
"""

from __future__ import annotations

import importlib.util
import json
import mmap
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memex.errors import ConfigError, EmbedderError

if TYPE_CHECKING:
    from memex.embedders.base import Vectors

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
            from tokenizers import Tokenizer

            table = _mapped_table(weights, "embedding.weight")[:, : self._dimensions]
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._model = (table, tokenizer)
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        from memex.embedders.base import normalise

        table, tokenizer = self._load()
        out = np.zeros((len(texts), self._dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        for row, enc in enumerate(encodings):
            ids = enc.ids
            if ids:
                out[row] = table[ids].mean(axis=0, dtype=np.float32)
        return normalise(out)


def _mapped_table(path: Path, name: str) -> Any:
    """Tensor ``name`` of a safetensors file as a read-only array over a memory map."""
    import numpy as np

    dtypes = {"F16": "<f2", "F32": "<f4"}
    with path.open("rb") as fh:
        try:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
            entry = header[name]
            dtype = np.dtype(dtypes[entry["dtype"]])
            rows, columns = entry["shape"]
            start, end = entry["data_offsets"]
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise EmbedderError(f"{path} is not a usable safetensors file ({exc})") from exc
        if end - start != rows * columns * dtype.itemsize:
            raise EmbedderError(f"{path}: tensor {name} has the wrong size")
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    flat = np.frombuffer(mapped, dtype=dtype, count=rows * columns, offset=8 + size + start)
    return flat.reshape(rows, columns)

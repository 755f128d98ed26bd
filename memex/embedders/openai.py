"""Embeddings from an OpenAI-compatible HTTP endpoint (Ollama, vLLM, OpenAI, ...)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence

from memex.embedders.base import Vectors, normalise
from memex.errors import EmbedderError


class OpenAIEmbedder:
    """Calls ``POST {base_url}/embeddings``; the dimension is learnt from the first answer."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 128,
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._api_key = api_key
        self._timeout = timeout
        self._batch_size = batch_size
        self._dimensions: int | None = None

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self.embed(["dimension probe"])
        assert self._dimensions is not None
        return self._dimensions

    def _post(self, texts: list[str]) -> list[list[float]]:
        body = json.dumps({"model": self._model, "input": texts}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            exc.close()  # the error carries the open response; don't leak its socket
            raise EmbedderError(f"embedding endpoint {self._url} answered {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise EmbedderError(f"cannot reach embedding endpoint {self._url}: {exc}") from exc
        except ValueError as exc:
            raise EmbedderError(f"embedding endpoint {self._url} sent invalid JSON") from exc
        try:
            rows = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [list(map(float, row["embedding"])) for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedderError(f"unexpected answer from embedding endpoint {self._url}") from exc
        if len(vectors) != len(texts):
            raise EmbedderError(
                f"embedding endpoint returned {len(vectors)} vectors for {len(texts)} texts"
            )
        return vectors

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            rows.extend(self._post(list(texts[start : start + self._batch_size])))
        if not rows:
            import numpy as np

            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        dims = {len(r) for r in rows}
        if len(dims) != 1 or 0 in dims:
            raise EmbedderError("embedding endpoint returned vectors of differing lengths")
        dim = dims.pop()
        if self._dimensions is not None and dim != self._dimensions:
            raise EmbedderError(f"embedding endpoint changed dimension {self._dimensions} -> {dim}")
        self._dimensions = dim
        import numpy as np

        return normalise(np.array(rows, dtype=np.float32))

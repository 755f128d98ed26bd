"""Token counting behind one protocol: a real tokenizer offline, a heuristic as last resort."""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from memex.errors import ConfigError


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens the way a model's tokenizer would."""

    @property
    def name(self) -> str:
        """Which tokenizer this is."""
        ...

    @property
    def exact(self) -> bool:
        """False for an estimate (the context stats say so)."""
        ...

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        ...

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text."""
        ...


class HFTokenCounter:
    """A Hugging Face ``tokenizers`` tokenizer loaded from a local file.

    The default file is the Llama 2 tokenizer that ships inside the ``wordllama``
    package (a memex dependency), so counting works offline from a plain install.
    """

    def __init__(self, path: Path, name: str, cache_size: int = 65_536) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._name = name
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def exact(self) -> bool:
        return True

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        out: list[int | None] = []
        missing: list[int] = []
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._cache.get(text)
                out.append(hit)
                if hit is None:
                    missing.append(i)
        if missing:
            encoded = self._tokenizer.encode_batch(
                [texts[i] for i in missing], add_special_tokens=False
            )
            with self._lock:
                for i, enc in zip(missing, encoded, strict=True):
                    out[i] = len(enc.ids)
                    self._cache[texts[i]] = len(enc.ids)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return [n or 0 for n in out]


class TiktokenCounter:
    """OpenAI's tiktoken, for an encoding already cached on this machine."""

    def __init__(self, encoding: str = "cl100k_base") -> None:
        try:
            import tiktoken
        except ImportError as exc:
            raise ConfigError("the tiktoken tokenizer needs: pip install tiktoken") from exc
        try:
            self._encoding: Any = tiktoken.get_encoding(encoding)
        except Exception as exc:  # tiktoken downloads unknown encodings; offline it fails
            raise ConfigError(f"tiktoken encoding {encoding} is not available offline") from exc
        self._name = f"tiktoken:{encoding}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def exact(self) -> bool:
        return True

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]


class HeuristicCounter:
    """About four characters a token: only when no tokenizer can be loaded."""

    @property
    def name(self) -> str:
        return "heuristic:chars/4"

    @property
    def exact(self) -> bool:
        return False

    def count(self, text: str) -> int:
        return (len(text) + 3) // 4

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]


def llama2_tokenizer_file() -> Path | None:
    """The Llama 2 tokenizer shipped inside the wordllama package, if installed."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"
    return path if path.is_file() else None


def make_counter(name: str) -> TokenCounter:
    """``auto`` (Llama 2 via tokenizers, else tiktoken, else heuristic), ``llama2``,
    ``tiktoken[:encoding]``, ``heuristic`` or a path to a tokenizer.json file."""
    if name in ("auto", "llama2"):
        path = llama2_tokenizer_file()
        if path is not None:
            return HFTokenCounter(path, "llama2")
        if name == "llama2":
            raise ConfigError("the llama2 tokenizer file is missing (reinstall wordllama)")
        try:
            return TiktokenCounter()
        except ConfigError:
            return HeuristicCounter()
    if name.startswith("tiktoken"):
        encoding = name.partition(":")[2] or "cl100k_base"
        return TiktokenCounter(encoding)
    if name == "heuristic":
        return HeuristicCounter()
    path = Path(name).expanduser()
    if path.is_file():
        return HFTokenCounter(path, path.name)
    raise ConfigError(f"unknown tokenizer {name!r}: auto, llama2, tiktoken, heuristic or a file")

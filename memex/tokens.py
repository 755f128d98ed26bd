"""Token counting behind one protocol: a real tokenizer offline, a heuristic as last resort."""

from __future__ import annotations

import importlib.util
import json
import re
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

    @property
    def max_token_chars(self) -> int | None:
        """The most characters one token can stand for, or None if no bound is known.

        A text longer than ``n * max_token_chars`` characters has more than ``n`` tokens,
        so it need not be counted to know it does not fit ``n``.
        """
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

    That tokenizer has no pre-tokenizer: it runs BPE over a whole text at once, which
    costs about 10 ms for a 4,000-token context. When the file provably cannot merge
    across a word or line boundary (see ``_word_bounded``), a text is instead counted
    as the sum of its pieces (each line break, and each run of word marks with the
    word after it), and each line's count is kept: the same count, a few hundred
    dictionary lookups for a context whose lines were seen before.
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
        self._special: tuple[str, ...] = ()
        self._lines: dict[str, int] | None = None
        self._line_break = 0
        config = json.loads(self._tokenizer.to_str())
        self._max_token_chars = _max_token_chars(config)
        if _word_bounded(config):
            self._special = tuple(t["content"] for t in config.get("added_tokens", []))
            self._line_break = len(self._tokenizer.model.tokenize("\n"))
            self._lines = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def exact(self) -> bool:
        return True

    @property
    def max_token_chars(self) -> int | None:
        return self._max_token_chars

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if self._lines is not None:
            return [self._count_pieces(t) for t in texts]
        return self._count_whole(texts)

    def _count_whole(self, texts: Sequence[str]) -> list[int]:
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
                    if len(texts[i]) <= _KEEP_CHARS:  # a cache of whole contexts would grow large
                        self._cache[texts[i]] = len(enc.ids)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return [n or 0 for n in out]

    def _count_pieces(self, text: str) -> int:
        if not text:
            return 0
        if "<" in text and any(token in text for token in self._special):
            return self._count_whole([text])[0]  # added tokens are matched in the raw text
        lines = text.split("\n")
        total = (len(lines) - 1) * self._line_break
        # The normaliser marks the start of the text, so the first line is its own entry.
        total += self._count_line("\n" + lines[0], _MARK + lines[0])
        for line in lines[1:]:
            if line:
                total += self._count_line(line, line)
        return total

    def _count_line(self, key: str, line: str) -> int:
        """Tokens in one line (``key`` names it in the cache), summed over its pieces."""
        lines = self._lines
        assert lines is not None
        n = lines.get(key)
        if n is None:
            # Pieces share the cache with lines: a piece has the count of the line it
            # would be alone, and no piece holds a line break (first-line keys start with one).
            n = 0
            for piece in _PIECE.findall(line.replace(" ", _MARK)):
                m = lines.get(piece)
                if m is None:
                    m = len(self._tokenizer.model.tokenize(piece))
                    if len(piece) <= _KEEP_CHARS:
                        self._remember(piece, m)
                n += m
            if len(key) <= _KEEP_CHARS:  # long lines (a memory cut to fit) would fill it
                self._remember(key, n)
        return n

    def _remember(self, key: str, n: int) -> None:
        assert self._lines is not None
        with self._lock:
            if len(self._lines) >= self._cache_size:
                self._lines.clear()
            self._lines[key] = n


_KEEP_CHARS = 4_096
"""Texts up to this long have their counts kept (memory lines, section headers)."""
_MARK = "\u2581"
"""SentencePiece's word mark, which the Llama 2 normaliser puts before a text and for
every space."""
_LLAMA_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": _MARK},
        {"type": "Replace", "pattern": {"String": " "}, "content": _MARK},
    ],
}
"""Llama 2's normaliser: the word mark before the text and in place of every space."""
_PIECE = re.compile(f"\\n|{_MARK}+[^{_MARK}\\n]*|[^{_MARK}\\n]+")
"""A line break; or a run of word marks and the word after it; or a word without one."""


def _max_token_chars(config: dict[str, Any]) -> int | None:
    """The most characters of a text one token of this tokenizer can stand for, or None.

    Known for a BPE model whose normaliser and pre-tokenizer only add characters or map
    one to one (none; the Llama 2 normaliser; ``ByteLevel``, whose vocabulary spells
    each byte as one character; ``Metaspace``): each token then covers at most as many
    characters as its vocabulary entry (or its added token) has, and an unknown token
    covers one, unless runs of them fuse into one (``fuse_unk`` without a byte for
    every value to fall back to). Added tokens that swallow spaces beside them, and
    anything else, give no bound.
    """
    model = config.get("model") or {}
    pre = config.get("pre_tokenizer")
    vocab = model.get("vocab")
    added = config.get("added_tokens") or []
    if (
        model.get("type") != "BPE"
        or config.get("normalizer") not in (None, _LLAMA_NORMALIZER)
        or (pre is not None and pre.get("type") not in ("ByteLevel", "Metaspace"))
        or not isinstance(vocab, dict)
        or not vocab
        or any(t.get("lstrip") or t.get("rstrip") for t in added)
    ):
        return None
    every_byte = model.get("byte_fallback") and all(f"<0x{b:02X}>" in vocab for b in range(256))
    if model.get("unk_token") is not None and model.get("fuse_unk") and not every_byte:
        return None
    return max(1, max(map(len, vocab)), *(len(t.get("content", "")) for t in added))


def _word_bounded(config: dict[str, Any]) -> bool:
    """Whether counting a text piece by piece gives exactly what encoding it whole does.

    True for a BPE model with no pre-tokenizer and no dropout whose normaliser only
    prepends the word mark and turns spaces into it, and whose vocabulary has no token
    with a line break, nor a word mark after anything but other word marks: then no
    merge can join characters across a piece boundary, and the model sees each piece
    exactly as it would inside the whole text.
    """
    model = config.get("model") or {}
    if (
        model.get("type") != "BPE"
        or model.get("dropout") is not None
        or config.get("pre_tokenizer") is not None
        or config.get("normalizer") != _LLAMA_NORMALIZER
        or model.get("continuing_subword_prefix")
        or model.get("end_of_word_suffix")
    ):
        return False
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        return False
    return not any("\n" in token or _MARK in token.lstrip(_MARK) for token in vocab)


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
        # Special tokens are counted as plain text here, so only ordinary ones matter;
        # a token of n bytes stands for at most n characters.
        self._max_token_chars = max(map(len, self._encoding.token_byte_values()), default=1)

    @property
    def name(self) -> str:
        return self._name

    @property
    def exact(self) -> bool:
        return True

    @property
    def max_token_chars(self) -> int | None:
        return self._max_token_chars

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

    @property
    def max_token_chars(self) -> int | None:
        return 4

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

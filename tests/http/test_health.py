"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memex.core.identity import Role
from tests.http.conftest import Served, Tenant, client_of, error_of, open_served

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).resolve().parents[2] / "docs" / "http.md"


async def test_healthz_and_readyz_need_no_key(served: Served) -> None:
    async with served.client() as api:
        assert (await api.get("/healthz")).json() == {"status": "ok"}
        ready = (await api.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["schema_version"] >= 1


async def test_readyz_is_503_when_the_store_cannot_be_read(tmp_path: Path) -> None:
    served = open_served(tmp_path)
    served.mx.close()
    async with served.client() as api:
        assert (await api.get("/healthz")).status_code == 200
        assert error_of(await api.get("/readyz")) == (503, "store_unavailable")


async def test_metrics_count_requests_by_route_template_and_status(tmp_path: Path) -> None:
    served = open_served(tmp_path)
    try:
        async with served.client(served.owner) as api:
            made = (await api.post("/v1/memories", json={"content": "counted"})).json()
            await api.get(f"/v1/memories/{made['id']}")
            await api.get("/v1/memories/01900000-0000-7000-8000-000000000000")
            answer = await api.get("/metrics")
    finally:
        served.mx.close()
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    route = 'method="GET",route="/v1/memories/{memory_id}"'
    assert f'memex_http_requests_total{{{route},status="200"}} 1.0' in text
    assert f'memex_http_requests_total{{{route},status="404"}} 1.0' in text
    assert f'memex_http_request_duration_seconds_count{{{route},status="200"}} 1.0' in text
    assert made["id"] not in text  # a template, never the path
    size = re.search(r"^memex_store_size_bytes (\S+)$", text, re.M)
    assert size is not None and float(size.group(1)) > 0


async def test_metrics_need_an_admin_or_owner_of_the_home_tenant(
    served: Served, tenant: Tenant
) -> None:
    async with client_of(served, served.key("home", Role.ADMIN)) as api:
        assert (await api.get("/metrics")).status_code == 200
    for key in (served.key("home", Role.READ_WRITE), tenant.owner):
        async with client_of(served, key) as api:
            assert error_of(await api.get("/metrics")) == (403, "permission_denied")
    async with served.client() as api:
        assert error_of(await api.get("/metrics")) == (401, "unauthenticated")


def documented_routes() -> set[tuple[str, str]]:
    """Every ``METHOD /path`` docs/http.md lists, with its path parameters named as the
    app names them."""
    text = DOCS.read_text()
    found = set(re.findall(r"`(GET|POST|PATCH|DELETE|PUT) (/[^`\s]*)`", text))
    names = {"/v1/memories/{id}": "{memory_id}", "/v1/keys/{id}": "{key_id}"}
    out = set()
    for method, path in found:
        for prefix, name in names.items():
            if path.startswith(prefix):
                path = path.replace("{id}", name)
        out.add((method, path))
    return out


async def test_the_openapi_document_describes_every_documented_route(served: Served) -> None:
    async with served.client() as api:
        answer = await api.get("/openapi.json")
        assert (await api.get("/docs")).status_code == 200
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.1")
    served_routes = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert served_routes == documented_routes()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert any(s.startswith("2") for s in statuses), (method, path)
            if path.startswith("/v1/"):
                assert {"401", "422", "500"} <= statuses, (method, path)
                error = operation["responses"]["404"]["content"]["application/json"]
                assert error["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    assert "HTTPValidationError" not in document["components"]["schemas"]

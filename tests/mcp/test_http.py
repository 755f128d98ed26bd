"""``/mcp`` of a real ``memex serve`` on loopback, through the MCP SDK's streamable HTTP
client: the API's keys decide who calls and what they reach, never a tool argument."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from memex.interfaces.http.mcp import allowed_hosts
from tests.mcp.conftest import data_of, error_of
from tests.memexserver import MemexServer

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemexServer]:
    running = MemexServer(tmp_path_factory.mktemp("mcp-served"))
    yield running
    running.stop()


@asynccontextmanager
async def session(server: MemexServer, key: str, mode: str = "legacy") -> AsyncIterator[Client]:
    """An MCP session at ``/mcp`` sending ``key`` as its Bearer token."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


def post(server: MemexServer, body: Any, key: str | None, **headers: str) -> httpx.Response:
    sent = {**ACCEPT, **headers}
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    return httpx.post(f"{server.url}/mcp", json=body, headers=sent, timeout=60)


@pytest.mark.parametrize("key", [None, "mxk_unknown_secret", "not-a-key"])
def test_a_request_without_a_valid_key_is_401_as_elsewhere(
    server: MemexServer, key: str | None
) -> None:
    answer = post(server, INITIALIZE, key)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_what_one_session_remembers_a_new_session_recalls(
    server: MemexServer, mode: str
) -> None:
    _, key = server.new_tenant()
    async with session(server, key, mode) as first:
        made = data_of(await first.call_tool("remember", {"content": "The staging host is db-7"}))
    async with session(server, key, mode) as second:
        hits = data_of(await second.call_tool("recall", {"query": "which staging host"}))
        assert [h["id"] for h in hits["hits"]] == [made["remembered"]]
        assert len((await second.list_prompts()).prompts) == 4


async def test_two_tenants_never_see_each_other_and_forged_arguments_change_nothing(
    server: MemexServer,
) -> None:
    tenant_a, key_a = server.new_tenant()
    tenant_b, key_b = server.new_tenant()
    forged = {"tenant": tenant_b, "scope": {"tenant": tenant_b}, "user": "admin", "project": "x"}
    async with session(server, key_a) as a:
        made = data_of(
            await a.call_tool("remember", {"content": "A's codename is Bluebird", **forged})
        )
        mine = made["remembered"]
        whole = data_of(await a.call_tool("get", {"id": mine, **forged}))
        assert "scope" not in whole  # written in A's tenant, with no forged user or project
    async with session(server, key_b) as b:
        found = data_of(await b.call_tool("recall", {"query": "codename Bluebird", **forged}))
        assert found["count"] == 0
        for tool in ("get", "history", "forget"):
            assert error_of(await b.call_tool(tool, {"id": mine})) == f"{tool}: no memory {mine}"
        assert data_of(await b.call_tool("list", {})) == {"count": 0, "items": []}
        with pytest.raises(Exception, match="no memory"):
            await b.read_resource(f"memex://memory/{mine}")
    async with session(server, key_a) as a:
        assert data_of(await a.call_tool("get", {"id": mine}))["version"] == 1  # untouched
    with httpx.Client(
        base_url=server.url, headers={"authorization": f"Bearer {key_a}"}, timeout=60
    ) as api:
        assert api.get(f"/v1/memories/{mine}").json()["scope"] == {"tenant": tenant_a}


def test_a_session_id_from_one_key_gives_another_key_nothing(server: MemexServer) -> None:
    _, key_a = server.new_tenant()
    _, key_b = server.new_tenant()
    remember = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "remember", "arguments": {"content": "only A knows the vault code"}},
    }
    opened = post(server, INITIALIZE, key_a)
    assert opened.status_code == 200
    sid = opened.headers.get("mcp-session-id", "a-session-of-a")
    assert post(server, remember, key_a, **{"mcp-session-id": sid}).status_code == 200
    recall = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "recall", "arguments": {"query": "vault code"}},
    }
    answer = post(server, recall, key_b, **{"mcp-session-id": sid})
    if answer.status_code == 200:  # the session id carries nothing: B acts as B
        assert answer.json()["result"]["structuredContent"]["count"] == 0
    else:
        assert answer.status_code == 404
    assert post(server, recall, None, **{"mcp-session-id": sid}).status_code == 401


async def test_a_read_only_key_reads_but_cannot_write(server: MemexServer) -> None:
    _, owner = server.new_tenant()
    made = httpx.post(
        f"{server.url}/v1/keys",
        json={"role": "read_only"},
        headers={"authorization": f"Bearer {owner}"},
        timeout=60,
    )
    assert made.status_code == 201, made.text
    reader = made.json()["key"]
    async with session(server, reader) as client:
        refused = error_of(await client.call_tool("remember", {"content": "x"}))
        assert refused == "remember: a read_only key may not write"
        assert data_of(await client.call_tool("recall", {"query": "anything"}))["count"] == 0
    async with session(server, owner) as client:
        made = data_of(await client.call_tool("remember", {"content": "The key is audited"}))
    audit = httpx.get(
        f"{server.url}/v1/audit", headers={"authorization": f"Bearer {owner}"}, timeout=60
    )
    assert audit.status_code == 200, audit.text
    entries = audit.json()["entries"]
    reader_id, owner_id = reader.split("_")[1], owner.split("_")[1]
    denied = [e for e in entries if e["outcome"] == "denied"]
    assert [(e["key_id"], e["action"], e["detail"]) for e in denied] == [
        (reader_id, "write", "permission_denied:role")
    ]
    written = [e for e in entries if e["action"] == "memory.remember"]
    assert [(e["key_id"], e["resource_id"]) for e in written] == [(owner_id, made["remembered"])]
    assert all(e["user_agent"] for e in written)  # the request's, not the local user's


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"host": "evil.example"}, 421),
        ({"host": "evil.example:8787"}, 421),
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "http://localhost:3000"}, 200),
        ({"host": "localhost:1234"}, 200),
    ],
)
def test_dns_rebinding_protection_checks_host_and_origin(
    server: MemexServer, headers: dict[str, str], status: int
) -> None:
    assert post(server, INITIALIZE, server.owner_key, **headers).status_code == status


@pytest.mark.parametrize(
    ("extra", "host", "allowed"),
    [
        ((), "127.0.0.1:8787", True),
        ((), "localhost", True),
        ((), "localhost.evil.example", False),
        ((), "example.com:8787", False),
        (("example.com",), "example.com", True),
        (("example.com",), "example.com:443", True),
        (("example.com:8443",), "example.com:8443", True),
        (("example.com:8443",), "example.com:9000", False),
        (("[::1]",), "[::1]:80", True),
        (("Example.COM",), "example.com", True),
    ],
)
def test_the_host_allowlist(extra: tuple[str, ...], host: str, allowed: bool) -> None:
    hosts, origins = allowed_hosts(extra)
    exact = host in hosts
    wildcard = any(h.endswith(":*") and host.startswith(h[:-1]) for h in hosts)
    assert (exact or wildcard) == allowed
    assert all(o.startswith(("http://", "https://")) for o in origins)


def test_mcp_is_not_in_the_openapi_document_but_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "http.md").read_text()
    assert "/mcp" in docs and "`POST /mcp`" not in docs

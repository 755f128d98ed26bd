"""``/mcp`` of a real ``memex serve`` on loopback, through the MCP SDK's streamable HTTP
client: the API's keys decide who calls and what they reach, never a tool argument."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import LoggingMessageNotificationParams

from memex import Memex
from memex.interfaces.http.mcp import Sessions, allowed_hosts
from tests.http.test_serve import ServeProcess
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
async def session(
    server: MemexServer | str, key: str, mode: str = "legacy"
) -> AsyncIterator[Client]:
    """An MCP session at ``/mcp`` (of a server, or of a URL) sending ``key`` as its
    Bearer token."""
    url = server if isinstance(server, str) else server.url
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
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


def call(number: int, tool: str, **arguments: Any) -> dict[str, Any]:
    """A JSON-RPC ``tools/call`` request."""
    params = {"name": tool, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}


def test_a_session_is_bound_to_the_key_that_opened_it(server: MemexServer) -> None:
    _, key_a = server.new_tenant()
    _, key_b = server.new_tenant()
    opened = post(server, INITIALIZE, key_a)
    assert opened.status_code == 200
    sid = opened.headers["mcp-session-id"]
    remember = call(2, "remember", content="only A knows the vault code")
    assert post(server, remember, key_a, **{"mcp-session-id": sid}).status_code == 200
    unknown = post(server, call(3, "list"), key_b, **{"mcp-session-id": "f" * 32})
    assert unknown.status_code == 404
    for method in ("POST", "GET", "DELETE"):  # B gets what an unknown session gets
        answer = httpx.request(
            method,
            f"{server.url}/mcp",
            json=call(3, "recall", query="vault code") if method == "POST" else None,
            headers={**ACCEPT, "authorization": f"Bearer {key_b}", "mcp-session-id": sid},
            timeout=60,
        )
        assert (answer.status_code, answer.content) == (404, unknown.content), method
        assert answer.headers["content-type"] == unknown.headers["content-type"]
    assert post(server, call(4, "list"), None, **{"mcp-session-id": sid}).status_code == 401
    listed = post(server, call(5, "list"), key_a, **{"mcp-session-id": sid})
    assert listed.status_code == 200  # B's DELETE did not end A's session
    assert listed.json()["result"]["structuredContent"]["count"] == 1
    ended = httpx.delete(
        f"{server.url}/mcp",
        headers={"authorization": f"Bearer {key_a}", "mcp-session-id": sid},
        timeout=60,
    )
    assert ended.status_code == 200
    gone = post(server, call(6, "list"), key_a, **{"mcp-session-id": sid})
    assert (gone.status_code, gone.content) == (404, unknown.content)


def test_the_session_map_is_bounded_and_forgets_the_least_recently_used_first() -> None:
    sessions = Sessions(size=2)
    sessions.bind("s1", "key-a")
    sessions.bind("s2", "key-b")
    assert sessions.owner("s1") == "key-a"  # s1 is now the more recently used
    sessions.bind("s3", "key-a")
    assert (len(sessions), sessions.owner("s2")) == (2, None)
    assert (sessions.owner("s1"), sessions.owner("s3")) == ("key-a", "key-a")
    sessions.drop("s1")
    sessions.drop("s1")  # a session ends once; the second report changes nothing
    assert (len(sessions), sessions.owner("s1")) == (1, None)


def test_each_call_in_a_session_acts_as_the_request_that_carries_it(
    server: MemexServer,
) -> None:
    _, owner = server.new_tenant()
    opened = post(server, INITIALIZE, owner, **{"user-agent": "agent-opening"})
    sid = opened.headers["mcp-session-id"]
    remember = call(2, "remember", content="The audit names each request")
    answer = post(server, remember, owner, **{"mcp-session-id": sid, "user-agent": "agent-later"})
    made = answer.json()["result"]["structuredContent"]["remembered"]
    audit = httpx.get(
        f"{server.url}/v1/audit", headers={"authorization": f"Bearer {owner}"}, timeout=60
    ).json()["entries"]
    (written,) = [e for e in audit if e["action"] == "memory.remember"]
    assert (written["resource_id"], written["user_agent"]) == (made, "agent-later")


@pytest.fixture
def served() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.close()


def owner_key(process: ServeProcess) -> str:
    return next(line.split()[-1] for line in process.printed if line.startswith("owner key"))


async def test_worker_processes_serve_mcp_without_sessions(
    tmp_path: Path, served: list[ServeProcess]
) -> None:
    process = ServeProcess(["--store", str(tmp_path / "memex.db"), "--workers", "2"])
    served.append(process)
    url = process.url()
    key = owner_key(process)
    opened = httpx.post(
        f"{url}/mcp", json=INITIALIZE, headers={**ACCEPT, "authorization": f"Bearer {key}"}
    )
    assert opened.status_code == 200 and "mcp-session-id" not in opened.headers
    async with session(url, key) as client:  # each request may reach either worker
        made = [
            data_of(await client.call_tool("remember", {"content": f"worker note {i}"}))
            for i in range(4)
        ]
        listed = data_of(await client.call_tool("list", {"limit": 10}))
        assert {m["remembered"] for m in made} == {i["id"] for i in listed["items"]}
    code, errors = process.stop()
    assert code == 0 and "Traceback" not in errors, errors


def test_mcp_is_rate_limited_and_its_refusals_audited(
    tmp_path: Path, served: list[ServeProcess]
) -> None:
    process = ServeProcess(
        ["--store", str(tmp_path / "memex.db"), "--key-rate", "1/h", "--key-burst", "2"]
    )
    served.append(process)
    url = process.url()
    owner = {"authorization": f"Bearer {owner_key(process)}"}
    made = httpx.post(f"{url}/v1/keys", json={"role": "read_write"}, headers=owner, timeout=60)
    assert made.status_code == 201, made.text
    agent = made.json()
    sent = {**ACCEPT, "authorization": f"Bearer {agent['key']}"}
    opened = httpx.post(f"{url}/mcp", json=INITIALIZE, headers=sent, timeout=60)
    assert opened.status_code == 200
    sent["mcp-session-id"] = opened.headers["mcp-session-id"]
    listed = httpx.post(f"{url}/mcp", json=call(2, "list"), headers=sent, timeout=60)
    assert listed.status_code == 200
    refused = httpx.post(f"{url}/mcp", json=call(3, "list"), headers=sent, timeout=60)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"]["code"] == "rate_limited"
    audit = httpx.get(f"{url}/v1/audit", headers=owner, timeout=60)
    assert audit.status_code == 200, audit.text
    denied = [e for e in audit.json()["entries"] if e["outcome"] == "denied"]
    assert [(e["key_id"], e["resource_id"], e["detail"]) for e in denied] == [
        (agent["id"], "POST /mcp", "rate_limited")
    ]


async def test_a_session_that_sets_a_log_level_is_sent_memex_warnings(
    tmp_path: Path, served: list[ServeProcess]
) -> None:
    store = tmp_path / "memex.db"
    with Memex.open(store) as mx:
        mx.set_quota(memories_soft=1)  # the first memory reaches it: a warning
    process = ServeProcess(["--store", str(store)])
    served.append(process)
    url = process.url()
    got: list[LoggingMessageNotificationParams] = []

    async def received(params: LoggingMessageNotificationParams) -> None:
        got.append(params)

    headers = {"Authorization": f"Bearer {owner_key(process)}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{url}/mcp", http_client=http)
        async with Client(transport, mode="legacy", logging_callback=received) as client:
            with pytest.warns(MCPDeprecationWarning):
                await client.set_logging_level("warning")
            data_of(await client.call_tool("remember", {"content": "The first fact"}))
            with anyio.fail_after(30):  # sent on the session's GET stream
                while not got:
                    await anyio.sleep(0.05)
    assert [(g.level, g.logger, g.data) for g in got] == [
        ("warning", "memex.limits", "tenant default is at its soft memories quota: memories 1/1")
    ]


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

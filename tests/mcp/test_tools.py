"""Every tool, the resource and the prompts, through the SDK's in-process client, on a
real store file; every bad argument is a one-line tool error and the session goes on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from memex import Memex
from memex.interfaces.mcp import render
from memex.interfaces.mcp.server import serve_handle
from tests.mcp.conftest import data_of, error_of, text_of

pytestmark = pytest.mark.anyio

TOOLS = {"remember", "recall", "get", "context", "update", "forget", "history", "list"}


@pytest.fixture
def mx(tmp_path: Path) -> Iterator[Memex]:
    with Memex.open(tmp_path / "memex.db", max_content_bytes=70_000) as handle:
        yield handle


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, mx: Memex) -> AsyncIterator[Client]:
    async with Client(serve_handle(mx), mode=request.param) as session:
        yield session


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    return await client.call_tool(tool, arguments)


async def test_every_tool_has_a_described_schema(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60, tool.name
        assert tool.input_schema["type"] == "object"
        for name, field in tool.input_schema["properties"].items():
            assert field.get("description"), (tool.name, name)
    assert tools["recall"].input_schema["required"] == ["query"]
    assert tools["recall"].annotations is not None and tools["recall"].annotations.read_only_hint
    assert tools["forget"].annotations is not None and tools["forget"].annotations.destructive_hint
    assert "ctx" not in json.dumps([t.input_schema for t in tools.values()])


async def test_remember_recall_get_update_history_forget(client: Client) -> None:
    made = data_of(
        await call(
            client, "remember", content="Alice prefers tabs over spaces", kind="preference",
            tags=["style"], importance=0.9, metadata={"source": "chat"},
        )
    )  # fmt: skip
    mid = made["remembered"]
    assert made == {"remembered": mid, "version": 1, "kind": "preference"}

    found = data_of(await call(client, "recall", query="does Alice like tabs?", k=3))
    assert found["count"] == 1
    hit = found["hits"][0]
    assert hit["id"] == mid and hit["snippet"] == "Alice prefers tabs over spaces"
    assert hit["kind"] == "preference" and hit["tags"] == ["style"] and hit["score"] > 0
    assert hit["when"].endswith("Z")

    whole = data_of(await call(client, "get", id=mid))
    assert whole["content"] == "Alice prefers tabs over spaces"
    assert whole["metadata"] == {"source": "chat"} and whole["importance"] == 0.9
    assert whole["state"] == "current" and whole["version"] == 1

    changed = data_of(await call(client, "update", id=mid, content="Alice prefers spaces now"))
    assert changed == {"updated": mid, "version": 2}
    versions = data_of(await call(client, "history", id=mid))
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    assert versions["versions"][0]["snippet"] == "Alice prefers tabs over spaces"
    assert versions["versions_total"] == 2

    assert data_of(await call(client, "forget", id=mid))["forgotten"] == mid
    assert data_of(await call(client, "recall", query="Alice prefers"))["count"] == 0
    assert "no memory" in error_of(await call(client, "get", id=mid))


async def test_remember_supersedes_and_expires(client: Client) -> None:
    old = data_of(await call(client, "remember", content="The office is in Paris"))["remembered"]
    new = data_of(await call(client, "remember", content="The office is in Lyon", supersedes=old))[
        "remembered"
    ]
    hits = data_of(await call(client, "recall", query="where is the office"))["hits"]
    assert [h["id"] for h in hits] == [new]
    assert data_of(await call(client, "get", id=old))["superseded_by"] == new
    brief = data_of(await call(client, "remember", content="temporary", ttl_seconds=3600))
    assert "expires" in data_of(await call(client, "get", id=brief["remembered"]))


async def test_list_pages_with_a_cursor(client: Client) -> None:
    for i in range(5):
        await call(client, "remember", content=f"note number {i}", kind="note")
    first = data_of(await call(client, "list", limit=3))
    assert first["count"] == 3 and first["items"][0]["snippet"] == "note number 4"
    rest = data_of(await call(client, "list", limit=3, cursor=first["next_cursor"]))
    assert [i["snippet"] for i in rest["items"]] == ["note number 1", "note number 0"]
    assert "next_cursor" not in rest
    oldest = data_of(await call(client, "list", limit=1, order="asc"))
    assert oldest["items"][0]["snippet"] == "note number 0"
    assert data_of(await call(client, "list", kinds=["fact"]))["count"] == 0


async def test_context_is_an_index_first_and_text_on_request(client: Client) -> None:
    ids = [
        data_of(await call(client, "remember", content=text, kind=kind))["remembered"]
        for text, kind in [
            ("The user prefers short answers", "preference"),
            ("The deploy script lives in tools/deploy.sh", "fact"),
        ]
    ]
    index = data_of(await call(client, "context", query="how do I deploy", budget_tokens=500))
    shown = [m["id"] for s in index["sections"] for m in s["memories"]]
    assert set(ids) <= set(shown) and index["memories"] == len(shown)
    assert 0 < index["context_tokens"] <= 500
    full = await call(client, "context", query="how do I deploy", detail="full")
    assert not full.is_error
    assert "tools/deploy.sh" in text_of(full)
    assert full.structured_content["text"] == text_of(full)
    assert set(ids) <= set(full.structured_content["ids"])


async def test_the_memory_resource(client: Client, mx: Memex) -> None:
    memory = mx.remember("Bob's birthday is in May", tags=["people"])
    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["memex://memory/{id}"]
    read = await client.read_resource(f"memex://memory/{memory.id}")
    data = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert data["content"] == "Bob's birthday is in May" and data["tags"] == ["people"]
    with pytest.raises(MCPError, match="no memory"):
        await client.read_resource("memex://memory/01900000-0000-7000-8000-000000000000")
    assert data_of(await call(client, "get", id=memory.id))["id"] == memory.id


async def test_the_prompts(client: Client, mx: Memex) -> None:
    for i in range(3):
        mx.remember(f"Project Zephyr milestone {i} reached", kind="event")
    names = {p.name for p in (await client.list_prompts()).prompts}
    assert names == {"stats", "recent", "search", "export"}

    def said(result: Any) -> str:
        return str(result.messages[0].content.text)

    assert "memories: 3 (event 3)" in said(await client.get_prompt("stats", {}))
    recent = said(await client.get_prompt("recent", {"count": "2"}))
    assert "milestone 2" in recent and "milestone 1" in recent and "milestone 0" not in recent
    search = said(await client.get_prompt("search", {"query": "Zephyr milestone"}))
    assert search.count(" reached") == 3
    export = said(await client.get_prompt("export", {"limit": "2"}))
    records = [json.loads(line) for line in export.splitlines() if line.startswith("{")]
    assert [r["content"] for r in records] == [
        f"Project Zephyr milestone {i} reached" for i in (0, 1)
    ]
    assert "2 shown; more are not" in export
    with pytest.raises(MCPError, match="whole number from 1 to 100"):
        await client.get_prompt("recent", {"count": "many"})


BAD_CALLS = [
    ("remember", {}, "remember: content is required"),
    ("remember", {"content": 123}, "remember: content: input should be a valid string"),
    ("remember", {"content": "   "}, "remember: content"),
    ("remember", {"content": "x", "importance": 7}, "remember: importance: input should be less"),
    ("remember", {"content": "x", "kind": "NOT A KIND"}, "remember: kind"),
    ("remember", {"content": "x" * 70_001}, "remember: content is 70001 bytes"),
    ("recall", {}, "recall: query is required"),
    ("recall", {"query": ""}, "recall: query must not be empty"),
    ("recall", {"query": "x", "k": "many"}, "recall: k: input should be a valid integer"),
    ("recall", {"query": "x", "k": 0}, "recall: k: input should be greater than or equal to 1"),
    ("recall", {"query": "x", "k": True}, "recall: k: input should be a valid integer"),
    ("recall", {"query": "x", "since": "yesterday"}, "recall: since is not an ISO 8601 time"),
    ("get", {}, "get: id is required"),
    ("get", {"id": "nope"}, "get: no memory nope"),
    ("get", {"id": ["a"]}, "get: id: input should be a valid string"),
    ("update", {"id": "nope", "content": "x"}, "update: no memory nope"),
    ("update", {"id": "nope"}, "update: give at least one of"),
    ("forget", {"id": "01900000-0000-7000-8000-000000000000"}, "forget: no memory"),
    ("history", {"id": "nope"}, "history: no memory nope"),
    ("list", {"limit": 101}, "list: limit: input should be less than or equal to 100"),
    ("list", {"order": "sideways"}, "list: order: input should be 'desc' or 'asc'"),
    ("context", {"budget_tokens": 10}, "context: budget_tokens: input should be greater"),
    ("context", {"detail": "all"}, "context: detail: input should be 'index' or 'full'"),
    ("teleport", {}, "teleport: Unknown tool: teleport"),
]


async def test_a_bad_call_is_a_one_line_tool_error(client: Client) -> None:
    for tool, arguments, message in BAD_CALLS:  # one session: each error leaves it usable
        answer = error_of(await client.call_tool(tool, arguments))
        assert answer.startswith(message), (tool, arguments, answer)
    assert data_of(await call(client, "list"))["count"] == 0  # nothing was written


async def test_another_tenants_memory_is_not_found(mx: Memex) -> None:
    theirs = mx.scoped(tenant="other").remember("The other tenant's secret plan")
    async with Client(serve_handle(mx.scoped(tenant="mine"))) as client:
        for tool in ("get", "history", "forget"):
            assert (
                error_of(await call(client, tool, id=theirs.id)) == f"{tool}: no memory {theirs.id}"
            )
        assert "no memory" in error_of(await call(client, "update", id=theirs.id, content="x"))
        assert data_of(await call(client, "recall", query="secret plan"))["count"] == 0
        forged = {"tenant": "other", "scope": {"tenant": "other"}, "user": "root"}
        found = data_of(await client.call_tool("recall", {"query": "secret plan", **forged}))
        assert found["count"] == 0
        made = data_of(await client.call_tool("remember", {"content": "mine", **forged}))
    assert mx.scoped(tenant="mine").get(made["remembered"]).scope.tenant == "mine"
    assert mx.scoped(tenant="other").get(theirs.id).version == 1  # untouched


async def test_a_scoped_server_writes_and_sees_its_scope_only(mx: Memex) -> None:
    outside = mx.remember("Team-wide: standup at ten", scope={"project": "other"})
    scope = {"project": "apollo", "agent": "coder"}
    async with Client(serve_handle(mx.scoped(**scope), scope=scope)) as client:
        made = data_of(await call(client, "remember", content="Apollo uses Postgres"))
        hits = data_of(await call(client, "recall", query="standup at ten"))["hits"]
        assert [h["id"] for h in hits] == [made["remembered"]]  # the semantic leg finds it
        assert "no memory" in error_of(await call(client, "get", id=outside.id))
        assert data_of(await call(client, "get", id=made["remembered"]))["scope"] == scope


async def test_answers_stay_small_whatever_the_store_holds(client: Client, mx: Memex) -> None:
    big = "word " * 13_000  # 65,000 characters
    ids = [m.id for m in mx.remember_many([{"content": f"{i} {big}"} for i in range(50)])]
    found = await call(client, "recall", query="word", k=50)
    assert len(text_of(found)) < 50 * (render.SNIPPET_CHARS + 200)
    assert all(len(h["snippet"]) <= render.SNIPPET_CHARS for h in data_of(found)["hits"])
    whole = data_of(await call(client, "get", id=ids[0]))
    assert len(whole["content"]) == render.CONTENT_CHARS
    assert whole["content_truncated"] == {
        "shown_chars": render.CONTENT_CHARS,
        "total_chars": 65_002,
    }
    listed = await call(client, "list", limit=100)
    assert len(text_of(listed)) < 100 * (render.SNIPPET_CHARS + 200)
    export = await client.get_prompt("export", {"limit": "1000"})
    assert len(export.messages[0].content.text) < 110_000  # type: ignore[union-attr]

"""The MCP Inspector's command-line client (@modelcontextprotocol/inspector ``--cli``), one
process per call, against ``memex mcp`` on stdio and against ``memex serve``'s /mcp with a
Bearer key: what an agent's host sees, from a client memex does not ship."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from memexserver import MemexServer
from nodetools import ROOT, NodeTools, node_tools

CALL_SECONDS = 60
CORE_TOOLS = {"remember", "recall", "get", "context", "forget"}
FACT = "The staging database is rebuilt from the nightly snapshot at 03:00 UTC"
QUESTION = "when is the staging database rebuilt"


@pytest.fixture(scope="module")
def tools() -> NodeTools:
    """The installed Node tools (or a skip naming the install command)."""
    return node_tools()


def inspect(
    tools: NodeTools, home: Path, target: list[str], *args: str, code: int = 0
) -> dict[str, Any]:
    """One Inspector CLI call: its JSON answer, once it exited with ``code``."""
    run = subprocess.run(
        tools.command(tools.inspector, "--cli", *args, *target),
        capture_output=True,
        text=True,
        env=tools.env(home),
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=CALL_SECONDS,
    )
    assert run.returncode == code, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    answer: dict[str, Any] = json.loads(run.stdout if code == 0 else run.stderr)
    return answer


def recall_hits(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The hits of a recall tool call's structured answer."""
    assert answer["isError"] is False, answer
    hits: list[dict[str, Any]] = answer["structuredContent"]["hits"]
    return hits


def stdio(store: Path, home: Path) -> list[str]:
    """The Inspector's arguments that start ``python -m memex mcp`` on ``store``."""
    env = {"PYTHONPATH": str(ROOT), "MEMEX_WARM": "0", "MEMEX_HOME": str(home / "memex")}
    pairs = [part for name, value in env.items() for part in ("-e", f"{name}={value}")]
    return [*pairs, "--", sys.executable, "-m", "memex", "mcp", "--store", str(store)]


def http(url: str) -> list[str]:
    """The Inspector's arguments that reach an MCP server over streamable HTTP."""
    return ["--transport", "http", "--server-url", url]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemexServer]:
    """One ``memex serve`` on loopback for the HTTP calls."""
    served = MemexServer(tmp_path_factory.mktemp("served"))
    try:
        yield served
    finally:
        served.stop()


def test_stdio_lists_memex_tools_and_recalls_across_processes(
    tools: NodeTools, tmp_path: Path
) -> None:
    """Over stdio, tools/list names memex's tools, and what one process remembers the
    next process recalls from the same store."""
    target = stdio(tmp_path / "store.db", tmp_path)
    listed = inspect(tools, tmp_path, target, "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}
    assert names >= CORE_TOOLS
    assert all(tool["description"] and tool["inputSchema"] for tool in listed["tools"])

    call = ["--method", "tools/call", "--tool-name"]
    remembered = inspect(
        tools, tmp_path, target, *call, "remember", "--tool-arg", f"content={FACT}"
    )
    memory_id = remembered["structuredContent"]["remembered"]
    hits = recall_hits(
        inspect(tools, tmp_path, target, *call, "recall", "--tool-arg", f"query={QUESTION}")
    )
    assert [hit["id"] for hit in hits][:1] == [memory_id]
    assert hits[0]["snippet"] == FACT


def test_http_needs_a_key_and_keeps_each_tenant_to_itself(
    tools: NodeTools, server: MemexServer, tmp_path: Path
) -> None:
    """Over HTTP with a Bearer key, tools/list names the same tools as stdio; a memory
    remembered through one call is recalled by the next, with the same key only; no key
    is refused before any tool runs."""
    url = f"{server.url}/mcp"
    _, key = server.new_tenant()
    _, other_key = server.new_tenant()
    keyed = [*http(url), "--header", f"Authorization: Bearer {key}"]
    call = ["--method", "tools/call", "--tool-name"]

    listed = inspect(tools, tmp_path, keyed, "--method", "tools/list")
    over_stdio = inspect(
        tools, tmp_path, stdio(tmp_path / "s.db", tmp_path), "--method", "tools/list"
    )
    assert [tool["name"] for tool in listed["tools"]] == [
        tool["name"] for tool in over_stdio["tools"]
    ]

    remembered = inspect(tools, tmp_path, keyed, *call, "remember", "--tool-arg", f"content={FACT}")
    memory_id = remembered["structuredContent"]["remembered"]
    recall = [*call, "recall", "--tool-arg", f"query={QUESTION}"]
    hits = recall_hits(inspect(tools, tmp_path, keyed, *recall))
    assert [hit["id"] for hit in hits][:1] == [memory_id]
    assert hits[0]["snippet"] == FACT

    elsewhere = [*http(url), "--header", f"Authorization: Bearer {other_key}"]
    assert recall_hits(inspect(tools, tmp_path, elsewhere, *recall)) == []
    refused = inspect(tools, tmp_path, http(url), "--method", "tools/list", code=3)
    assert refused["error"]["code"] == "auth_required"

"""``memex mcp`` as agents run it: a process of its own, reached through the MCP SDK's
stdio client; over a store file, and over a memex server that may be down."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from tests.mcp.conftest import data_of, environment, error_of
from tests.memexserver import MemexServer

pytestmark = pytest.mark.anyio


def memex_mcp(*args: str, **env: str) -> Client:
    """A client of a new ``python -m memex mcp`` process."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memex", "mcp", *args], env=environment(**env)
    )
    return Client(params, mode="legacy")


async def test_what_one_session_remembers_a_new_process_recalls(tmp_path: Path) -> None:
    store = str(tmp_path / "agent.db")
    facts = [
        "The user's name is Dana and she works on the billing service",
        "Billing deploys need a feature flag named billing_v2",
    ]
    async with memex_mcp("--store", store, "--project", "billing") as first:
        ids = [
            data_of(await first.call_tool("remember", {"content": f}))["remembered"] for f in facts
        ]
    async with memex_mcp("--store", store, MEMEX_PROJECT="billing") as second:
        hits = data_of(
            await second.call_tool("recall", {"query": "which feature flag for deploys"})
        )
        assert hits["hits"][0]["id"] == ids[1]
        whole = data_of(await second.call_tool("get", {"id": ids[0]}))
        assert whole["content"] == facts[0] and whole["scope"] == {"project": "billing"}
    async with memex_mcp("--store", store, "--project", "other") as elsewhere:
        assert "no memory" in error_of(await elsewhere.call_tool("get", {"id": ids[0]}))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_server_that_is_down_is_a_one_line_error_before_the_session() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "memex", "mcp", "--store", url],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environment(MEMEX_API_KEY="mxk_none_none"),
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout == ""  # nothing but protocol on standard output, ever
    assert done.stderr == f"error: cannot reach the memex server at {url}: connection refused\n"


def test_without_the_extra_the_command_says_which_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "nomcp"
    blocker.mkdir()
    (blocker / "mcp").mkdir()
    (blocker / "mcp" / "__init__.py").write_text("raise ImportError(name='mcp')\n")
    env = environment()
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "memex", "mcp", "--store", str(tmp_path / "s.db")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3 and done.stdout == ""
    assert "needs the mcp extra" in done.stderr and "memex[mcp]" in done.stderr


async def test_over_a_server_that_dies_mid_session_calls_fail_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    server = MemexServer(tmp_path / "server")
    try:
        _, key = server.new_tenant()
        async with memex_mcp("--store", server.url, MEMEX_API_KEY=key) as client:
            made = data_of(await client.call_tool("remember", {"content": "served remotely"}))
            assert data_of(await client.call_tool("get", {"id": made["remembered"]}))["content"]
            server.stop()
            for tool, arguments in (("recall", {"query": "served"}), ("get", {"id": "x"})):
                message = error_of(await client.call_tool(tool, arguments))
                assert message.startswith(f"{tool}: cannot reach the memex server at {server.url}")
            tools: Any = await client.list_tools()  # the session is still there
            assert len(tools.tools) == 8
    finally:
        server.stop()

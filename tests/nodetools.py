"""The Node tools the MCP tests drive (Node 22, the MCP conformance suite, the MCP Inspector
CLI), found in the one place ``scripts/install-node-tools`` (run by ``make test``) puts them.

Missing tools skip the test with the command that installs them, except under ``CI=true``,
where they fail it: CI runs ``make test``, which installs them first, so absence there is a bug.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "node"
INSTALL = "scripts/install-node-tools (or make node-tools)"
PACKAGES = CACHE / "node_modules"


@dataclass(frozen=True, slots=True)
class NodeTools:
    """Where the installed tools are, and how to run one of them."""

    node: Path
    packages: Path

    def command(self, script: str, *args: str) -> list[str]:
        """The command line running ``script`` (a path under node_modules) under Node 22."""
        return [str(self.node), str(self.packages / script), *args]

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """An environment for a tool: Node 22 first on PATH, and a HOME of its own, since the
        Inspector keeps a catalog and secrets there."""
        path = f"{self.node.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "PATH": path, "HOME": str(home), "NO_COLOR": "1", **extra}

    @property
    def conformance(self) -> str:
        """The MCP conformance suite's command-line entry point."""
        return "@modelcontextprotocol/conformance/dist/index.js"

    @property
    def inspector(self) -> str:
        """The MCP Inspector's launcher (``--cli`` selects its command-line client)."""
        return "@modelcontextprotocol/inspector/clients/launcher/build/index.js"


def _missing(reason: str) -> None:
    message = f"{reason}; install them with {INSTALL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def node_tools() -> NodeTools:
    """The installed tools, or a skip (a failure under CI=true) naming the install command."""
    node = PACKAGES / "node" / "bin" / "node"
    if not (CACHE / ".installed").is_file() or not node.is_file():
        _missing(f"the Node test tools are not installed in {CACHE}")
    version = subprocess.run(
        [str(node), "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout.strip()
    if not version.startswith("v22."):
        _missing(f"{node} is {version or 'not runnable'}, not Node 22")
    tools = NodeTools(node=node, packages=PACKAGES)
    for script in (tools.conformance, tools.inspector):
        if not (PACKAGES / script).is_file():
            _missing(f"{PACKAGES / script} is missing")
    return tools

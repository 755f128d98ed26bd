"""``memex mcp``: the store (or a memex server) to an AI agent, over MCP on stdio.

Standard output carries the protocol and nothing else: warnings and logs go to
standard error. Needs the ``mcp`` extra. The store is found as for every other command
(``--store``, ``$MEMEX_STORE``, the default store); with ``--store https://...`` the
tools call that server with ``$MEMEX_API_KEY``, which decides the tenant. ``--project``,
``--user`` and ``--agent`` (or ``$MEMEX_PROJECT``, ``$MEMEX_USER``, ``$MEMEX_AGENT``)
narrow what the tools see and write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memex.errors import ConfigError
from memex.interfaces.cli.invocation import Cli

if TYPE_CHECKING:
    from memex.client.sync import Client


def require_mcp(command: str) -> None:
    """Refuse, in one line, to go on without the ``mcp`` extra."""
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"{command} needs the mcp extra ({exc.name} is missing): pip install 'memex[mcp]'"
        ) from None


def mcp(cli: Cli) -> None:
    """Serve MCP on stdio until the client closes standard input."""
    a = cli.args
    require_mcp("memex mcp")
    import logging

    import anyio

    from memex.interfaces.mcp.server import serve_handle
    from memex.service import Memex

    logging.basicConfig(level=logging.WARNING, format="memex mcp: %(message)s")
    scope = {n: v for n in ("project", "user", "agent") if (v := getattr(a, n)) is not None}
    with cli.memories() as found:
        handle: Memex | Client = found
        if isinstance(found, Memex):
            if scope:  # by-id calls are confined too, not only searches and writes
                handle = found.scoped(**scope)
        else:
            # Asked once now: a server that is down or a key it refuses is an error
            # before the agent starts, not at its first call.
            found.me()
        server = serve_handle(handle, scope=scope)
        anyio.run(_serve, server)


async def _serve(server: Any) -> None:
    await server.run_stdio_async()

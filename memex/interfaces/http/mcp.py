"""``/mcp``: the MCP server (``memex.interfaces.mcp``) over streamable HTTP, behind the
API's own keys.

Each request is authenticated here, with the Gate every route uses: no key, or one
that is unknown, revoked or expired, is a 401 with ``WWW-Authenticate: Bearer`` as
anywhere in the API, and the server's rate limits apply as they do to every route; a
refusal is entered in the audit trail. The key's principal and its handle ride in the request's ASGI
scope (``tools.CALLER``), where the tools of that request find them: what a call
may reach comes from the key of the request that carries it, never from an argument
and never from an earlier request. The transport is stateless (no session outlives
its request), so it works the same with any number of workers, and a session id
minted for one key gives nothing to another. Host and Origin are checked against an
allowlist (the SDK's DNS-rebinding protection).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from types import SimpleNamespace
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from memex.actor import set_actor
from memex.errors import MemexError
from memex.interfaces.http.callers import OUTGOING, Caller, Gate
from memex.interfaces.http.errors import memex_error
from memex.interfaces.http.metrics import Metrics

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATH = "/mcp"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_ROUTE = SimpleNamespace(path=PATH)
"""What the metrics name the route by."""


def allowed_hosts(extra: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The Host and Origin values ``/mcp`` accepts: loopback on any port, and each of
    ``extra`` (``host`` or ``host:port``; a bare host on any port)."""
    hosts: list[str] = []
    origins: list[str] = []
    for host in (*LOOPBACK_HOSTS, *extra):
        host = host.strip().lower()
        if not host:
            continue
        bare = host.endswith("]") or ":" not in host  # no port: any port
        names = [host, f"{host}:*"] if bare else [host]
        for name in names:
            if name not in hosts:
                hosts.append(name)
                origins.extend(f"{scheme}://{name}" for scheme in ("http", "https"))
    return hosts, origins


class McpEndpoint:
    """The ASGI app at ``/mcp``: authenticate, then hand the request to the SDK."""

    def __init__(self, gate: Gate, metrics: Metrics, manager: StreamableHTTPSessionManager) -> None:
        self.gate = gate
        self.metrics = metrics
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = _ROUTE
        headers = Headers(scope=scope)
        client = scope.get("client")
        credentials = (
            headers.get("authorization"),
            client[0] if client else None,
            headers.getlist("x-forwarded-for"),
        )
        # The same caller as every route's: its key, the server's limits, the audit
        # trail's actor (the tools' writes are entered under the request's key).
        caller = Caller(
            self.gate, credentials, None, scope.get(OUTGOING), headers.get("user-agent")
        )
        request = Request(scope, receive)
        request.state.caller = caller
        set_actor(caller.actor)
        try:
            if caller.inline_reads:
                principal = caller.principal
            else:  # an unknown key's refusal waits out a floor: not on the event loop
                principal = await run_in_threadpool(lambda: caller.principal)
        except MemexError as exc:
            answer = await memex_error(request, exc)
            await answer(scope, receive, send)
            return
        from memex.interfaces.mcp.tools import CALLER

        scope[CALLER] = (principal, self.gate.handle(principal))
        await self.manager.handle_request(scope, receive, send)


def mount(
    app: object, gate: Gate, metrics: Metrics, hosts: Sequence[str]
) -> AbstractAsyncContextManager[None]:
    """Serve MCP at ``/mcp`` on ``app`` (a FastAPI app); return what its lifespan must
    run while it serves."""
    from fastapi import FastAPI
    from mcp.server.transport_security import TransportSecuritySettings

    from memex.interfaces.mcp.server import build_server
    from memex.interfaces.mcp.tools import from_request

    assert isinstance(app, FastAPI)
    server = build_server(from_request, private=True)
    allowed, origins = allowed_hosts(hosts)
    server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=allowed, allowed_origins=origins
        ),
    )
    manager = server.session_manager
    app.add_route(PATH, McpEndpoint(gate, metrics, manager), include_in_schema=False)  # type: ignore[arg-type]
    return manager.run()

"""``/mcp``: the MCP server (``memex.interfaces.mcp``) over streamable HTTP, behind the
API's own keys.

Each request is authenticated here, with the Gate every route uses: no key, or one
that is unknown, revoked or expired, is a 401 with ``WWW-Authenticate: Bearer`` as
anywhere in the API, and the server's rate limits apply as they do to every route; a
refusal is entered in the audit trail. The key's principal and its handle ride in the request's ASGI
scope (``tools.CALLER``), where the tools of that request find them: what a call
may reach comes from the key of the request that carries it, never from an argument
and never from an earlier request.

One server process keeps sessions (``Mcp-Session-Id``): each is bound to the key that
opened it, and a request naming a session opened by another key (or one that ended)
gets exactly the answer of an unknown session, 404. With several worker processes the
transport is stateless instead (no session outlives its request), since a session lives
in one process's memory and the next request may reach another. Host and Origin are
checked against an allowlist (the SDK's DNS-rebinding protection).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from types import SimpleNamespace
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from memex.actor import set_actor
from memex.errors import MemexError
from memex.interfaces.http.callers import OUTGOING, Caller, Gate
from memex.interfaces.http.errors import memex_error
from memex.interfaces.http.metrics import Metrics

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATH = "/mcp"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SESSION_HEADER = "mcp-session-id"
MAX_SESSIONS = 4096
"""Sessions open at once in one process; past that a new one is refused (503) until
one ends or idles out."""
SESSION_IDLE_SECONDS = 15 * 60
"""A session with no request in flight for this long is closed (its id then gives 404)."""
UNKNOWN_SESSION = (
    b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}'
)
"""The SDK's answer to a session id it does not know, byte for byte."""
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


class Sessions:
    """Which key opened each open session: a bounded map, least recently used first.

    It holds as many sessions as the SDK keeps open at most, so when it is full at least
    one entry is of a session that has ended (idled out: the SDK does not say); the
    least recently used goes. A session that loses its entry anyway answers as unknown
    (404) and its client opens another: never does a session go unbound."""

    def __init__(self, size: int = MAX_SESSIONS) -> None:
        self.size = size
        self._owners: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._owners)

    def bind(self, session: str, key: str) -> None:
        """Record that ``key`` opened ``session``."""
        self._owners[session] = key
        self._owners.move_to_end(session)
        while len(self._owners) > self.size:
            self._owners.popitem(last=False)

    def owner(self, session: str) -> str | None:
        """The key that opened ``session``, if it is known."""
        key = self._owners.get(session)
        if key is not None:
            self._owners.move_to_end(session)
        return key

    def drop(self, session: str) -> None:
        """Forget an ended session."""
        self._owners.pop(session, None)


class McpEndpoint:
    """The ASGI app at ``/mcp``: authenticate, then hand the request to the SDK (after
    checking, when it keeps sessions, that a session named is the key's own)."""

    def __init__(
        self,
        gate: Gate,
        metrics: Metrics,
        manager: StreamableHTTPSessionManager,
        sessions: Sessions | None = None,
    ) -> None:
        self.gate = gate
        self.metrics = metrics
        self.manager = manager
        self.sessions = sessions

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
        # trail's actor (the tools' writes are entered under the request's key; in a
        # session too, as the SDK runs each message's handler in the context of the
        # request that carried it).
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
        if self.sessions is None:
            await self.manager.handle_request(scope, receive, send)
        else:
            await self._in_session(scope, receive, send, principal.key_id, headers)

    async def _in_session(
        self, scope: Scope, receive: Receive, send: Send, key: str, headers: Headers
    ) -> None:
        """Serve a request of a server that keeps sessions: one naming a session must
        come with the key that opened it; the session a request opens is bound to its key."""
        sessions = self.sessions
        assert sessions is not None
        named = headers.get(SESSION_HEADER)
        if named is not None and sessions.owner(named) != key:
            # Another key's session, or one not known (any more): the same answer.
            unknown = Response(UNKNOWN_SESSION, 404, media_type="application/json")
            await unknown(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                if named is None:
                    opened = MutableHeaders(scope=message).get(SESSION_HEADER)
                    if opened is not None and status < 400:
                        sessions.bind(opened, key)
                elif status == 404 or (scope["method"] == "DELETE" and status < 300):
                    sessions.drop(named)  # ended: by its client, or idled out
            await send(message)

        await self.manager.handle_request(scope, receive, watch)


def mount(
    app: object, gate: Gate, metrics: Metrics, hosts: Sequence[str], *, sessions: bool = True
) -> AbstractAsyncContextManager[None]:
    """Serve MCP at ``/mcp`` on ``app`` (a FastAPI app); return what its lifespan must
    run while it serves. ``sessions``: keep sessions (one server process); else each
    request stands alone (several processes share the port)."""
    from fastapi import FastAPI
    from mcp.server.transport_security import TransportSecuritySettings

    from memex.interfaces.mcp.server import build_server
    from memex.interfaces.mcp.tools import from_request

    assert isinstance(app, FastAPI)
    server = build_server(from_request, private=True)
    allowed, origins = allowed_hosts(hosts)
    # JSON answers rather than SSE streams: memex's calls are short and send nothing
    # before their answer, and without an event store an SSE stream could not be resumed.
    server.streamable_http_app(
        streamable_http_path=PATH,
        stateless_http=not sessions,
        json_response=True,
        session_idle_timeout=SESSION_IDLE_SECONDS,
        max_sessions=MAX_SESSIONS,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=allowed, allowed_origins=origins
        ),
    )
    manager = server.session_manager
    endpoint = McpEndpoint(gate, metrics, manager, Sessions() if sessions else None)
    app.add_route(PATH, endpoint, include_in_schema=False)  # type: ignore[arg-type]
    return manager.run()

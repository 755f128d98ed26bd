"""The HTTP API's application: ``create_app`` puts the routes, the error answers, the
authentication and the edge middleware around one open ``Memex``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from memex.core.identity import parse_networks
from memex.errors import ValidationError
from memex.interfaces.http import admin, audit, bulk, errors, health, memories, privacy, search
from memex.interfaces.http.callers import Authenticator, Gate
from memex.interfaces.http.edge import Edge
from memex.interfaces.http.metrics import Metrics
from memex.service import Memex

if TYPE_CHECKING:
    from memex.security.limits import LimitPolicy
    from memex.security.quotas import LimitEvents

MAX_BODY = 16 * 1024 * 1024
"""The largest request body taken by default, in bytes."""

_DESCRIPTION = (
    "Persistent memory for AI agents, shared over HTTP. Every `/v1` request carries "
    "`Authorization: Bearer <key>`; the key decides the tenant. Errors are "
    '`{"error": {"code": ..., "message": ...}}`: see docs/http.md.'
)


def create_app(
    root: Memex,
    *,
    auth: bool = True,
    trusted_proxies: Sequence[str] = (),
    max_body: int = MAX_BODY,
    on_close: Callable[[], None] | None = None,
    limits: LimitPolicy | None = None,
    limit_events: LimitEvents | None = None,
    mcp_hosts: Sequence[str] | None = None,
    mcp_sessions: bool = True,
) -> FastAPI:
    """The HTTP API over ``root`` (the server's handle on its store, whose tenant is the
    home tenant).

    ``auth=False`` lets every request act as the home tenant's owner: for local use and
    benchmarks only. ``trusted_proxies`` (CIDR networks) are the proxies whose
    ``X-Forwarded-For`` is believed; ``max_body`` is the largest body taken, in bytes.
    The caller keeps ``root`` and closes it after the app has stopped, or passes
    ``on_close``, which the app's shutdown calls last. ``limits`` are the rate limits
    and quotas put on authenticated requests (none if not given, or without ``auth``);
    ``limit_events`` records their warnings and refusals (default: the log).
    ``on_close``, which the app's shutdown calls last. ``mcp_hosts`` (the Host
    header values it accepts besides loopback) serves MCP at ``/mcp``; None: no MCP.
    ``mcp_sessions=False`` serves it without sessions, for an app that is one of several
    processes sharing a port (a session lives in one process's memory).
    """
    from memex import __version__

    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValidationError(f"max_body must be a positive number of bytes, not {max_body!r}")
    proxies = parse_networks(trusted_proxies)
    authenticator: Authenticator | None = root.admin.authenticator(proxies) if auth else None
    metrics = Metrics()
    checks = root.server_limits(limits, limit_events) if auth and limits is not None else None
    mcp: list[AbstractAsyncContextManager[None]] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with AsyncExitStack() as running:
                for part in mcp:
                    await running.enter_async_context(part)
                yield
        finally:
            try:
                if authenticator is not None:  # when keys were last used, not yet written
                    await run_in_threadpool(authenticator.flush)
                if checks is not None:
                    checks.close()
            finally:
                if on_close is not None:
                    await run_in_threadpool(on_close)

    app = FastAPI(
        title="memex",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.gate = Gate(root, authenticator, checks)
    app.state.metrics = metrics
    parts = (memories, search, bulk, admin, audit, privacy, health)
    for part in parts:
        app.include_router(part.router)
    errors.install(app, [route for part in parts for route in part.router.routes])
    if mcp_hosts is not None:
        from memex.interfaces.http import mcp as mcp_route

        mcp.append(mcp_route.mount(app, app.state.gate, metrics, mcp_hosts, sessions=mcp_sessions))
    app.add_middleware(Edge, max_body=max_body, metrics=metrics, limits=checks)
    return app

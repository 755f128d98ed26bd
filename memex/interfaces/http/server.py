"""Running the app under uvicorn: on a socket bound beforehand, saying where it listens
once it does, and leaving the process to end normally after SIGTERM or SIGINT."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from memex.errors import ConfigError

if TYPE_CHECKING:
    from memex.security.limits import LimitPolicy

_BACKLOG = 2048


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host`` and ``port`` (0: a free port chosen now, so the
    URL can be told before the server starts). IPv6 for an address with a colon, else
    IPv4 (``localhost`` is 127.0.0.1), as uvicorn binds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(_BACKLOG)
    except (OSError, UnicodeError) as exc:
        sock.close()
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    return sock


class Server(uvicorn.Server):
    """uvicorn's server, which calls ``announce`` once it takes requests."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start, then announce."""
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._announce()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Stop gracefully on SIGINT and SIGTERM.

        uvicorn raises a caught signal again once it has shut down, which would end the
        process before its caller closes the store; here the handlers are only put back.
        """
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _config(
    app: Any, log_level: str, tls_cert: str | None, tls_key: str | None, **more: Any
) -> uvicorn.Config:
    """uvicorn's settings for memex: quiet about requests, blind to proxy headers."""
    return uvicorn.Config(
        app,
        log_level=log_level,
        log_config=_log_config(log_level),
        # The access log shows paths and query strings, which may carry what memories
        # hold: it is written at the debug level only.
        access_log=log_level == "debug",
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        server_header=False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default, before memex
        # sees the request: the client's address is memex's own decision (its trusted
        # proxies, none unless given), made from the connection's real peer.
        proxy_headers=False,
        # Agents think between calls: an idle connection is kept a while, so their next
        # call does not pay for a new one.
        timeout_keep_alive=75,
        lifespan="on",
        **more,
    )


def run(
    app: Any,
    sock: socket.socket,
    announce: Callable[[], None],
    *,
    log_level: str = "info",
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT; the app's shutdown runs first."""
    config = _config(app, log_level, tls_cert, tls_key)
    Server(config, announce).run(sockets=[sock])


_WORKER_OPTIONS = "MEMEX_SERVE_WORKER"
"""The environment variable that hands a worker process its options."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What each worker process of ``memex serve --workers N`` opens and serves."""

    store: str | None
    tenant: str | None
    read_only: bool
    auth: bool
    trusted_proxies: tuple[str, ...]
    max_body: int
    mcp_hosts: tuple[str, ...] | None = None
    limits: dict[str, Any] | None = None
    """The ``LimitPolicy``'s fields (``policy_fields``), or None for no limits."""


def policy_fields(policy: LimitPolicy) -> dict[str, Any]:
    """A limit policy as JSON-ready fields, for a worker process to read back."""
    rates = {name: None if rate is None else [rate.per_second, rate.burst]
             for name, rate in (("key", policy.key), ("tenant", policy.tenant))}  # fmt: skip
    return {**rates, "quotas": policy.quotas, "redis": policy.redis,
            "redis_prefix": policy.redis_prefix}  # fmt: skip


def _policy(fields: dict[str, Any] | None) -> LimitPolicy | None:
    from memex.core.limits import Rate
    from memex.security.limits import LimitPolicy

    if fields is None:
        return None
    rates = {name: None if fields[name] is None else Rate(float(fields[name][0]), fields[name][1])
             for name in ("key", "tenant")}  # fmt: skip
    return LimitPolicy(
        rates["key"], rates["tenant"], fields["quotas"], fields["redis"], fields["redis_prefix"]
    )


def worker_app() -> Any:
    """The app of one worker process: its own handle on the store, closed when it stops."""
    from memex.interfaces.http.app import create_app
    from memex.service import Memex

    options = WorkerOptions(**json.loads(os.environ[_WORKER_OPTIONS]))
    extra: dict[str, Any] = {"read_only": True} if options.read_only else {}
    root = Memex.open(options.store, tenant=options.tenant, **extra)
    return create_app(
        root,
        auth=options.auth,
        trusted_proxies=options.trusted_proxies,
        max_body=options.max_body,
        on_close=root.close,
        limits=_policy(options.limits),
        mcp_hosts=options.mcp_hosts,
        mcp_sessions=False,  # the next request of a session may reach another worker
    )


def run_workers(
    options: WorkerOptions,
    sock: socket.socket,
    workers: int,
    announce: Callable[[], None],
    *,
    log_level: str = "info",
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Serve with ``workers`` processes on ``sock`` until SIGTERM or SIGINT; each worker
    stops gracefully, writing when keys were last used and closing its store."""
    from uvicorn.supervisors import Multiprocess

    os.environ[_WORKER_OPTIONS] = json.dumps(dataclasses.asdict(options))
    config = _config(
        f"{__name__}:worker_app", log_level, tls_cert, tls_key, factory=True, workers=workers
    )
    announce()
    Multiprocess(config, sockets=[sock]).run()


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with memex's own loggers on the same stream."""
    loggers = dict(LOGGING_CONFIG["loggers"])
    loggers["memex"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return {**LOGGING_CONFIG, "loggers": loggers}

"""``memex serve``: the HTTP API (``memex.interfaces.http``) on one store, under uvicorn.

Needs the ``server`` extra. The first start on a store with no owner prints the home
tenant's owner key, once. The command refuses what would expose a store by mistake
(``--no-auth`` on an address other machines can reach) and warns of what may (no TLS
there), prints the URL it listens on once it does, and on SIGTERM or Ctrl-C stops taking
requests, finishes those under way, writes when keys were last used and closes the store.
Requests with a key are held to rate limits and their tenant's quotas (``--no-limits``,
``--no-quotas``), shared through Redis with ``--redis``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memex.core.identity import parse_address, parse_networks
from memex.errors import ConfigError, StoreReadOnlyError, ValidationError
from memex.interfaces.cli.invocation import Cli

if TYPE_CHECKING:
    from memex.security.limits import LimitPolicy
    from memex.service import Memex


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    address = parse_address(host)
    return address is not None and address.is_loopback


def url_of(host: str, port: int, tls: bool) -> str:
    """The URL clients reach a server on ``host`` and ``port`` by."""
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def _check_tls(cert: str | None, key: str | None) -> bool:
    """Whether TLS is on; a certificate without its key, or a pair that does not load,
    is refused before anything starts."""
    if (cert is None) != (key is None):
        raise ValidationError("--tls-cert and --tls-key go together: give both or neither")
    if cert is None or key is None:
        return False
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ValidationError(f"cannot use TLS certificate {cert} with key {key}: {why}") from None
    return True


def _server_extra() -> None:
    """Refuse, in one line, to start without the ``server`` extra."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"memex serve needs the server extra ({exc.name} is missing): "
            "pip install 'memex[server]'"
        ) from None


def _mcp_hosts(cli: Cli, host: str, port: int) -> tuple[str, ...] | None:
    """The Host values ``/mcp`` accepts besides loopback: the address served and each
    ``--mcp-allowed-host``; None (no ``/mcp``, with a warning) without the mcp extra."""
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        cli.err.write(
            "warning: /mcp is not served: the mcp extra is not installed "
            "(pip install 'memex[mcp]')\n"
        )
        return None
    served = [] if host in ("0.0.0.0", "::", "") else [url_of(host, port, False).split("//")[1]]
    return (*served, *(cli.args.mcp_allowed_hosts or ()))


def _announce_owner(cli: Cli, mx: Memex) -> None:
    """Make the home tenant's owner key if it has none, and show it this once."""
    try:
        issued = mx.admin.ensure_owner()
    except StoreReadOnlyError:
        cli.err.write(
            "warning: the store is read-only and its home tenant has no owner key: "
            "make keys with memex admin on a writable store\n"
        )
        return
    if issued is None:
        return
    tenant = issued.key.tenant
    if cli.as_json:
        cli.emit({"owner_key": {"id": issued.key.id, "tenant": tenant, "key": issued.secret}})
    else:
        cli.out.write(f"owner key for tenant {tenant}: {issued.secret}\n")
        cli.say("keep it: it is stored only as a hash and will not be shown again")
    cli.out.flush()


def limit_policy(cli: Cli) -> LimitPolicy | None:
    """The limits the options ask for (None without authentication: the one caller
    is the home tenant's owner, whom no limit applies to)."""
    from memex.core.limits import Rate, parse_rate
    from memex.security.limits import LimitPolicy

    a = cli.args
    if a.no_auth:
        return None
    if a.no_limits:
        key = tenant = None
    else:
        key = Rate(parse_rate(a.key_rate, "--key-rate"), _burst(a.key_burst, "--key-burst"))
        tenant = Rate(
            parse_rate(a.tenant_rate, "--tenant-rate"), _burst(a.tenant_burst, "--tenant-burst")
        )
    if a.no_limits and a.no_quotas:
        return None
    return LimitPolicy(key, tenant, not a.no_quotas, a.redis, a.redis_prefix)


def _burst(value: int, what: str) -> int:
    if value < 1:
        raise ValidationError(f"{what} must be a positive whole number, not {value}")
    return value


def _check_redis(policy: LimitPolicy | None) -> None:
    """Refuse, in one line, a Redis that does not answer (before anything starts)."""
    if policy is not None and policy.redis is not None:
        from memex.security.redis_limits import RedisLimiter

        RedisLimiter.connect(policy.redis, policy.redis_prefix).close()


def serve(cli: Cli) -> None:
    """Serve the store over HTTP until SIGTERM or Ctrl-C."""
    a = cli.args
    host: str = a.host
    if not 0 <= a.port <= 65535:
        raise ValidationError(f"--port must be from 0 to 65535, not {a.port}")
    if not 1 <= a.workers <= 64:
        raise ValidationError(f"--workers must be from 1 to 64, not {a.workers}")
    if a.max_body < 1:
        raise ValidationError(f"--max-body must be a positive number of bytes, not {a.max_body}")
    loopback = is_loopback(host)
    if a.no_auth and not loopback:
        raise ValidationError(
            f"--no-auth would let anyone who reaches {host} act as the owner: "
            "it is allowed on a loopback address (127.0.0.1, ::1, localhost) only"
        )
    proxies = parse_networks(a.trusted_proxies or ())
    tls = _check_tls(a.tls_cert, a.tls_key)
    policy = limit_policy(cli)
    _server_extra()
    _check_redis(policy)
    from memex.interfaces.http.app import create_app
    from memex.interfaces.http.server import (
        WorkerOptions,
        listen,
        policy_fields,
        run,
        run_workers,
    )

    with cli.store() as mx:
        if not a.no_auth:
            _announce_owner(cli, mx)
        sock = listen(host, a.port)
        url = url_of(host, sock.getsockname()[1], tls)
        mcp_hosts = _mcp_hosts(cli, host, sock.getsockname()[1])
        if not loopback and not tls:
            cli.err.write(
                f"warning: serving on {host} without TLS: keys and memories cross the network "
                "in clear text (give --tls-cert and --tls-key, or put a TLS proxy in front)\n"
            )

        def announce() -> None:
            if cli.as_json:
                cli.emit({"listening": url})
            else:
                cli.say(f"listening on {url}")
            cli.out.flush()

        logs = {"log_level": a.log_level, "tls_cert": a.tls_cert, "tls_key": a.tls_key}
        if a.workers == 1:
            app = create_app(
                mx,
                auth=not a.no_auth,
                trusted_proxies=proxies,
                max_body=a.max_body,
                limits=policy,
                mcp_hosts=mcp_hosts,
            )
            with sock:
                run(app, sock, announce, **logs)
            return
    # Each worker process opens the store itself; this one holds no store, only hands
    # out the socket and starts a worker again if one dies.
    options = WorkerOptions(
        store=cli.location,
        tenant=a.tenant,
        read_only=bool(a.read_only),
        auth=not a.no_auth,
        trusted_proxies=proxies,
        max_body=a.max_body,
        limits=None if policy is None else policy_fields(policy),
        mcp_hosts=mcp_hosts,
    )
    with sock:
        run_workers(options, sock, a.workers, announce, **logs)

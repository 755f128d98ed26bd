"""memex's warnings during a call, sent to the client that made it as MCP log messages.

A client picks a level with ``logging/setLevel`` (on handshake-era connections; on
2026-07-28+ ones, each request opts in through its ``_meta``). While a tool, prompt or
resource runs for it, what memex's loggers (``memex.*``: the ``memex.log`` warnings and
the servers' own) record at that level or above, in that call's path (its task and the
worker thread that runs it), is collected and then sent to the client as
``notifications/message``; nothing is collected for a client that has not opted in.
Records of other calls and of background threads are not the client's to see.

The MCP logging capability is deprecated as of 2026-07-28 (SEP-2577); the SDK warns
(``MCPDeprecationWarning``) whenever a log message is sent, so memex silences exactly
that warning around its one call that sends them.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, cast, get_args

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import LOG_LEVEL_META_KEY, EmptyResult, LoggingLevel, SetLevelRequestParams

LEVELS: Final[tuple[LoggingLevel, ...]] = get_args(LoggingLevel)
"""MCP's log levels (RFC 5424's), least severe first."""

STATE_KEY = "memex.log_level"
"""Where a connection keeps the level its client set."""

MOST = 20
"""Messages sent for one call at most; a flood of warnings is cut short."""

PUBLIC_LOGGERS = ("memex.limits",)
"""Loggers whose messages a shared server sends as they are: they name the caller's own
tenant and quotas, never the server's files."""

PRIVATE_TEXT = "the server logged a warning during this call; its log has the details"


def mcp_level(levelno: int) -> LoggingLevel:
    """The MCP level of a ``logging`` level number."""
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def at_least(level: LoggingLevel, threshold: LoggingLevel) -> bool:
    """Whether a message at ``level`` passes a client's ``threshold``."""
    return LEVELS.index(level) >= LEVELS.index(threshold)


def as_level(value: object) -> LoggingLevel | None:
    """``value`` if it names an MCP log level, else None."""
    return value if value in LEVELS else None


def text_of(record: logging.LogRecord, private: bool) -> str:
    """What a client is told of ``record``: its message on one line, or (``private``, a
    shared server) a fixed line unless its logger's messages are the caller's to see."""
    if private and not record.name.startswith(PUBLIC_LOGGERS):
        return PRIVATE_TEXT
    return " ".join(record.getMessage().split())[:1000]


@dataclass(slots=True)
class _Call:
    threshold: LoggingLevel
    private: bool
    messages: list[tuple[LoggingLevel, str, str]] = field(default_factory=list)


_call: ContextVar[_Call | None] = ContextVar("memex_mcp_call", default=None)


class _Collector(logging.Handler):
    """Puts each record of the ``memex`` loggers aside for the call in whose path it is
    made, if that call's client asked for its level."""

    def emit(self, record: logging.LogRecord) -> None:
        call = _call.get()
        if call is None or len(call.messages) >= MOST:
            return
        level = mcp_level(record.levelno)
        if at_least(level, call.threshold):
            call.messages.append((level, record.name, text_of(record, call.private)))


_COLLECTOR = _Collector()


def _install() -> None:
    """Attach the collector to the ``memex`` loggers, unless it is: checked at each call
    that collects, since a server's logging configuration (uvicorn's, applied when it
    starts) replaces the loggers' handlers."""
    logger = logging.getLogger("memex")
    if _COLLECTOR not in logger.handlers:
        logger.addHandler(_COLLECTOR)


def _state(session: object) -> dict[str, Any] | None:
    """The connection's own state, kept across its requests. The SDK (2.3) gives handlers
    no public way to their connection yet, only the per-request session that holds it."""
    connection = getattr(session, "_connection", None)
    state = getattr(connection, "state", None)
    return state if isinstance(state, dict) else None


async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    """``logging/setLevel``: the level at or above which this connection's calls are sent
    memex's log messages."""
    state = _state(ctx.session)
    if state is not None:  # on a stateless request the level outlives nothing
        state[STATE_KEY] = params.level
    return EmptyResult()


def threshold_of(context: Context[Any, Any] | None) -> LoggingLevel | None:
    """The level a call's client asked for (its connection's, else its request's
    ``_meta`` opt-in), or None if it asked for none."""
    if context is None:
        return None
    try:
        request = context.request_context
    except ValueError:  # no request: called in process, outside a session
        return None
    state = _state(request.session) or {}
    meta: Mapping[str, Any] = cast("Mapping[str, Any]", request.meta or {})
    return as_level(state.get(STATE_KEY)) or as_level(meta.get(LOG_LEVEL_META_KEY))


@asynccontextmanager
async def forwarded(context: Context[Any, Any] | None, private: bool) -> AsyncIterator[None]:
    """Run a call whose memex log records at its client's level are then sent to it."""
    threshold = threshold_of(context)
    if threshold is None or context is None:
        yield
        return
    _install()
    call = _Call(threshold, private)
    token = _call.set(call)
    try:
        yield
    finally:
        _call.reset(token)
        await _send(context, call.messages)


async def _send(context: Context[Any, Any], messages: list[tuple[LoggingLevel, str, str]]) -> None:
    session = context.request_context.session
    for level, logger, text in messages:
        # Sent on the connection's own channel (no related request): a JSON answer to a
        # POST carries only the response, so a stateful HTTP client reads them on its
        # GET stream; stdio and in-process have one channel anyway.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # SEP-2577: see above
            sending = session.send_log_message(level, text, logger)
        try:
            await sending
        except Exception:  # best effort: a closed stream loses the message, not the call
            logging.getLogger("memex.mcp").debug("a log message was not delivered")

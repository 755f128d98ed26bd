"""The edge of the server: what every request passes before and after the routes.

A pure ASGI middleware (no buffering of bodies or answers) that refuses a body over
the size limit while it is read, chunked bodies too; refuses a body of a content type
the route does not take; answers anything unexpected with a 500 that holds nothing of
the request; adds the limits' header fields (``RateLimit-*``, ``Memex-Quota-Warning``)
to every answer; and times every answer for the metrics.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memex.core.limits import rate_fields
from memex.interfaces.http.callers import OUTGOING, Outgoing
from memex.interfaces.http.errors import Refusal, error_response, internal_error, route_of
from memex.interfaces.http.metrics import Metrics

if TYPE_CHECKING:
    from memex.security.limits import Limits

log = logging.getLogger("memex.http")

JSON_TYPES = frozenset({"application/json"})
LINES_TYPES = frozenset({"application/x-ndjson", "application/jsonl"})
LINES_ROUTES = frozenset({"/v1/import"})
"""The routes whose body is JSON Lines; every other body is JSON."""


class BodyTooLarge(Refusal):
    """A body that grew past the limit while it was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large", too_large(limit))


def too_large(limit: int) -> str:
    """The message of a body over ``limit`` bytes."""
    return f"the body is over the server's limit of {limit} bytes"


def media_type(value: str) -> str:
    """A Content-Type's type and subtype, lowercase, without parameters."""
    return value.split(";", 1)[0].strip().lower()


def _accepts(path: str, kind: str) -> bool:
    if path in LINES_ROUTES:
        return kind in LINES_TYPES
    return kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))


class Edge:
    """Body limits, content types, unexpected errors and timing, for every request."""

    def __init__(
        self, app: ASGIApp, *, max_body: int, metrics: Metrics, limits: Limits | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500
        started = False
        outgoing = Outgoing()
        scope[OUTGOING] = outgoing

        async def send_timed(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                if outgoing.tenant is not None:
                    message = self._with_limits(message, outgoing)
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_timed)
            else:
                await self.app(scope, self._limited(receive), send_timed)
        except BodyTooLarge as exc:
            if not started:
                response = error_response(413, "payload_too_large", str(exc.detail))
                await response(scope, receive, send_timed)
        except Exception as exc:
            if started:  # a streamed answer broke off: the client sees it cut short
                log.error(
                    "answer cut short: %s in %s %s",
                    type(exc).__name__,
                    scope.get("method"),
                    route_of(scope),
                )
            else:
                await internal_error(scope, exc)(scope, receive, send_timed)
        finally:
            self.metrics.observe(
                scope.get("method", ""), route_of(scope), status, time.perf_counter() - began
            )

    def _with_limits(self, message: Message, outgoing: Outgoing) -> Message:
        """The answer's start with the limits' header fields added."""
        taken = outgoing.taken
        added = [] if taken is None else rate_fields(taken)
        warning = None if self.limits is None else self.limits.warning(str(outgoing.tenant))
        if warning is not None:
            added.append((b"memex-quota-warning", warning.encode("latin-1")))
        if not added:
            return message
        headers = message.get("headers", ())
        if message["status"] >= 400:  # an error's answer may carry Retry-After already
            present = {name for name, _ in headers}
            added = [(name, value) for name, value in added if name not in present]
        return {**message, "headers": [*headers, *added]}

    def _refusal(self, scope: Scope) -> ASGIApp | None:
        """The answer for a request refused by its headers alone, else None."""
        length: int | None = None
        kind = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return error_response(400, "bad_request", "Content-Length is not a number")
            elif name == b"content-type":
                kind = media_type(value.decode("latin-1"))
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and length > self.max_body:
            return error_response(413, "payload_too_large", too_large(self.max_body))
        has_body = bool(length) or (length is None and chunked)
        if has_body and not (kind and _accepts(scope["path"], kind)):
            wanted = "application/x-ndjson" if scope["path"] in LINES_ROUTES else "application/json"
            given = f"not {kind}" if kind else "none was given"
            return error_response(
                415, "unsupported_media_type", f"the body must be {wanted} ({given})"
            )
        return None

    def _limited(self, receive: Receive) -> Receive:
        """``receive``, refusing the body once it grows past the limit."""
        limit = self.max_body
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited

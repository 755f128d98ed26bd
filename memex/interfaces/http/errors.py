"""Every error the HTTP API answers, made in one place: ``{"error": {"code", "message"}}``.

memex's own errors take the status and code of ``core.wire`` (the table the client reads
back); requests refused before they reach memex (a body that is not JSON, too large or
of another type, an unknown route or method) get the codes of ``core.wire.REQUEST_ERRORS``.
An error of the server's own (its store, its configuration, a bug) is answered with a
fixed message and logged by type and route only: its text may hold paths or stored
content.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from memex.core.audit import DENIED, STORE_CHAIN, Actor, AuditEvent
from memex.core.wire import status_and_code
from memex.errors import (
    AuthenticationError,
    AuthError,
    MemexError,
    QuotaExceededError,
    RateLimitError,
    ScopeError,
    StoreLockedError,
)
from memex.interfaces.http.responses import ErrorOut

log = logging.getLogger("memex.http")

RETRY_AFTER_LOCKED = 1
"""Seconds a client is asked to wait when the store was busy past its timeout."""

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

_FIXED = {
    "internal_error": "internal error; the server's log names its type",
    "store_unavailable": "the store cannot be reached or read",
    "store_locked": "the store was busy past its timeout; try again",
    "store_full": "no space is left for the store",
    "store_read_only": "the store is read-only; nothing was written",
}
"""Messages for the server's own conditions: their errors' text may name its files."""

_DESCRIPTIONS = {
    400: "malformed_json: the body is not JSON (or not UTF-8); bad_request",
    401: "unauthenticated: no key, or a malformed, unknown, revoked or expired one",
    403: "permission_denied (the key's role, project or address), or scope_error",
    404: "not_found: no such memory, key, user or route in this tenant",
    409: "conflict (changed meanwhile, or a name that exists), store_read_only, or "
    "quota_exceeded (a stored quota: memories, storage_mb, projects, users)",
    413: "payload_too_large: the body is over the server's limit",
    415: "unsupported_media_type: a body of another content type",
    422: "validation_error (a value memex refuses), or import_format_error",
    429: "rate_limited: too many requests, or quota_exceeded (calls_per_hour); see Retry-After",
    500: "internal_error",
    503: "store_locked (see Retry-After) or store_unavailable",
    507: "store_full: no space left for the store",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text} for status, text in _DESCRIPTIONS.items()
}
"""The error answers every route may give, for the OpenAPI document."""


class Refusal(HTTPException):
    """A request refused before it reaches memex: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, message)
        self.code = code


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **more: str,
) -> JSONResponse:
    """The response for an error: its body (``more`` adds fields to it), and the headers
    its status calls for."""
    out = dict(headers or {})
    if status == 401:
        out["WWW-Authenticate"] = "Bearer"
    error = {"code": code, "message": _one_line(message), **more}
    return JSONResponse({"error": error}, status_code=status, headers=out)


def _one_line(message: str) -> str:
    line = " ".join(message.split())
    return line[:500] if line else "failed"


def route_of(scope: Scope) -> str:
    """The route template a request matched (never the path itself, which holds ids)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


def internal_error(scope: Scope, exc: BaseException) -> JSONResponse:
    """A 500 for an unexpected exception, logged by its type and route only."""
    log.error(
        "internal error: %s in %s %s", type(exc).__name__, scope.get("method"), route_of(scope)
    )
    return error_response(500, "internal_error", _FIXED["internal_error"])


DENIALS = (AuthError, ScopeError, RateLimitError, QuotaExceededError)
"""The refusals the audit trail records: who sent a request, what it may do, how often,
how much its tenant may hold.
A memory or key out of the caller's reach is not found, as a missing one is, and is not
recorded otherwise."""


def refusal_event(request: Request, exc: MemexError) -> AuditEvent:
    """The audit entry of a refused request: in the caller's tenant's chain once its key
    is verified, else in the store-wide one, naming the key by its public id only."""
    found = getattr(request.state, "caller", None)
    if found is not None:
        actor = found.actor()
        known = found.known
        action = found.action.value if found.action is not None else "request"
    else:
        peer = request.client.host if request.client is not None else None
        actor, known, action = Actor("", client=peer), None, "request"
    tenant = known.tenant if known is not None else None
    detail = status_and_code(exc)[1]
    if isinstance(exc, AuthError):
        detail += f":{exc.reason}"
        tenant = tenant or exc.tenant
        if not actor.key_id and exc.key_id:
            actor = Actor(exc.key_id, actor.user, actor.client, actor.user_agent)
    if isinstance(exc, QuotaExceededError):
        detail += f":{exc.quota}"
    if isinstance(exc, AuthenticationError):
        action = "authenticate"
    resource = f"{request.method} {route_of(request.scope)}"
    return AuditEvent(
        tenant or STORE_CHAIN, action, "route", actor, resource, outcome=DENIED, detail=detail
    )


def _record_refusal(request: Request, exc: MemexError) -> None:
    """Append a refusal to the audit trail; a store that cannot take it (busy,
    read-only) does not change the answer, and says so in the log."""
    try:
        request.app.state.gate.root.record_audit(refusal_event(request, exc))
    except MemexError as failure:
        log.warning("refusal not audited: %s", type(failure).__name__)


async def memex_error(request: Request, exc: Exception) -> JSONResponse:
    """The answer to one of memex's errors: its status and code as ``core.wire`` says;
    a refusal is recorded in the audit trail first."""
    assert isinstance(exc, MemexError)
    if isinstance(exc, DENIALS):
        await run_in_threadpool(_record_refusal, request, exc)
    status, code = status_and_code(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthError):
        request.app.state.metrics.denied(exc.reason)
    if isinstance(exc, StoreLockedError):
        headers["Retry-After"] = str(RETRY_AFTER_LOCKED)
    elif isinstance(exc, RateLimitError) or (
        isinstance(exc, QuotaExceededError) and exc.retry_after is not None
    ):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after or 1)))
    if code in _FIXED or status >= 500:
        log.warning("%s in %s %s", type(exc).__name__, request.method, route_of(request.scope))
        return error_response(status, code, _FIXED.get(code, _FIXED["internal_error"]), headers)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, QuotaExceededError):
        return error_response(status, code, message, headers, quota=exc.quota)
    return error_response(status, code, message, headers)


def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """A request pydantic refused: 400 for a body that is not JSON, else 422, one line."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if not errors:
        return error_response(422, "validation_error", "the request is not valid")
    first = errors[0]
    if first.get("type") == "json_invalid":
        why = (first.get("ctx") or {}).get("error", "")
        return error_response(400, "malformed_json", f"the body is not valid JSON: {why}")
    message = describe(first)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return error_response(422, "validation_error", message)


_PLACES = ("body", "query", "path", "header", "cookie")


def describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence: where, and what is wrong (never the value)."""
    loc = [str(part) for part in error.get("loc", ())]
    place = loc[0] if loc and loc[0] in _PLACES else ""
    where = ".".join(loc[1:] if place else loc)
    kind = error.get("type", "")
    if kind == "missing":
        if not where:
            return "a JSON body is required"
        return f"{where} is required" + (" in the query string" if place == "query" else "")
    if kind == "extra_forbidden":
        return f"unknown field {where}"
    if not where:
        return "the body must be a JSON object"
    text = str(error.get("msg", "is not valid"))
    return f"{where}: {text[0].lower()}{text[1:]}" if text else f"{where} is not valid"


def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (no such route, wrong method, an unreadable body), in
    the API's shape."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if isinstance(exc, Refusal):
        code = exc.code
    elif status == 404:
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    elif status == 400 and message == "There was an error parsing the body":
        code, message = "malformed_json", "the body is not JSON (or not UTF-8)"
    headers = {"Allow": _allowed(request)} if status == 405 else {}
    return error_response(status, code, message, headers)


def _allowed(request: Request) -> str:
    """Every method the request's path takes (Starlette names only its first route's).

    A path that a route names literally is that route's resource, though a template
    matches it too (``/v1/memories/batch`` is no memory id): its methods are the literal
    routes' only."""
    path = request.scope.get("path", "")
    matched = [
        (literal, taken)
        for pattern, literal, taken in request.app.state.methods
        if pattern.match(path)
    ]
    exact = any(literal for literal, _ in matched)
    methods = {method for literal, taken in matched if literal or not exact for method in taken}
    return ", ".join(sorted(methods))


def install(app: FastAPI, routes: Iterable[BaseRoute]) -> None:
    """Answer every error of ``app`` (whose ``routes`` these are) as this module says."""
    app.state.methods = [
        (route.path_regex, "{" not in route.path, frozenset(route.methods))
        for route in routes
        if isinstance(route, Route | APIRoute) and route.methods
    ]
    app.add_exception_handler(MemexError, memex_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)

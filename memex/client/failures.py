"""A server's error answers as the errors ``Memex`` raises, and unreachable servers as
one-line StoreErrors. No I/O.

The server writes ``{"error": {"code": ..., "message": ...}}``; ``core.wire`` maps the
code back to the class the server started from, so ``except NotFoundError`` works the
same on a local store and a remote one. Messages name the server's URL, never the key.
"""

from __future__ import annotations

import json
import re
from typing import Any

from memex.client.retry import retry_after
from memex.core.wire import error_class
from memex.errors import (
    AuthenticationError,
    CallQuotaExceededError,
    ImportFormatError,
    MemexError,
    QuotaExceededError,
    RateLimitError,
    StoreError,
)

_LINE = re.compile(r"line (\d+): (.*)", re.DOTALL)
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_body(content: bytes) -> tuple[str, str] | None:
    """The (code, message) of a memex error body, or None for any other body."""
    try:
        data = json.loads(content.decode("utf-8"))
        error = data["error"]
        code, message = error["code"], error["message"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    if not isinstance(code, str) or not isinstance(message, str):
        return None
    return code, message


def from_answer(
    status: int,
    content: bytes,
    headers: Any,
    location: str,
    *,
    keyless: bool = False,
) -> MemexError:
    """The error for a response that is not a success (``headers``: a mapping of the
    response's headers, as httpx's)."""
    found = error_body(content)
    if found is None:
        code = ""
        message = f"the memex server at {location} answered {status} {REASONS.get(status, '')}"
        message = message.rstrip()
    else:
        code, message = found
    cls = error_class(code, status)
    if cls is ImportFormatError:
        match = _LINE.fullmatch(message)
        if match is not None:
            return ImportFormatError(int(match.group(1)), match.group(2))
        return ImportFormatError(0, message)
    if cls is RateLimitError:
        return RateLimitError(message, retry_after(headers.get("retry-after")))
    if cls is QuotaExceededError or cls is CallQuotaExceededError:
        wait = retry_after(headers.get("retry-after"))
        return cls(message, quota_of(content), wait)
    if cls is AuthenticationError and keyless:
        message += " (no API key given: set MEMEX_API_KEY or pass api_key)"
    return cls(message)


def quota_of(content: bytes) -> str:
    """The quota a ``quota_exceeded`` answer names (``""`` if it names none)."""
    try:
        quota = json.loads(content.decode("utf-8"))["error"]["quota"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return ""
    return quota if isinstance(quota, str) else ""


def unreachable(location: str, why: str, reached: bool) -> StoreError:
    """A server that could not be reached, or whose answer did not come, in one line."""
    if reached:
        return StoreError(f"no answer from the memex server at {location}: {why}")
    return StoreError(f"cannot reach the memex server at {location}: {why}")


def malformed(location: str, method: str, path: str) -> StoreError:
    """An answer the client cannot read: not memex's, or not this version's."""
    return StoreError(
        f"the memex server at {location} sent an unreadable answer to {method} {path}"
    )

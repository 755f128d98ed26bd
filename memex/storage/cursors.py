"""Keyset cursors for listing memories page by page, the same on every backend.

A cursor names the position after the last memory of a page: its creation time (µs)
and its key, as opaque URL-safe text. A backend reads memories after that position.
"""

from __future__ import annotations

import base64
import json

from memex.core.validate import INT64_MAX, INT64_MIN, loads_json, shown
from memex.errors import ValidationError


def encode_cursor(created_at_micros: int, key: int) -> str:
    """An opaque keyset cursor for the position after a listed memory."""
    raw = json.dumps([created_at_micros, key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_MAX_CURSOR_CHARS = 256  # encode_cursor makes at most 60


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The keyset position inside a cursor; a malformed cursor is a ValidationError."""
    bad = ValidationError(f"malformed cursor {shown(cursor)}")
    if not isinstance(cursor, str) or not cursor.isascii() or len(cursor) > _MAX_CURSOR_CHARS:
        raise bad
    try:
        value = loads_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:  # not base64, not JSON, or JSON Python cannot hold
        raise bad from exc
    if not isinstance(value, list) or len(value) != 2:
        raise bad
    created, key = value
    for number in (created, key):  # both go to the database as 64-bit integers
        if type(number) is not int or not INT64_MIN <= number <= INT64_MAX:
            raise bad
    return created, key

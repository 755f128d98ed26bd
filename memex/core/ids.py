"""Time-sortable identifiers (UUIDv7, RFC 9562)."""

from __future__ import annotations

import os
import threading
import time

from memex.core.validate import check_text
from memex.errors import ValidationError

_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def new_id(now_ms: int | None = None) -> str:
    """Return a new UUIDv7 string; ids made in one process sort in creation order.

    Within one millisecond the 74 random bits are incremented rather than redrawn,
    so ids stay monotonic even when many are made at once.
    """
    global _last_ms, _last_rand
    clock = int(time.time() * 1000)
    ms = clock if now_ms is None else now_ms
    with _lock:
        ahead = ms > clock and ms > _last_ms
        if ahead:
            # A time ahead of the clock (a memory dated in the future) gets its own id
            # but does not move the sequence: later ids keep the clock's time.
            rand = int.from_bytes(os.urandom(10), "big") & ((1 << 74) - 1)
        elif ms <= _last_ms:
            ms = _last_ms
            rand = (_last_rand + 1) & ((1 << 74) - 1)
        else:
            rand = int.from_bytes(os.urandom(10), "big") & ((1 << 74) - 1)
        if not ahead:
            _last_ms, _last_rand = ms, rand
    rand_a = rand >> 62  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, without building the object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is a canonical UUID string."""
    try:
        import uuid

        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


def stored_id(memory_id: object) -> str:
    """A memory id as stored (lowercase); anything but a non-empty string is bad input."""
    if not isinstance(memory_id, str) or not memory_id.strip():
        raise ValidationError("a memory id is required")
    return check_text(memory_id, "memory id").strip().lower()

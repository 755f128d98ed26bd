"""An LRU cache of rendered context sections, with a TTL, a size limit and compression."""

from __future__ import annotations

import pickle
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

COMPRESS_OVER = 1024 * 1024


@dataclass(slots=True)
class _Slot:
    version: Hashable
    payload: Any
    size: int
    compressed: bool
    stored_at: float


class SectionCache:
    """Entries live in slots (one per section and scope) tagged with a version.

    A lookup with another version is a miss and frees the slot, so a write that moves
    one section's version invalidates exactly that section's entry.
    """

    def __init__(self, max_bytes: int = 32 * 1024 * 1024, ttl: float = 600.0) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._slots: OrderedDict[Hashable, _Slot] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, slot: Hashable, version: Hashable) -> Any | None:
        """The value stored for ``slot`` at ``version``, or None."""
        with self._lock:
            entry = self._slots.get(slot)
            if entry is None or entry.version != version or self._stale(entry):
                if entry is not None:
                    self._drop(slot)
                self.misses += 1
                return None
            self._slots.move_to_end(slot)
            self.hits += 1
            if not entry.compressed:
                return entry.payload
            payload = entry.payload
        return pickle.loads(zlib.decompress(payload))

    def put(
        self, slot: Hashable, version: Hashable, value: Any, size: int, *, held: int = 0
    ) -> None:
        """Store ``value`` (about ``size`` bytes, and ``held`` more in large texts it
        holds) for ``slot`` at ``version``.

        Small values are kept as they are (a hit costs nothing to decode); ones over
        1 MiB, not counting the held texts (which a hit would copy back), are pickled
        and compressed. The least recently used entries go past the size limit.
        """
        compressed = size > COMPRESS_OVER
        payload: Any = value
        if compressed:
            payload = zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)
            size = len(payload)
        else:
            size += held
        if size > self.max_bytes:
            return
        with self._lock:
            if slot in self._slots:
                self._drop(slot)
            self._slots[slot] = _Slot(version, payload, size, compressed, time.monotonic())
            self._bytes += size
            while self._bytes > self.max_bytes and self._slots:
                oldest = next(iter(self._slots))
                self._drop(oldest)
                self.evictions += 1

    def peek_version(self, slot: Hashable) -> Any | None:
        """The version a fresh entry in ``slot`` has (no hit or miss is counted)."""
        with self._lock:
            entry = self._slots.get(slot)
            return None if entry is None or self._stale(entry) else entry.version

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()
            self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._slots)

    def _stale(self, entry: _Slot) -> bool:
        return time.monotonic() - entry.stored_at > self.ttl

    def _drop(self, slot: Hashable) -> None:
        entry = self._slots.pop(slot)
        self._bytes -= entry.size

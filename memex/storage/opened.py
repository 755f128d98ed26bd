"""Memory fields an encrypted store opened lately, kept in memory so that a value read
again is not decrypted again (docs/security.md says what this means for erasure)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from memex.core.models import content_hash

if TYPE_CHECKING:
    from collections.abc import Sequence

OPENED_BUDGET = 16 * 1024 * 1024
"""Characters of opened values (with their sealed bytes) one generation of ``Opened``
holds before it gives way to a new one: a store keeps at most twice this."""
OPENED_SECONDS = 300.0
"""Seconds one generation of ``Opened`` serves before it gives way to a new one: an
opened value is kept at most twice this after it was last read."""
OPENED_LARGEST = 64 * 1024
"""Values larger than this (sealed bytes and text together) are opened every time."""

Field = tuple[str, str, int, str]
"""Which memory field: tenant, memory id, version and field name."""
_Entry = tuple[bytes, str, str | None]
"""The sealed bytes, their text, and (a content's) its SHA-256 or None. A tuple: the
cyclic garbage collector stops tracking it (a list would be walked by every collection)."""


class Opened:
    """Memory fields opened lately, so that a memory read again (a recall's candidates
    are read by every recall that meets them) is not decrypted again.

    An entry is found again only under the same tenant, memory, version and field, and
    only for the very sealed bytes it was opened from: a value changed or moved since is
    opened, and authenticated, again. A content's entry also keeps its SHA-256 once
    asked (``content_hash``). Two generations of a dictionary: a look-up tries the
    newer, then the older (moving what it finds to the newer); when the newer has held
    ``budget`` characters or served ``seconds``, it becomes the older and the older is
    let go (both, once the newer has served twice ``seconds``), at the next look-up.
    So what is kept is bounded in size and in age, and ``drop`` lets go of a tenant's
    entries at once (its memories were erased or purged, its key destroyed). The text
    is kept in this process's memory only, never written anywhere.
    """

    __slots__ = ("_born", "_budget", "_lock", "_new", "_old", "_seconds", "_size")

    def __init__(self, budget: int = OPENED_BUDGET, seconds: float = OPENED_SECONDS) -> None:
        self._budget = budget
        self._seconds = seconds
        self._lock = threading.Lock()
        self._new: dict[Field, _Entry] = {}
        self._old: dict[Field, _Entry] = {}
        self._size = 0
        self._born = time.monotonic()

    def _entry(self, key: Field, sealed: bytes) -> _Entry | None:
        if time.monotonic() - self._born > self._seconds:
            self._turn_over()
        hit = self._new.get(key)
        if hit is None:
            hit = self._old.get(key)
            if hit is None or hit[0] != sealed:
                return None
            self._keep(key, hit)
        elif hit[0] != sealed:
            return None
        return hit

    def get(self, key: Field, sealed: bytes) -> str | None:
        """The text ``sealed`` was opened to under ``key``, if it is kept."""
        hit = self._entry(key, sealed)
        return None if hit is None else hit[1]

    def hash_of(self, key: Field, sealed: bytes) -> str | None:
        """The SHA-256 (hex) of the text kept under ``key`` (a content's) for ``sealed``,
        if it is kept (reckoned on the first ask, then kept with it)."""
        hit = self._entry(key, sealed)
        if hit is None:
            return None
        found = hit[2]
        if found is None:
            found = content_hash(hit[1])
            with self._lock:  # kept only if still there (not dropped meanwhile)
                if self._new.get(key) is hit:
                    self._new[key] = (hit[0], hit[1], found)
        return found

    def found(
        self, tenant: str, field: str, items: Sequence[tuple[str, int, bytes]]
    ) -> list[str | None]:
        """For each (memory id, version, sealed bytes) of ``tenant``'s ``field``, the text
        kept for those very bytes, or None: ``get`` of each, in one pass."""
        if time.monotonic() - self._born > self._seconds:
            self._turn_over()
        new, old = self._new, self._old
        out: list[str | None] = []
        for memory_id, version, sealed in items:
            key = (tenant, memory_id, version, field)
            hit = new.get(key)
            if hit is None:
                hit = old.get(key)
                if hit is None or hit[0] != sealed:
                    out.append(None)
                    continue
                self._keep(key, hit)
            elif hit[0] != sealed:
                out.append(None)
                continue
            out.append(hit[1])
        return out

    def row(
        self, tenant: str, memory_id: str, version: int, content: bytes, metadata: bytes
    ) -> tuple[str, str, str] | None:
        """A row's content, metadata and content hash, if the newer generation keeps both
        fields for these very sealed values and the content's hash is reckoned: what
        ``get`` and ``hash_of`` find field by field (which find the rest), in one look."""
        if time.monotonic() - self._born > self._seconds:
            return None
        new = self._new
        text = new.get((tenant, memory_id, version, "content"))
        meta = new.get((tenant, memory_id, version, "metadata"))
        if text is None or meta is None or text[2] is None:
            return None
        if text[0] != content or meta[0] != metadata:
            return None
        return text[1], meta[1], text[2]

    def put(self, key: Field, sealed: bytes, text: str) -> None:
        """Keep the text ``sealed`` (bytes) opened to under ``key``."""
        self._keep(key, (sealed, text, None))

    def put_many(self, entries: Sequence[tuple[Field, bytes, str]]) -> None:
        """``put`` of each (key, sealed bytes, text), under one hold of the lock."""
        with self._lock:
            for key, sealed, text in entries:
                self._keep_locked(key, (sealed, text, None))

    def put_row(
        self,
        content_key: Field,
        content: bytes,
        text: str,
        digest: str,
        metadata_key: Field,
        metadata: bytes,
        meta: str,
    ) -> None:
        """Keep a row's opened content (with its SHA-256, ``digest``) and metadata, under
        one hold of the lock: what ``row`` finds next time."""
        with self._lock:
            self._keep_locked(content_key, (content, text, digest))
            self._keep_locked(metadata_key, (metadata, meta, None))

    def _keep(self, key: Field, entry: _Entry) -> None:
        with self._lock:
            self._keep_locked(key, entry)

    def _keep_locked(self, key: Field, entry: _Entry) -> None:
        """Keep ``entry`` under ``key`` (not if larger than ``OPENED_LARGEST``), the newer
        generation turned over first if it is full or old. Under the lock."""
        size = len(entry[0]) + len(entry[1])
        if size > OPENED_LARGEST:
            return
        if self._size + size > self._budget or time.monotonic() - self._born > self._seconds:
            self._turn_over_locked()
        self._new[key] = entry
        self._size += size

    def drop(self, tenant: str | None = None) -> None:
        """Let go of a tenant's entries (every entry, without ``tenant``)."""
        with self._lock:
            if tenant is None:
                self._new, self._old, self._size = {}, {}, 0
                return
            self._new = {k: v for k, v in self._new.items() if k[0] != tenant}
            self._old = {k: v for k, v in self._old.items() if k[0] != tenant}
            self._size = sum(len(e[0]) + len(e[1]) for e in self._new.values())

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def texts(self) -> list[str]:
        """Every text kept, in both generations (what an erase must have let go of)."""
        with self._lock:
            return [entry[1] for entry in (*self._new.values(), *self._old.values())]

    def _turn_over(self) -> None:
        with self._lock:
            if time.monotonic() - self._born > self._seconds:
                self._turn_over_locked()

    def _turn_over_locked(self) -> None:
        now = time.monotonic()
        # Both generations go once the newer is past its age too: nothing older is kept.
        self._old = {} if now - self._born > 2 * self._seconds else self._new
        self._new, self._size, self._born = {}, 0, now

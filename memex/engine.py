"""What every handle on one store shares: the store, its embedding, the access log,
settings, and the per-store state the layers above keep here."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar, cast, runtime_checkable

from memex.access import AccessLog
from memex.core.limits import QuotaReport
from memex.core.models import Memory, Scope
from memex.core.progress import Progress
from memex.core.query import Filters
from memex.embedders.base import Embedder
from memex.embedding import Embedding
from memex.errors import MemexError
from memex.settings import Settings
from memex.storage.base import Store, StoreInfo

T = TypeVar("T")


@runtime_checkable
class Clearable(Protocol):
    """A shared item holding a cache that a purge must empty."""

    def clear(self) -> None:
        """Forget everything cached."""
        ...


class WriteQuota(Protocol):
    """What the insert path asks before it writes anything: a server's quotas. A store
    opened outside a server has none."""

    def admit(self, tenant: str, memories: int, content_bytes: int) -> None:
        """Count a write that is about to happen, or refuse it (QuotaExceededError)."""
        ...

    def release(self, tenant: str, memories: int, content_bytes: int) -> None:
        """Uncount a write ``admit`` counted that then failed."""
        ...

    def admit_member(self, tenant: str, kind: str, existing: int) -> None:
        """Allow one more project or user (``kind``) beside ``existing``, or refuse."""
        ...

    def report(self, tenant: str, members: Callable[[], tuple[int, int]]) -> QuotaReport:
        """The tenant's quotas and use; ``members`` counts its projects and users."""
        ...

    def changed(self) -> None:
        """Forget the quotas read: they were just changed."""
        ...

    def clear(self) -> None:
        """Count every tenant's use again (after a purge)."""
        ...


class Engine:
    """What every handle on one store shares: store, embedding, access log, settings."""

    def __init__(
        self, store: Store, embedder: Embedder, settings: Settings, info: StoreInfo
    ) -> None:
        """``info`` is what the store said of itself as it opened (read once)."""
        self.store = store
        self.location = info.location
        self.read_only = info.read_only
        self.schema_version = info.schema_version
        self.settings = settings
        self.embedding = Embedding(store, embedder, settings)
        self.access = AccessLog(
            store, settings.access_flush_seconds, enabled=info.read_only is None
        )
        self._lock = threading.Lock()
        self._shared: dict[str, object] = {}
        self._size: tuple[int, float] | None = None
        self._by_id: dict[tuple[Scope, bool], Filters] = {}
        self.quota: WriteQuota | None = None
        """The quotas every write is checked against before it is made (a server's)."""

    def shared(self, name: str, factory: Callable[[], T]) -> T:
        """The per-store item ``name``, made by ``factory`` on first use.

        The layers above keep their per-store state here (the context package its token
        counter and section cache), so the engine does not import them. ``drop_caches``
        clears every item that has a ``clear()``.
        """
        with self._lock:
            if name not in self._shared:
                self._shared[name] = factory()
            return cast(T, self._shared[name])

    def find(self, scope: Scope, memory_id: str, *, include_deleted: bool = False) -> Memory | None:
        """A memory by id within ``scope``, in any valid time (superseded or not yet valid
        too); forgotten and expired ones only with ``include_deleted``."""
        by_id = self._by_id.get((scope, include_deleted))
        if by_id is None:  # one per scope: a get builds no Filters of its own
            by_id = Filters(scope=scope, include_deleted=include_deleted, include_superseded=True)
            if len(self._by_id) < 256:
                self._by_id[(scope, include_deleted)] = by_id
        return self.store.fetch(by_id, [memory_id]).get(memory_id)

    def reindex(self, target: Embedder, progress: Progress | None = None) -> int:
        """Re-embed every memory of every tenant with ``target``, switch to it, and build
        the indexes the new vectors need."""
        count = self.embedding.reindex(target, progress)
        self.catch_up_indexes(None, progress)
        return count

    def catch_up_indexes(self, tenant: str | None, progress: Progress | None) -> None:
        """After a write, build what the next search would otherwise spend long building.

        The write is committed by then, so a failure here is not the caller's: it leaves
        the work to the first search, as before (see ``Store.build_indexes``).
        """
        with contextlib.suppress(MemexError):
            self.store.build_indexes(tenant, progress, lagging_only=True)

    def drop_caches(self) -> None:
        """Forget cached query vectors and what every shared item caches (after a purge:
        they may hold what was purged)."""
        self.embedding.clear_cache()
        with self._lock:
            items = [*self._shared.values(), self.quota]
        for item in items:
            if isinstance(item, Clearable):
                item.clear()

    def size_estimate(self) -> int:
        """Roughly how many memories the store holds (cached for a minute)."""
        now = time.monotonic()
        if self._size is None or now - self._size[1] > 60:
            self._size = (self.store.info().memories, now)
        return self._size[0]

    def close(self) -> None:
        """Write what the access log can, then close the store."""
        try:
            self.access.close()
        finally:
            self.store.close()

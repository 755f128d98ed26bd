"""What every handle on one store shares: the store, the embedder, caches and settings."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memex import log
from memex.core.models import Scope, content_hash
from memex.core.progress import Progress, Tally
from memex.embedders.base import Embedder, Vectors, query_text_for
from memex.embedders.open import EMBEDDERS, make_embedder
from memex.errors import (
    ConfigError,
    EmbedderError,
    EmbedderMismatchError,
    MemexError,
    StoreError,
    StoreLockedError,
    StoreReadOnlyError,
)
from memex.settings import Settings
from memex.storage.base import Store, StoredVectors

if TYPE_CHECKING:
    import numpy as np

    from memex.context.assembler import ContextState


_Snapshot = tuple[str, str, tuple[str, ...]]
"""A session's latest context: its text, prefix hash and the ids of the memories it shows."""


class AccessLog:
    """The small writes reads leave behind: read statistics and session snapshots.

    A read never writes and never waits for another process's write lock. Both are kept
    in memory and written by a daemon thread every ``interval`` seconds; each attempt
    fails at once while another process holds the lock, and what it could not write is
    kept for the next round. ``close`` tries once more and drops what it cannot write:
    statistics are best-effort. A read-only store records nothing.
    """

    def __init__(self, store: Store, interval: float) -> None:
        self._store = store
        self._interval = max(interval, 0.05)
        self._enabled = store.read_only is None
        self._pending: dict[str, dict[str, tuple[int, datetime]]] = {}
        self._sessions: dict[tuple[str, str], _Snapshot] = {}
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one writer in this process, in the order asked
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, tenant: str, ids: Iterable[str], at: datetime) -> None:
        if not self._enabled:
            return
        with self._lock:
            bucket = self._pending.setdefault(tenant, {})
            for key in ids:
                count, _ = bucket.get(key, (0, at))
                bucket[key] = (count + 1, at)
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="memex-access-log", daemon=True)
            self._thread.start()

    def save_context(
        self, tenant: str, session: str, text: str, prefix_hash: str, ids: Sequence[str]
    ) -> str:
        """Save a session's latest context (and the ids of the memories it shows) now, or
        later if another process is writing.

        Returns ``saved``, ``pending`` (kept in memory for the next flush: the store is
        busy, or its device full) or ``read-only``.
        """
        if not self._enabled:
            return "read-only"
        with self._writing:
            with self._lock:
                self._sessions.pop((tenant, session), None)
            try:
                self._store.save_context(Scope(tenant=tenant), session, text, prefix_hash, ids)
                return "saved"
            except StoreReadOnlyError:
                return "read-only"
            except StoreError:  # busy, or a full disk: the context is still served
                with self._lock:
                    self._sessions[(tenant, session)] = (text, prefix_hash, tuple(ids))
                    self._start()
                return "pending"

    def pending_context(self, tenant: str, session: str) -> str | None:
        """A session's latest context while it waits to be written, else None."""
        with self._lock:
            snapshot = self._sessions.get((tenant, session))
        return None if snapshot is None else snapshot[0]

    def drop_showing(self, tenant: str, memory_id: str) -> None:
        """Drop the snapshots waiting to be written that show a memory (it was purged)."""
        with self._lock:
            for key, (_, _, ids) in list(self._sessions.items()):
                if key[0] == tenant and memory_id in ids:
                    del self._sessions[key]

    def _run(self) -> None:
        reported = ""
        while not self._stop.wait(self._interval):
            try:
                self.flush()
                reported = ""
            except MemexError as exc:  # kept: the next round or close() tries again
                if str(exc) != reported:
                    log.warning(__name__, "access statistics not written yet: %s", exc)
                    reported = str(exc)

    def flush(self) -> bool:
        """Write what is pending without waiting; False if some is kept for later."""
        with self._writing:
            with self._lock:
                pending, self._pending = self._pending, {}
                sessions, self._sessions = self._sessions, {}
            try:
                written = self._write_accesses(pending) and self._write_sessions(sessions)
            except BaseException:
                self._keep(pending, sessions)
                raise
            if not written:
                self._keep(pending, sessions)
            return written

    def _write_accesses(self, pending: dict[str, dict[str, tuple[int, datetime]]]) -> bool:
        """Write tenant by tenant, removing what was written; False when the store is busy."""
        while pending:
            tenant, accesses = next(iter(pending.items()))
            try:
                self._store.record_access(Scope(tenant=tenant), accesses)
            except StoreLockedError:
                return False
            del pending[tenant]
        return True

    def _write_sessions(self, sessions: dict[tuple[str, str], _Snapshot]) -> bool:
        while sessions:
            (tenant, session), (text, prefix_hash, ids) = next(iter(sessions.items()))
            try:
                self._store.save_context(Scope(tenant=tenant), session, text, prefix_hash, ids)
            except StoreLockedError:
                return False
            del sessions[(tenant, session)]
        return True

    def _keep(
        self,
        pending: dict[str, dict[str, tuple[int, datetime]]],
        sessions: dict[tuple[str, str], _Snapshot],
    ) -> None:
        """Put back what was not written, under what arrived meanwhile."""
        with self._lock:
            for tenant, accesses in pending.items():
                bucket = self._pending.setdefault(tenant, {})
                for memory_id, (count, at) in accesses.items():
                    old, newer = bucket.get(memory_id, (0, at))
                    bucket[memory_id] = (old + count, max(at, newer))
            pending.clear()
            for session, snapshot in sessions.items():
                self._sessions.setdefault(session, snapshot)  # a newer snapshot wins
            sessions.clear()

    def close(self) -> None:
        """Stop the thread and try one last write; what the store refuses now is dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(MemexError):
            self.flush()
        with self._lock:
            self._pending.clear()
            self._sessions.clear()


class Engine:
    """What every handle on one store shares: store, embedder, caches, settings."""

    def __init__(self, store: Store, embedder: Embedder, settings: Settings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.access = AccessLog(store, settings.access_flush_seconds)
        self.query_cache: OrderedDict[str, Vectors] = OrderedDict()
        self.lock = threading.Lock()
        self._context: ContextState | None = None
        self._size: tuple[int, float] | None = None

    def embed_query(self, text: str) -> Vectors:
        with self.lock:
            cached = self.query_cache.get(text)
            if cached is not None:
                self.query_cache.move_to_end(text)
                return cached
        vector: Vectors = self.embed([query_text_for(self.embedder, text)])[0]
        with self.lock:
            self.query_cache[text] = vector
            while len(self.query_cache) > self.settings.query_cache_size:
                self.query_cache.popitem(last=False)
        return vector

    def embed(self, texts: Sequence[str], embedder: Embedder | None = None) -> Vectors:
        model = embedder or self.embedder
        try:
            vectors = model.embed(texts)
        except EmbedderError:
            raise
        except Exception as exc:  # a model runtime's own error: keep the message, one line
            raise EmbedderError(f"embedder {model.name} failed: {exc}") from exc
        import numpy as np

        if vectors.shape[0] != len(texts) or not np.all(np.isfinite(vectors)):
            raise EmbedderError(f"embedder {model.name} returned unusable vectors")
        return vectors

    def reindex(self, target: Embedder, progress: Progress | None = None) -> int:
        """Re-embed every memory of every tenant with ``target`` and switch to it."""

        tally = Tally(progress, "embedding")

        def batches() -> Iterator[list[tuple[int, str, Vectors]]]:
            for rows in self.store.iter_contents(self.settings.embed_batch_size):
                vectors = self.embed([content for _, _, content in rows], target)
                tally.advance(len(rows))
                yield [
                    (key, content_hash(content), vectors[i])
                    for i, (key, _, content) in enumerate(rows)
                ]

        probe = self.embed(["dimension probe"], target)
        count = self.store.replace_vectors(
            StoredVectors(target.name, int(probe.shape[1])), batches()
        )
        with self.lock:
            self.embedder = target
            self.query_cache.clear()
        self.catch_up_indexes(None, progress)
        return count

    def catch_up_indexes(self, tenant: str | None, progress: Progress | None) -> None:
        """After a write, build what the next search would otherwise spend long building.

        The write is committed by then, so a failure here is not the caller's: it leaves
        the work to the first search, as before (see ``Store.build_indexes``).
        """
        with contextlib.suppress(MemexError):
            self.store.build_indexes(tenant, progress, lagging_only=True)

    def embed_contents(
        self, scope: Scope, contents: Sequence[str], progress: Progress | None = None
    ) -> Vectors:
        """Vectors for contents: reused from the store by content hash, the rest in batches."""
        hashes = [content_hash(c) for c in contents]
        cached = self.store.cached_vectors(scope, self.embedder.name, hashes)
        todo = [i for i, h in enumerate(hashes) if h not in cached]
        fresh: dict[int, np.ndarray] = {}
        size = self.settings.embed_batch_size
        tally = Tally(progress, "embedding", len(contents))
        tally.advance(len(contents) - len(todo))
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            vectors = self.embed([contents[i] for i in chunk])
            fresh.update(zip(chunk, vectors, strict=True))
            tally.advance(len(chunk))
        dims = self.dimensions(fresh, cached)
        import numpy as np

        out = np.zeros((len(contents), dims), dtype=np.float32)
        for i, h in enumerate(hashes):
            out[i] = fresh[i] if i in fresh else cached[h]
        return out

    def dimensions(self, *found: Mapping[Any, np.ndarray]) -> int:
        for vectors in found:
            for vector in vectors.values():
                return int(vector.shape[0])
        return self.current_model().dimensions

    def current_model(self) -> StoredVectors:
        """The model of the store's vectors (asking the embedder only for a new store)."""
        stored = self.store.vectors_model()
        if stored is not None and stored.model == self.embedder.name:
            return stored
        return StoredVectors(self.embedder.name, self.embedder.dimensions)

    def model_for(self, vectors: Vectors) -> StoredVectors:
        return StoredVectors(self.embedder.name, int(vectors.shape[1]))

    def context_state(self) -> ContextState:
        """The context cache and session registry, created on first use."""
        with self.lock:
            if self._context is None:
                from memex.context.assembler import ContextState
                from memex.context.cache import SectionCache
                from memex.tokens import make_counter

                s = self.settings
                cache = SectionCache(s.context_cache_bytes, s.context_cache_seconds)
                self._context = ContextState(make_counter(s.tokenizer), cache)
            return self._context

    def drop_caches(self) -> None:
        """Forget cached query vectors and context sections (after a purge: they may
        hold what was purged)."""
        with self.lock:
            self.query_cache.clear()
            context = self._context
        if context is not None:
            context.cache.clear()

    def size_estimate(self) -> int:
        """Roughly how many memories the store holds (cached for a minute)."""
        now = time.monotonic()
        if self._size is None or now - self._size[1] > 60:
            self._size = (self.store.size_estimate(), now)
        return self._size[0]

    def close(self) -> None:
        try:
            self.access.close()
        finally:
            self.store.close()


def check_embedder_argument(embedder: object) -> None:
    """Refuse an ``embedder`` argument that is neither a name nor an Embedder."""
    if embedder is not None and not isinstance(embedder, str | Embedder):
        raise ConfigError(f"embedder must be a name ({', '.join(EMBEDDERS)}) or an Embedder")


def choose_embedder(store: Store, settings: Settings, embedder: Embedder | str | None) -> Embedder:
    """The embedder for this store: the one asked for, else the one that made its vectors."""
    stored = store.vectors_model()
    check_embedder_argument(embedder)
    if isinstance(embedder, str):
        settings = settings.with_changes(embedder=embedder)
        embedder = None
    if embedder is None:
        name = settings.embedder
        if name == "auto":
            name = _family(stored.model) if stored else "wordllama"
            settings = settings.with_changes(embedder=name)
            if stored and name == "openai":
                settings = settings.with_changes(openai_model=stored.model.split(":", 1)[1])
        embedder = make_embedder(settings)
    if stored and stored.model != embedder.name:
        raise EmbedderMismatchError(
            f"the store's vectors come from {stored.model}, not {embedder.name}; open it with "
            f"that embedder or run 'memex reindex --embedder {_family(embedder.name)}'"
        )
    return embedder


def _family(model: str) -> str:
    family = model.split(":", 1)[0]
    if family not in EMBEDDERS:
        raise ConfigError(f"the store's vectors come from an unknown embedder {model!r}")
    return family

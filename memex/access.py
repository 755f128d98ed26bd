"""The small writes reads leave behind: read statistics and session snapshots."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from memex import log
from memex.core.models import Scope
from memex.errors import MemexError, StoreError, StoreLockedError, StoreReadOnlyError
from memex.storage.base import SavedContext, Store

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

    def __init__(self, store: Store, interval: float, *, enabled: bool) -> None:
        """``enabled`` is False for a store that takes no writes: nothing is recorded."""
        self._store = store
        self._interval = max(interval, 0.05)
        self._enabled = enabled
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
                saved = SavedContext(session, text, prefix_hash, tuple(ids))
                self._store.record(Scope(tenant=tenant), context=saved)
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

    def drop_sessions(self, tenant: str, which: Callable[[str, tuple[str, ...]], bool]) -> None:
        """Drop the tenant's snapshots waiting to be written for which ``which(session,
        ids shown)`` holds (their user, project or memories were erased)."""
        with self._lock:
            for key, (_, _, ids) in list(self._sessions.items()):
                if key[0] == tenant and which(key[1], ids):
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
                self._store.record(Scope(tenant=tenant), accesses)
            except StoreLockedError:
                return False
            del pending[tenant]
        return True

    def _write_sessions(self, sessions: dict[tuple[str, str], _Snapshot]) -> bool:
        while sessions:
            (tenant, session), (text, prefix_hash, ids) = next(iter(sessions.items()))
            try:
                saved = SavedContext(session, text, prefix_hash, ids)
                self._store.record(Scope(tenant=tenant), context=saved)
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

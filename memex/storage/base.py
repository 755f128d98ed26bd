"""The Store protocol: the one narrow contract every storage backend fulfils.

Every read and write takes a scope (in ``Filters.scope`` or directly) that carries a
tenant; a backend refuses a scope without one, so no unscoped query is reachable.
Keys (``int``) are backend-internal row keys; ids (``str``) are the public UUIDv7s.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from memex.core.episodes import Placement
    from memex.core.models import Memory, Scope
    from memex.core.progress import Progress
    from memex.core.query import Filters, Order
    from memex.core.ranking import Candidate

Vector: TypeAlias = "npt.NDArray[np.float32]"
"""A float32 vector (numpy is loaded only where vectors are made or searched)."""


@dataclass(frozen=True, slots=True)
class StoredVectors:
    """Which embedding model a store's vectors come from."""

    model: str
    dimensions: int


@dataclass(slots=True)
class WriteBatch:
    """Changes written in one transaction: all of them or none.

    ``updates`` pairs a memory's new state with the version it must still have in the
    store (optimistic concurrency); a vector of ``None`` keeps the stored vector.
    ``history`` holds past versions of inserted memories, stored as they are (an import
    restoring an export made with history); each has a version below its memory's.
    ``purges`` names memories to remove for good, with the version each must still
    have: the memory, its history, its vector and every saved session context that
    showed it. Once the write returns, nothing of their text may stay readable in what
    the backend keeps (files, logs, derived indexes), save what a reader of an older
    snapshot still needs, which is scrubbed later (docs/storage.md, "Purge").
    """

    inserts: builtins.list[tuple[Memory, Vector]] = field(default_factory=list)
    updates: builtins.list[tuple[Memory, Vector | None, int]] = field(default_factory=list)
    history: builtins.list[Memory] = field(default_factory=list)
    purges: builtins.list[tuple[str, int]] = field(default_factory=list)


class Snapshot(Protocol):
    """A scope's memories as they stood at one moment (one read transaction).

    Iterating yields each memory, oldest first, with its past versions (oldest first;
    empty unless asked for). Close it to end the transaction.
    """

    @property
    def total(self) -> int:
        """How many memories iterating yields."""
        ...

    def __iter__(self) -> Iterator[tuple[Memory, builtins.list[Memory]]]: ...

    def close(self) -> None:
        """End the read transaction and release its connection."""
        ...


class Store(Protocol):
    """A memory store. Implementations: ``SQLiteStore`` (later ``PostgresStore``)."""

    @property
    def location(self) -> str:
        """Where the store lives (a file path or URL without secrets)."""
        ...

    @property
    def read_only(self) -> str | None:
        """Why writes are refused with StoreReadOnlyError (opened read-only, or the store
        cannot be written by this process); None when the store can be written."""
        ...

    def close(self) -> None:
        """Release connections and caches."""
        ...

    def files(self) -> builtins.list[Path]:
        """The paths on this machine the store owns: its files, and folders it owns with
        everything inside them (nothing for a store behind a server). Output files
        (exports, backups) are never written there."""
        ...

    def schema_version(self) -> int:
        """The applied schema version."""
        ...

    def vectors_model(self) -> StoredVectors | None:
        """The model the stored vectors come from; None for a store with no vectors yet."""
        ...

    def write(self, scope: Scope, batch: WriteBatch, model: StoredVectors) -> None:
        """Apply a batch atomically.

        Raises:
            ConflictError: an updated or purged memory changed or vanished since it
                was read.
        """
        ...

    def get(self, scope: Scope, memory_id: str, *, include_deleted: bool = False) -> Memory | None:
        """One memory by id within the scope, or None.

        Forgotten and expired memories count as absent unless ``include_deleted``;
        superseded ones and ones whose validity has not begun are returned.
        """
        ...

    def fetch(self, filters: Filters, keys: Sequence[int]) -> dict[int, Memory]:
        """The memories behind ``keys`` that pass ``filters`` (others are left out)."""
        ...

    def boost_inputs(
        self, filters: Filters, keys: Sequence[int]
    ) -> dict[int, tuple[float, datetime]]:
        """Importance and creation time of the memories behind ``keys`` that pass
        ``filters`` (others are left out): what ranking boosts need, and no more."""
        ...

    def placements(self, filters: Filters, keys: Sequence[int]) -> dict[int, Placement]:
        """Thread (scope and kind), creation time and text of the memories behind ``keys``
        that pass ``filters`` (others are left out): what episode scoring needs."""
        ...

    def search_lexical(
        self, filters: Filters, terms: Sequence[str], limit: int
    ) -> builtins.list[Candidate]:
        """Full-text candidates for any of ``terms``, best first, filters applied."""
        ...

    def search_vector(
        self, filters: Filters, vector: Vector, limit: int
    ) -> builtins.list[Candidate]:
        """Nearest memories by cosine similarity, best first, filters applied."""
        ...

    def neighbours(
        self, filters: Filters, keys: Sequence[int], radius: int
    ) -> dict[int, builtins.list[int]]:
        """For each key, up to ``radius`` memories on each side of it in its thread.

        A thread is the memories sharing a memory's whole scope (tenant, project, user,
        agent, session) and kind, in creation order; only memories passing ``filters``
        count. Keys that are unknown are left out.
        """
        ...

    def list(
        self, filters: Filters, order: Order, limit: int, cursor: str | None
    ) -> tuple[builtins.list[Memory], str | None]:
        """A page of memories in creation order, with the cursor of the next page."""
        ...

    def range(
        self, filters: Filters, start: datetime | None, end: datetime | None, limit: int | None
    ) -> builtins.list[Memory]:
        """Memories created in [start, end), oldest first."""
        ...

    def history(self, scope: Scope, memory_id: str) -> builtins.list[Memory]:
        """Every version of a memory, oldest first; empty if it is unknown."""
        ...

    def expired(self, scope: Scope, now: datetime) -> builtins.list[Memory]:
        """Memories whose expiry time has passed that ``expire`` has not recorded yet."""
        ...

    def cached_vectors(self, scope: Scope, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors of ``model`` for contents with these hashes (the embedding cache)."""
        ...

    def record_access(self, scope: Scope, accesses: Mapping[str, tuple[int, datetime]]) -> None:
        """Add read counts and last-read times (id -> (count, time)); no new version.

        Never waits: raises StoreLockedError at once while another writer holds the store.
        """
        ...

    def change_versions(self, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
        """How often memories with these keys (``kind:<kind>``, ``tag:<tag>``) changed
        within the scope's tenant (and project, if set). Absent keys count 0."""
        ...

    def last_context(self, scope: Scope, session: str, prefix_hash: str) -> tuple[str | None, int]:
        """The text of the session's previous context (None if none), and how many other
        sessions' latest contexts have this prefix hash."""
        ...

    def save_context(
        self, scope: Scope, session: str, text: str, prefix_hash: str, ids: Sequence[str]
    ) -> None:
        """Record a session's latest context and the ids of the memories it shows (a purge
        of one of them drops it).

        Never waits: raises StoreLockedError at once while another writer holds the store.
        """
        ...

    def size_estimate(self) -> int:
        """Roughly how many memories the whole store holds (cheap)."""
        ...

    def stats(self, scope: Scope, now: datetime) -> dict[str, object]:
        """Counts within the scope and sizes of the store."""
        ...

    def snapshot(self, scope: Scope, *, include_deleted: bool, history: bool) -> Snapshot:
        """Every memory within the scope, superseded and expired ones included, forgotten
        ones only with ``include_deleted``, as of now; past versions with ``history``."""
        ...

    def backup(self, target: Path, progress: Progress | None = None) -> int:
        """Write a consistent copy of the whole store (every tenant) into the new empty
        file ``target``, without holding up writers; return how many memories it holds.

        Derived indexes are not copied: a store opened from the copy rebuilds them.
        """
        ...

    def iter_contents(self, batch_size: int) -> Iterator[builtins.list[tuple[int, str, str]]]:
        """Every memory of every tenant as (key, tenant, content), in batches (for reindex)."""
        ...

    def build_indexes(
        self, tenant: str | None, progress: Progress | None = None, *, lagging_only: bool = False
    ) -> None:
        """Bring the derived search indexes up to date and keep them for the next process.

        Derived indexes are what a search would otherwise build or catch up on first use
        (for SQLite: the full-text index, shared by every tenant, and the vector index of
        ``tenant``, or of every tenant when None). Each stage is reported through
        ``progress`` with its real total. With ``lagging_only`` (after every write batch)
        only what a search would spend long on is done, so a small write costs next to
        nothing. A backend without derived indexes does nothing.

        Raises:
            StoreLockedError: another process was writing an index meanwhile.
            StoreError: an index could not be written (the tables are unaffected).
        """
        ...

    def replace_vectors(
        self, model: StoredVectors, batches: Iterator[builtins.list[tuple[int, str, Vector]]]
    ) -> int:
        """Swap in a whole new set of vectors, atomically at the end.

        Batches hold (key, hash of the content embedded, vector); a memory written or
        changed meanwhile makes the swap fail with ConflictError, leaving the old set.
        """
        ...

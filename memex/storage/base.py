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
from typing import Protocol

import numpy as np
import numpy.typing as npt

from memex.core.episodes import Placement
from memex.core.models import Memory, Scope
from memex.core.query import Filters, Order
from memex.core.ranking import Candidate

Vector = npt.NDArray[np.float32]


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
    ``purges`` names memories to remove for good, with the version each must still
    have: the memory, its history, its vector and every saved session context that
    showed it. Once the write returns, nothing of their text may stay readable in what
    the backend keeps (files, logs, derived indexes), save what a reader of an older
    snapshot still needs, which is scrubbed later (docs/storage.md, "Purge").
    """

    inserts: builtins.list[tuple[Memory, Vector]] = field(default_factory=list)
    updates: builtins.list[tuple[Memory, Vector | None, int]] = field(default_factory=list)
    purges: builtins.list[tuple[str, int]] = field(default_factory=list)


class Store(Protocol):
    """A memory store. Implementations: ``SQLiteStore`` (later ``PostgresStore``)."""

    @property
    def location(self) -> str:
        """Where the store lives (a file path or URL without secrets)."""
        ...

    def close(self) -> None:
        """Release connections and caches."""
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
        """One memory by id within the scope, or None."""
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
        """Live memories whose expiry time has passed."""
        ...

    def cached_vectors(self, scope: Scope, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors of ``model`` for contents with these hashes (the embedding cache)."""
        ...

    def record_access(self, scope: Scope, accesses: Mapping[str, tuple[int, datetime]]) -> None:
        """Add read counts and last-read times (id -> (count, time)); no new version."""
        ...

    def change_versions(self, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
        """How often memories with these keys (``kind:<kind>``, ``tag:<tag>``) changed
        within the scope's tenant (and project, if set). Absent keys count 0."""
        ...

    def last_context(self, scope: Scope, session: str) -> str | None:
        """The text of the session's previous context, if any."""
        ...

    def save_context(
        self, scope: Scope, session: str, text: str, prefix_hash: str, ids: Sequence[str]
    ) -> int:
        """Record a session's latest context and the ids of the memories it shows (a
        purge of one of them drops it); return how many sessions share its prefix."""
        ...

    def size_estimate(self) -> int:
        """Roughly how many memories the whole store holds (cheap)."""
        ...

    def stats(self, scope: Scope, now: datetime) -> dict[str, object]:
        """Counts within the scope and sizes of the store."""
        ...

    def iter_contents(self, batch_size: int) -> Iterator[builtins.list[tuple[int, str, str]]]:
        """Every memory of every tenant as (key, tenant, content), in batches (for reindex)."""
        ...

    def replace_vectors(
        self, model: StoredVectors, batches: Iterator[builtins.list[tuple[int, str, Vector]]]
    ) -> int:
        """Swap in a whole new set of vectors, atomically at the end.

        Batches hold (key, hash of the content embedded, vector); a memory written or
        changed meanwhile makes the swap fail with ConflictError, leaving the old set.
        """
        ...

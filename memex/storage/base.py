"""The Store protocol: the one narrow contract every storage backend fulfils.

Every read and write takes a scope (in ``Filters.scope`` or directly) that carries a
tenant; a backend refuses a scope without one, so no unscoped query is reachable.
Memories go in and out as domain values (``memex.core.models``); how they are laid out
in rows, and how times and JSON are encoded, is each backend's own business. Candidates
carry a key (``int``): the backend's own, unique within the store and ascending in the
order memories were written; ranking breaks ties on it. Ids (``str``) are the public
UUIDv7s. Beside its memories, a store keeps its directory (tenants, users, projects and
API keys: ``directory()``, ``memex.storage.directory``).

The write contract, which every backend fulfils and the contract suite checks
(``tests/storage/test_store_contract.py``):

* **History.** A write that replaces a memory keeps the replaced version, readable
  through ``history``, until the memory is purged.
* **Change counters.** Every write that adds, changes or removes a memory counts a
  change for its kind and each of its tags (before and after the change), within its
  tenant and project; ``changes`` reads them, and caches derived from memories (the
  context assembler's sections) are invalidated by them, in this process and others.
* **Audit.** A batch's audit event is appended to its tenant's hash chain, and the
  chain's head moved, in the batch's own transaction: the change and its entry are
  committed together or not at all. Appends to one chain take turns (numbers follow
  commit order). Directory changes carry theirs alike (``memex.storage.directory``).
* **Search follows writes.** Whatever a backend derives from memories to search them
  (for SQLite: a change log that its full-text and vector indexes replay) is never
  trusted over the memories: ``candidates`` sees a write, a forget or a purge the moment
  it is committed, from any handle or process on the same store.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from memex.core.audit import AuditEvent
    from memex.core.models import Memory, Scope
    from memex.core.progress import Progress
    from memex.core.query import Filters, Order
    from memex.core.ranking import Candidate, Facts
    from memex.storage.audit import AuditLog
    from memex.storage.directory import Directory
    from memex.storage.encryption import TenantKeys
    from memex.storage.privacy import PrivacyStore

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
    ``audit`` is the entry recording the change, appended to the tenant's audit chain in
    the same transaction (None: the change is not audited, as a copy's writes are not).
    """

    inserts: builtins.list[tuple[Memory, Vector]] = field(default_factory=list)
    updates: builtins.list[tuple[Memory, Vector | None, int]] = field(default_factory=list)
    history: builtins.list[Memory] = field(default_factory=list)
    purges: builtins.list[tuple[str, int]] = field(default_factory=list)
    audit: AuditEvent | None = None


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


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store is: where it lives, whether it takes writes, its schema and vectors."""

    location: str
    """A file path, or a URL without secrets."""
    read_only: str | None
    """Why writes are refused with StoreReadOnlyError (opened read-only, or the store
    cannot be written by this process); None when the store can be written."""
    schema_version: int
    vectors: StoredVectors | None
    """The model the stored vectors come from; None for a store with no vectors yet."""
    memories: int
    """Roughly how many memories the whole store holds (cheap to read)."""
    files: tuple[Path, ...]
    """The paths on this machine the store owns: its files, and folders it owns with
    everything inside them (none for a store behind a server). Output files (exports,
    backups) are never written there."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts within a scope, each memory counted once by its state, and the store's size."""

    memories: int
    """Current or not yet valid."""
    deleted: int
    superseded: int
    expired: int
    versions: int
    """Every version: past ones and each memory's current one."""
    by_kind: dict[str, int]
    """``memories`` by kind."""
    vectors: int
    size_bytes: int
    """The whole store's size (every tenant's)."""
    content_bytes: int = 0
    """The UTF-8 bytes of the content of the memories in scope that are not forgotten
    (current versions only: what a tenant's storage quota counts)."""


@dataclass(frozen=True, slots=True)
class SavedContext:
    """A session's latest context: its text, prefix hash and the ids of what it shows."""

    session: str
    text: str
    prefix_hash: str
    ids: tuple[str, ...]


Seeds: TypeAlias = "Callable[[Sequence[Candidate], Sequence[Candidate]], Collection[int]]"
"""Picks keys from the two legs' candidates (lexical, vector): the keys whose thread
neighbours ranking reads."""

Wanted: TypeAlias = (
    "Callable[[Sequence[Candidate], Sequence[Candidate], Mapping[int, Sequence[int]]], "
    "Collection[int]]"
)
"""Picks, from the two legs' candidates and the neighbours found (seed -> keys), the keys
whose facts (and ids) ranking reads: every key a recall may return must be among them."""


@dataclass(frozen=True, slots=True)
class CandidateQuery:
    """What one recall asks of the store: both legs, and the neighbours of the best.

    ``terms`` feed the lexical leg (none: no lexical leg), ``vector`` the vector leg
    (None: no vector leg); each leg returns up to ``limit`` candidates. With ``radius``
    above 0, ``seeds`` picks keys among the legs' candidates, and the store adds up to
    ``radius`` memories on each side of each of them in its thread. Then ``wanted``
    picks the keys whose facts ranking reads (None: every candidate's and neighbour's).
    These are ranking's choices, made where the candidates are, so a recall asks the
    store once for its candidates, whatever ranking needs. The store passes the legs'
    lists to both callables and returns those same lists, unchanged (ranking reuses
    what it computed from them).
    """

    terms: tuple[str, ...] = ()
    vector: Vector | None = None
    limit: int = 100
    radius: int = 0
    seeds: Seeds | None = None
    wanted: Wanted | None = None


@dataclass(frozen=True, slots=True)
class Candidates:
    """A recall's candidates, with everything ranking needs about each one.

    ``lexical`` and ``vector`` are each leg's candidates, best first, with the leg's raw
    score. ``neighbours`` maps each seed to the keys next to it in its thread, nearest
    first, before then after (a thread is the memories sharing a whole scope and kind,
    in creation order; only memories passing the filters count). ``facts`` holds what
    ranking needs (thread, creation time, importance, text) of the wanted keys that
    still pass the filters, and ``ids`` the id of each of them (and may hold more): a
    recall names the memories it returns among the keys it wants.
    """

    lexical: builtins.list[Candidate] = field(default_factory=list)
    vector: builtins.list[Candidate] = field(default_factory=list)
    neighbours: dict[int, builtins.list[int]] = field(default_factory=dict)
    ids: dict[int, str] = field(default_factory=dict)
    facts: dict[int, Facts] = field(default_factory=dict)


class Store(Protocol):
    """A memory store. Implementations: ``SQLiteStore`` and ``PostgresStore``."""

    def info(self) -> StoreInfo:
        """Where the store lives, whether it takes writes, its schema and its vectors."""
        ...

    def close(self) -> None:
        """Release connections and caches."""
        ...

    def write(self, scope: Scope, batch: WriteBatch, model: StoredVectors) -> None:
        """Apply a batch atomically, keeping the write contract (module docstring).

        Raises:
            ConflictError: an updated or purged memory changed or vanished since it
                was read, or an inserted id exists already.
        """
        ...

    def record(
        self,
        scope: Scope,
        accesses: Mapping[str, tuple[int, datetime]] | None = None,
        context: SavedContext | None = None,
    ) -> None:
        """Record what reads leave behind, without a new version: read counts and last-read
        times (id -> (count, time)), and a session's latest context (a purge of a memory
        it shows drops it).

        Never waits: raises StoreLockedError at once while another writer holds the store.
        """
        ...

    def fetch(self, filters: Filters, ids: Sequence[str]) -> dict[str, Memory]:
        """The memories with these ids that pass ``filters`` (others are left out).

        ``Filters(scope, include_superseded=True)`` finds a memory by id in any valid
        time, as ``get`` does; ``include_deleted`` adds forgotten and expired ones.
        """
        ...

    def history(self, scope: Scope, memory_id: str) -> builtins.list[Memory]:
        """Every version of a memory, oldest first; empty if it is unknown. Read
        statistics belong to the memory, not to a version: past versions carry none
        (``access_count`` 0, no ``last_accessed_at``)."""
        ...

    def list(
        self, filters: Filters, order: Order, limit: int | None, cursor: str | None
    ) -> tuple[builtins.list[Memory], str | None]:
        """A page of memories in creation order, with the cursor of the next page (an
        opaque string of the backend's; a malformed one is a ValidationError), or None
        after the last page. ``limit=None`` returns every memory left, in one page."""
        ...

    def candidates(self, filters: Filters, query: CandidateQuery) -> Candidates:
        """A recall's candidates within ``filters``: each leg's candidates pass the
        filters as it finds them; neighbours and facts are read at one moment after.
        A candidate purged meanwhile is left out."""
        ...

    def snapshot(self, scope: Scope, *, include_deleted: bool, history: bool) -> Snapshot:
        """Every memory within the scope, superseded and expired ones included, forgotten
        ones only with ``include_deleted``, as of now; past versions with ``history``."""
        ...

    def cached_vectors(self, scope: Scope, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors of ``model`` for contents with these hashes (the embedding cache)."""
        ...

    def directory(self) -> Directory:
        """The store's directory: its tenants, users, projects and API keys (hashes only),
        kept in the same database as its memories. A read-only store's directory refuses
        changes (StoreReadOnlyError)."""
        ...

    def privacy(self) -> PrivacyStore:
        """Erasure and anonymisation on the store's tables (``memex.storage.privacy``)."""
        ...

    def tenant_keys(self) -> TenantKeys:
        """The data keys of the store's encrypted tenants: list, rotate the master key,
        destroy one (crypto-shredding), encrypt a plain tenant (docs/security.md)."""
        ...

    def audit(self) -> AuditLog:
        """The store's audit chains (``memex.storage.audit``), in the same database as
        its memories. A read-only store's refuses appends (StoreReadOnlyError)."""
        ...

    def tenants(self) -> builtins.list[str]:
        """Every tenant that holds memories (forgotten ones too), sorted: whole-store work
        that reads through scoped calls (a migration) goes tenant by tenant."""
        ...

    def changes(self, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
        """The change counters (``kind:<kind>``, ``tag:<tag>``) within the scope's tenant
        (and project, if set); absent keys count 0. See the write contract."""
        ...

    def last_context(self, scope: Scope, session: str, prefix_hash: str) -> tuple[str | None, int]:
        """The text of the session's latest recorded context (None if none), and how many
        other sessions' latest contexts have this prefix hash."""
        ...

    def stats(self, scope: Scope, now: datetime) -> StoreStats:
        """Counts within the scope at ``now`` and the size of the store."""
        ...

    def backup(self, target: Path, progress: Progress | None = None) -> int:
        """Write a consistent copy of the whole store (every tenant) into the new empty
        file ``target``, without holding up writers; return how many memories it holds.

        Derived indexes are not copied: a store opened from the copy rebuilds them.
        """
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
        self,
        model: StoredVectors,
        embed: Callable[[Sequence[str]], Vector],
        batch_size: int,
        progress: Progress | None = None,
    ) -> int:
        """Re-embed every memory of every tenant with ``embed`` (a batch of contents in, a
        matrix with one row each out) and swap in the new set of vectors atomically at the
        end; return how many.

        A memory written or changed meanwhile makes the swap fail with ConflictError,
        leaving the old set. ``progress`` counts memories embedded.
        """
        ...

"""Memex: the one object every interface holds, and the operations they all call."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from memex.auditing import AuditMixin
from memex.bulk import BulkMixin
from memex.context.api import ContextMixin
from memex.core.build import carried_over, opt_time
from memex.core.ids import stored_id
from memex.core.models import Hit, Memory, Page, Scope, Stats, utcnow
from memex.core.progress import Progress
from memex.core.query import Filters, Order
from memex.core.validate import check_text, validate_count
from memex.core.versions import KEEP, deleted, update_changes, updated
from memex.core.visibility import is_hidden
from memex.embedders.base import Embedder
from memex.embedders.open import make_embedder
from memex.embedding import check_embedder_argument, choose_embedder
from memex.engine import Engine
from memex.errors import (
    NotFoundError,
    ScopeError,
    StoreReadOnlyError,
    ValidationError,
)
from memex.insertion import InsertionMixin
from memex.migration import MigrationMixin
from memex.privacy import PrivacyMixin
from memex.security.api import SecurityMixin
from memex.settings import Settings, located
from memex.storage.base import WriteBatch
from memex.storage.open import open_store

if TYPE_CHECKING:
    import numpy as np

    from memex.core.identity import Principal
    from memex.core.ranking import FusionWeights


class Memex(
    PrivacyMixin,
    ContextMixin,
    BulkMixin,
    MigrationMixin,
    SecurityMixin,
    AuditMixin,
    InsertionMixin,
):
    """A handle on a memory store, confined to a scope.

    ``Memex.open`` returns the root handle of a store (tenant ``settings.tenant``);
    ``scoped`` returns handles that can neither read nor write outside their scope.
    """

    def __init__(self, engine: Engine, scope: Scope, *, root: bool) -> None:
        if not scope.tenant:
            raise ScopeError("a handle needs a tenant")
        self._engine = engine
        self._scope = scope
        self._root = root

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        settings: Settings | None = None,
        *,
        embedder: Embedder | str | None = None,
        read_only: bool | None = None,
        **overrides: Any,
    ) -> Memex:
        """Open (creating if needed) the store at ``path``.

        ``path=None`` means the default store in $MEMEX_HOME or the user data dir.
        ``embedder`` defaults to the model that made the store's vectors (``wordllama``
        for a new store); naming a different one is an error until ``reindex``.
        ``read_only=True`` (or the ``read_only`` setting) opens an existing store for
        reading only; a store this process cannot write is opened so anyway.
        """
        if read_only is not None:
            overrides["read_only"] = read_only
        location, settings = located(path, settings, overrides)
        root_scope = Scope(tenant=settings.tenant)
        store = open_store(location, settings)
        try:
            info = store.info()
            chosen = choose_embedder(info.vectors, settings, embedder)
        except BaseException:
            store.close()
            raise
        engine = Engine(store, chosen, settings, info)
        return cls(engine, root_scope, root=True)

    @staticmethod
    def locate(
        path: str | Path | None = None, settings: Settings | None = None, **overrides: Any
    ) -> tuple[Path | str, Settings]:
        """The store ``Memex.open`` would open for these arguments (a file path, or a
        database server's URL as given), and its settings."""
        from memex.core.locations import is_database_url
        from memex.storage.open import resolve_path

        location, chosen = located(path, settings, overrides)
        if is_database_url(location):
            return str(location), chosen
        return resolve_path(location).absolute(), chosen

    def close(self) -> None:
        """Close the store (root handle only), writing pending access statistics if no
        other process is writing: they are dropped rather than waited for."""
        if self._root:
            self._engine.close()

    def __enter__(self) -> Memex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Memex({self._engine.location!r}, scope={self._scope.as_dict()})"

    @property
    def scope(self) -> Scope:
        """The scope this handle is confined to."""
        return self._scope

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self._engine.settings

    @property
    def embedder(self) -> Embedder:
        """The embedding model in use."""
        return self._engine.embedding.embedder

    def embed_query(self, query: str) -> np.ndarray:
        """The vector ``recall`` searches with for ``query`` (pass it as ``query_vector``)."""
        return self._engine.embedding.embed_query(query)

    @property
    def location(self) -> str:
        """Where the store lives."""
        return self._engine.location

    @property
    def read_only(self) -> str | None:
        """Why writes are refused (``opened read-only``, ``its folder is not writable``),
        or None when the store can be written."""
        return self._engine.read_only

    def _check_writable(self) -> None:
        """Refuse a write up front, before any work is done for it."""
        reason = self._engine.read_only
        if reason is not None:
            raise StoreReadOnlyError.refused(self.location, reason)

    def scoped(self, scope: Scope | Mapping[str, str] | None = None, **fields: str) -> Memex:
        """A handle confined to a narrower scope.

        The root handle may pick any tenant; a scoped handle can only add fields.
        """
        wanted = Scope.of({**(Scope.of(scope).as_dict()), **fields})
        base = Scope(tenant=wanted.tenant) if self._root and wanted.tenant else self._scope
        return Memex(self._engine, base.narrow(wanted), root=False)

    def for_principal(self, principal: Principal) -> Memex:
        """A handle confined to what a server's caller may reach (root handle only)."""
        if not self._root:
            raise ScopeError("a caller's handle is made from the root handle")
        return Memex(self._engine, principal.scope, root=False)

    def _within(self, scope: Scope | Mapping[str, Any] | None) -> Scope:
        return self._scope.narrow(Scope.of(scope))

    # -- writes ----------------------------------------------------------------------

    def remember(
        self,
        content: str,
        *,
        kind: str = "note",
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        scope: Scope | Mapping[str, Any] | None = None,
        importance: float = 0.5,
        created_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        ttl: timedelta | float | None = None,
        source: str | None = None,
        supersedes: str | None = None,
        valid_from: datetime | str | None = None,
    ) -> Memory:
        """Store one memory and return it.

        ``supersedes`` names a memory this one replaces: the old one stays in history,
        valid until this one's ``valid_from``. A time without a zone is UTC.
        """
        item: dict[str, Any] = {
            "content": content,
            "kind": kind,
            "tags": tags,
            "metadata": metadata,
            "scope": scope,
            "importance": importance,
            "created_at": created_at,
            "expires_at": expires_at,
            "ttl": ttl,
            "source": source,
            "supersedes": supersedes,
            "valid_from": valid_from,
        }
        return self.remember_many([item])[0]

    def supersede(self, memory_id: str, content: str, **fields: Any) -> Memory:
        """Record that ``memory_id`` is no longer true and ``content`` is; return the new memory.

        Unless given, kind, tags, metadata, scope and importance carry over from the old one.
        """
        old = self._get_visible(memory_id)
        return self.remember(content, supersedes=memory_id, **carried_over(old, fields))

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        expires_at: datetime | str | None = KEEP,
        source: str | None = KEEP,
    ) -> Memory:
        """Change a memory in place, as a new version (the old one stays in ``history``);
        a forgotten or expired memory is not found, as by ``get``.

        Each field is validated as ``remember`` validates it; ``None`` leaves a field as
        it is, except ``expires_at`` and ``source``, which ``None`` clears.
        """
        self._check_writable()
        now = utcnow()
        old = self._get_visible(memory_id, now)
        changes = update_changes(
            {
                "content": content,
                "kind": kind,
                "tags": tags,
                "metadata": metadata,
                "importance": importance,
                "expires_at": expires_at,
                "source": source,
            }
        )
        new = updated(old, changes, now=now, max_content_bytes=self.settings.max_content_bytes)
        vector = None
        engine = self._engine
        embedding = engine.embedding
        with self._counted(0, len(new.content.encode()) - len(old.content.encode())):
            if new.content_hash != old.content_hash:
                vector = embedding.embed_contents(self._scope, [new.content])[0]
            model = (
                embedding.current_model()
                if vector is None
                else embedding.model_for(vector[None, :])
            )
            audit = self._audit("memory.update", new.id)
            batch = WriteBatch(updates=[(new, vector, old.version)], audit=audit)
            engine.store.write(self._scope, batch, model)
        return new

    def expire(self) -> int:
        """Record each expiry that has passed as a version with ``deleted_at``; return how
        many. No read changes: expired memories are hidden from ``expires_at`` on anyway,
        and an earlier ``as_of`` still sees them."""
        self._check_writable()
        now = utcnow()
        expired = Filters(
            scope=self._scope, include_deleted=True, include_superseded=True, expired_by=now
        )
        stale, _ = self._engine.store.list(expired, "asc", None, None)
        audit = self._audit("memory.expire", count=len(stale))
        self._write([(deleted(m, now), None, m.version) for m in stale], audit, self._scope)
        return len(stale)

    # -- reads -----------------------------------------------------------------------

    def _get_visible(self, memory_id: str, now: datetime | None = None) -> Memory:
        memory = self._engine.find(self._scope, stored_id(memory_id))
        if memory is None or (now is not None and is_hidden(memory.state(now))):
            raise NotFoundError(f"no memory {memory_id}")
        return memory

    def get(self, memory_id: str) -> Memory:
        """One memory by id, superseded or not yet valid too; a forgotten or expired one
        is a NotFoundError."""
        memory = self._get_visible(memory_id)
        self._engine.access.add(self._scope.tenant or "", [memory.id], utcnow())
        return memory

    def history(self, memory_id: str) -> builtins.list[Memory]:
        """Every version of a memory, oldest first, in any state (forgotten too)."""
        versions = self._engine.store.history(self._scope, stored_id(memory_id))
        if not versions:
            raise NotFoundError(f"no memory {memory_id}")
        return versions

    def _filters(self, **kwargs: Any) -> Filters:
        scope = self._within(kwargs.pop("scope", None))
        return Filters.build(scope=scope, **kwargs)

    def recall(
        self,
        query: str,
        k: int = 10,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        as_of: datetime | str | None = None,
        mode: Literal["hybrid", "lexical", "vector"] = "hybrid",
        query_vector: np.ndarray | None = None,
        weights: FusionWeights | None = None,
    ) -> builtins.list[Hit]:
        """The ``k`` memories that best match ``query``, best first.

        Fuses full-text (BM25) and vector similarity. Recalls the memories current at
        ``as_of`` (default: now): not forgotten, not expired by then, valid then.
        Times without a zone are UTC. ``query_vector`` skips embedding the query.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must not be empty")
        check_text(query, "query")
        # The recall pipeline is loaded on first use: a handle that only reads by id or
        # time (a command-line `get`) does not pay for it.
        from memex.core.ranking import validate_weights
        from memex.retrieval import query_vector_of, search

        validate_count(k, "k", 1, 1000)
        if mode not in ("hybrid", "lexical", "vector"):
            raise ValidationError("mode must be hybrid, lexical or vector")
        if weights is not None:
            validate_weights(weights)
        if query_vector is not None:
            query_vector = query_vector_of(query_vector)
        filters = self._filters(
            scope=scope,
            kinds=kinds,
            tags=tags,
            metadata=metadata,
            since=since,
            until=until,
            as_of=as_of,
        )
        return search(
            self._engine,
            filters,
            query,
            k,
            mode=mode,
            query_vector=query_vector,
            weights=weights,
            tenant=self._scope.tenant or "",
        )

    def list(
        self,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        order: Order = "desc",
        limit: int = 50,
        cursor: str | None = None,
        include_deleted: bool = False,
        include_superseded: bool = False,
    ) -> Page:
        """A page of memories by creation time (newest first by default), keyset-paginated.

        ``include_superseded`` adds superseded and not yet valid memories, ``include_deleted``
        forgotten and expired ones. Times without a zone are UTC."""
        if order not in ("asc", "desc"):
            raise ValidationError("order must be asc or desc")
        validate_count(limit, "limit", 1, 10_000)
        filters = self._filters(
            scope=scope,
            kinds=kinds,
            tags=tags,
            metadata=metadata,
            since=since,
            until=until,
            include_deleted=include_deleted,
            include_superseded=include_superseded,
        )
        items, next_cursor = self._engine.store.list(filters, order, limit, cursor)
        return Page(items, next_cursor)

    def range(
        self,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Memory]:
        """Current memories created in ``[start, end)``, oldest first (naive times: UTC)."""
        filters = self._filters(scope=scope, kinds=kinds, tags=tags)
        s, e = opt_time(start, "start"), opt_time(end, "end")
        if s and e and s > e:
            raise ValidationError("start must not be later than end")
        if limit is not None:
            validate_count(limit, "limit", 1)
        window = dataclasses.replace(filters, since=s, until=e)
        return self._engine.store.list(window, "asc", limit, None)[0]

    def ready(self) -> int:
        """Ask the store one cheap question and return its schema version: a StoreError
        when it cannot be reached or read (what a server's readiness check asks)."""
        return self._engine.store.info().schema_version

    def stats(self) -> Stats:
        """Counts and sizes for this handle's scope; each memory counts once, by its state
        now: ``deleted`` (forgotten), else ``expired``, else ``superseded``, else
        ``memories``, which ``by_kind`` breaks down."""
        engine = self._engine
        raw = engine.store.stats(self._scope, utcnow())
        model = engine.store.info().vectors
        return Stats(
            memories=raw.memories,
            deleted=raw.deleted,
            superseded=raw.superseded,
            expired=raw.expired,
            versions=raw.versions,
            by_kind=dict(raw.by_kind),
            embedder=model.model if model else engine.embedding.embedder.name,
            dimensions=model.dimensions if model else None,
            vectors=raw.vectors,
            schema_version=engine.schema_version,
            size_bytes=raw.size_bytes,
            path=engine.location,
            read_only=engine.read_only,
        )

    def build_indexes(self, *, progress: Progress | None = None) -> None:
        """Bring the search indexes up to date and save them beside the store.

        A recall builds what it lacks by itself, with no sign of it; run this ahead of
        serving or after another program wrote many memories. Covers every tenant from the
        root handle, this handle's tenant from a scoped one (full text is store-wide).
        """
        self._check_writable()
        self._engine.store.build_indexes(None if self._root else self._scope.tenant, progress)

    def reindex(
        self, embedder: Embedder | str | None = None, *, progress: Progress | None = None
    ) -> int:
        """Re-embed every memory of the store with ``embedder`` (default: the current one).

        The old vectors serve recall until the new set is complete, then are swapped
        out in one transaction, so two models' vectors never mix. Root handle only.
        """
        if not self._root:
            raise ScopeError("reindex covers the whole store; call it on the root handle")
        self._check_writable()
        engine = self._engine
        check_embedder_argument(embedder)
        if isinstance(embedder, str):
            embedder = make_embedder(engine.settings.with_changes(embedder=embedder))
        return engine.reindex(embedder or engine.embedding.embedder, progress)

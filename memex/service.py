"""Memex: the one object every interface holds, and the operations they all call."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from memex.context.api import ContextMixin
from memex.core.build import build_memory, opt_time
from memex.core.ids import stored_id
from memex.core.models import (
    Hit,
    Memory,
    Page,
    Scope,
    Stats,
    content_hash,
    utcnow,
    validate_content,
    validate_count,
    validate_importance,
    validate_kind,
    validate_metadata,
    validate_tags,
)
from memex.core.progress import Progress
from memex.core.query import Filters, Order
from memex.core.ranking import FusionWeights
from memex.core.records import parse_lines, with_line
from memex.embedders.base import Embedder, make_embedder
from memex.engine import Engine, choose_embedder
from memex.errors import (
    NotFoundError,
    ScopeError,
    ValidationError,
)
from memex.removal import RemovalMixin
from memex.retrieval import search
from memex.settings import DB_FILENAME, Settings, default_home
from memex.storage.base import WriteBatch
from memex.storage.open import open_store

_UNSET: Any = object()


class Memex(RemovalMixin, ContextMixin):
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
        **overrides: Any,
    ) -> Memex:
        """Open (creating if needed) the store at ``path``.

        ``path=None`` means the default store in $MEMEX_HOME or the user data dir.
        ``embedder`` defaults to the model that made the store's vectors (``wordllama``
        for a new store); naming a different one is an error until ``reindex``.
        """
        home = None if path is not None else default_home()
        if settings is None:
            settings = Settings.load(home, **overrides)
        elif overrides:
            settings = Settings.from_mapping({**settings.as_dict(), **overrides})
        root_scope = Scope(tenant=settings.tenant)
        store = open_store(
            path if path is not None else (home or default_home()) / DB_FILENAME, settings
        )
        try:
            chosen = choose_embedder(store, settings, embedder)
        except BaseException:
            store.close()
            raise
        engine = Engine(store, chosen, settings)
        return cls(engine, root_scope, root=True)

    def close(self) -> None:
        """Write pending access statistics and close the store (root handle only)."""
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
        return f"Memex({self._engine.store.location!r}, scope={self._scope.as_dict()})"

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
        return self._engine.embedder

    def embed_query(self, query: str) -> np.ndarray:
        """The vector ``recall`` searches with for ``query`` (pass it as ``query_vector``)."""
        return self._engine.embed_query(query)

    @property
    def location(self) -> str:
        """Where the store lives."""
        return self._engine.store.location

    def scoped(self, scope: Scope | Mapping[str, str] | None = None, **fields: str) -> Memex:
        """A handle confined to a narrower scope.

        The root handle may pick any tenant; a scoped handle can only add fields.
        """
        wanted = Scope.of({**(Scope.of(scope).as_dict()), **fields})
        base = Scope(tenant=wanted.tenant) if self._root and wanted.tenant else self._scope
        return Memex(self._engine, base.narrow(wanted), root=False)

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
        valid until this one's ``valid_from``.
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

    def remember_many(
        self, items: Iterable[Mapping[str, Any]], *, progress: Progress | None = None
    ) -> builtins.list[Memory]:
        """Store many memories in one transaction: all of them, or none on any error."""
        now = utcnow()
        memories: builtins.list[Memory] = []
        supersede: builtins.list[tuple[int, str]] = []
        explicit: builtins.list[str] = []
        for position, item in enumerate(items):
            memory, old_id = self._build(item, now, position)
            memories.append(memory)
            if old_id:
                supersede.append((position, old_id))
            if item.get("id"):
                explicit.append(memory.id)
        return self._insert(memories, supersede, progress, explicit)

    def _build(
        self, item: Mapping[str, Any], now: datetime, position: int
    ) -> tuple[Memory, str | None]:
        return build_memory(
            item,
            within=self._scope,
            now=now,
            max_content_bytes=self._engine.settings.max_content_bytes,
            position=position,
        )

    def _insert(
        self,
        memories: builtins.list[Memory],
        supersede: builtins.list[tuple[int, str]],
        progress: Progress | None,
        explicit_ids: Sequence[str] = (),
    ) -> builtins.list[Memory]:
        if not memories:
            return []
        ids = [m.id for m in memories]
        if len(set(ids)) != len(ids):
            raise ValidationError("the batch holds the same id twice")
        engine = self._engine
        tenant = Scope(tenant=self._scope.tenant)  # ids are unique within a tenant
        for memory_id in explicit_ids:
            if engine.store.get(tenant, memory_id, include_deleted=True) is not None:
                raise ValidationError(f"a memory with id {memory_id} already exists")
        batch = WriteBatch()
        now = utcnow()
        targets = [old_id for _, old_id in supersede]
        if len(set(targets)) != len(targets):
            raise ValidationError("the batch supersedes the same memory twice")
        for position, old_id in supersede:
            new = memories[position]
            old = self._get_visible(old_id)
            if old.valid_until is not None and old.valid_until <= now:
                raise ValidationError(f"memory {old_id} is already superseded")
            if new.valid_from < old.valid_from:
                raise ValidationError(
                    f"the new memory's valid_from is earlier than that of {old_id}, "
                    "which it supersedes"
                )
            batch.updates.append(
                (
                    old.with_changes(
                        valid_until=new.valid_from,
                        superseded_by=new.id,
                        updated_at=now,
                        version=old.version + 1,
                    ),
                    None,
                    old.version,
                )
            )
        vectors = engine.embed_contents(self._scope, [m.content for m in memories], progress)
        batch.inserts = list(zip(memories, vectors, strict=True))
        engine.store.write(self._scope, batch, engine.model_for(vectors))
        return memories

    def supersede(self, memory_id: str, content: str, **fields: Any) -> Memory:
        """Record that ``memory_id`` is no longer true and ``content`` is; return the new memory.

        Unless given, kind, tags, metadata, scope and importance carry over from the old one.
        """
        old = self._get_visible(memory_id)
        carried: dict[str, Any] = {
            "kind": old.kind,
            "tags": list(old.tags),
            "metadata": old.metadata,
            "scope": {k: v for k, v in old.scope.items() if k != "tenant"},
            "importance": old.importance,
        }
        carried.update(fields)
        return self.remember(content, supersedes=memory_id, **carried)

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        expires_at: datetime | str | None = _UNSET,
        source: str | None = _UNSET,
    ) -> Memory:
        """Change a memory in place, as a new version (the old one stays in ``history``)."""
        old = self._get_visible(memory_id)
        changes: dict[str, Any] = {}
        if content is not None:
            changes["content"] = validate_content(content, self.settings.max_content_bytes)
            changes["content_hash"] = content_hash(changes["content"])
        if kind is not None:
            changes["kind"] = validate_kind(kind)
        if tags is not None:
            changes["tags"] = validate_tags(tags)
        if metadata is not None:
            changes["metadata"] = validate_metadata(metadata)
        if importance is not None:
            changes["importance"] = validate_importance(importance)
        if expires_at is not _UNSET:
            changes["expires_at"] = opt_time(expires_at, "expires_at")
        if source is not _UNSET:
            changes["source"] = source
        if not changes:
            raise ValidationError("nothing to update: give at least one field to change")
        new = old.with_changes(**changes, updated_at=utcnow(), version=old.version + 1)
        vector = None
        engine = self._engine
        if new.content_hash != old.content_hash:
            vector = engine.embed_contents(self._scope, [new.content])[0]
        model = engine.model_for(vector[None, :]) if vector is not None else engine.current_model()
        engine.store.write(self._scope, WriteBatch(updates=[(new, vector, old.version)]), model)
        return new

    def expire(self) -> int:
        """Soft-delete every memory whose expiry time has passed; return how many."""
        now = utcnow()
        stale = self._engine.store.expired(self._scope, now)
        self._write_updates(
            [
                (m.with_changes(deleted_at=now, updated_at=now, version=m.version + 1), m.version)
                for m in stale
            ]
        )
        return len(stale)

    def _write_updates(self, updates: builtins.list[tuple[Memory, int]]) -> None:
        if not updates:
            return
        engine = self._engine
        batch = WriteBatch(updates=[(m, None, v) for m, v in updates])
        engine.store.write(self._scope, batch, engine.current_model())

    # -- reads -----------------------------------------------------------------------

    def _get_visible(self, memory_id: str) -> Memory:
        memory = self._engine.store.get(self._scope, stored_id(memory_id))
        if memory is None:
            raise NotFoundError(f"no memory {memory_id}")
        return memory

    def get(self, memory_id: str) -> Memory:
        """One memory by id (forgotten ones are not found)."""
        memory = self._get_visible(memory_id)
        self._engine.access.add(self._scope.tenant or "", [stored_id(memory_id)], utcnow())
        return memory

    def history(self, memory_id: str) -> builtins.list[Memory]:
        """Every version of a memory, oldest first, including after ``forget``."""
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

        Fuses full-text (BM25) and vector similarity; ``as_of`` recalls what was valid
        at that time. ``query_vector`` skips embedding the query.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must not be empty")
        validate_count(k, "k", 1, 1000)
        if mode not in ("hybrid", "lexical", "vector"):
            raise ValidationError("mode must be hybrid, lexical or vector")
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
        """A page of memories by creation time (newest first by default), keyset-paginated."""
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
        """Memories created in ``[start, end)``, oldest first."""
        filters = self._filters(scope=scope, kinds=kinds, tags=tags)
        s, e = opt_time(start, "start"), opt_time(end, "end")
        if s and e and s > e:
            raise ValidationError("start must not be later than end")
        if limit is not None:
            validate_count(limit, "limit", 1)
        return self._engine.store.range(filters, s, e, limit)

    def iter_all(self, *, include_deleted: bool = False, page_size: int = 1000) -> Iterator[Memory]:
        """Every memory in scope, oldest first: superseded and expired ones included,
        forgotten ones only with ``include_deleted``."""
        cursor = None
        while True:
            page = self.list(
                order="asc",
                limit=page_size,
                cursor=cursor,
                include_deleted=True,
                include_superseded=True,
            )
            yield from (m for m in page.items if include_deleted or m.deleted_at is None)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def stats(self) -> Stats:
        """Counts and sizes for this handle's scope."""
        engine = self._engine
        raw = engine.store.stats(self._scope, utcnow())
        model = engine.store.vectors_model()
        return Stats(
            memories=int(raw["memories"]),  # type: ignore[call-overload]
            deleted=int(raw["deleted"]),  # type: ignore[call-overload]
            superseded=int(raw["superseded"]),  # type: ignore[call-overload]
            expired=int(raw["expired"]),  # type: ignore[call-overload]
            versions=int(raw["versions"]),  # type: ignore[call-overload]
            by_kind=dict(raw["by_kind"]),  # type: ignore[call-overload]
            embedder=model.model if model else engine.embedder.name,
            dimensions=model.dimensions if model else None,
            vectors=int(raw["vectors"]),  # type: ignore[call-overload]
            schema_version=engine.store.schema_version(),
            size_bytes=int(raw["size_bytes"]),  # type: ignore[call-overload]
            path=engine.store.location,
        )

    # -- bulk ------------------------------------------------------------------------

    def import_lines(
        self, lines: Iterable[str], *, progress: Progress | None = None
    ) -> builtins.list[Memory]:
        """Import JSON Lines records, all or nothing; a bad line raises with its number."""
        now = utcnow()
        memories: builtins.list[Memory] = []
        supersede: builtins.list[tuple[int, str]] = []
        explicit: builtins.list[str] = []
        for number, record in parse_lines(lines):
            scope = record.get("scope")
            if isinstance(scope, Mapping):  # records belong to whichever tenant imports them
                record["scope"] = {k: v for k, v in scope.items() if k != "tenant"}
            try:
                memory, old_id = self._build(record, now, number)
            except ValidationError as exc:
                raise with_line(number, exc) from exc
            except ScopeError as exc:
                raise with_line(number, ValidationError(str(exc))) from exc
            memories.append(memory)
            if old_id:
                supersede.append((len(memories) - 1, old_id))
            if record.get("id"):
                explicit.append(memory.id)
        return self._insert(memories, supersede, progress, explicit)

    def reindex(
        self, embedder: Embedder | str | None = None, *, progress: Progress | None = None
    ) -> int:
        """Re-embed every memory of the store with ``embedder`` (default: the current one).

        The old vectors serve recall until the new set is complete, then are swapped
        out in one transaction, so two models' vectors never mix. Root handle only.
        """
        if not self._root:
            raise ScopeError("reindex covers the whole store; call it on the root handle")
        engine = self._engine
        if isinstance(embedder, str):
            embedder = make_embedder(engine.settings.with_changes(embedder=embedder))
        return engine.reindex(embedder or engine.embedder, progress)

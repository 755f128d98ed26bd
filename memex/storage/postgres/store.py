"""PostgresStore: memories on a PostgreSQL server with pgvector, shared by any number of
processes, each tenant's rows guarded by row-level security."""

from __future__ import annotations

import builtins
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from memex.core.models import Memory, Scope, to_micros, utcnow
from memex.core.progress import Progress
from memex.core.query import Filters, Order
from memex.errors import StoreReadOnlyError, ValidationError
from memex.storage.base import (
    CandidateQuery,
    Candidates,
    SavedContext,
    StoredVectors,
    StoreInfo,
    StoreStats,
    Vector,
    WriteBatch,
)
from memex.storage.postgres import candidates, reads, rows, sql, writes
from memex.storage.postgres.connection import Database, translate
from memex.storage.postgres.migrate import upgrade
from memex.storage.postgres.model import claim_model, model_and_size, stored_model

if TYPE_CHECKING:
    import psycopg

    from memex.storage.postgres.snapshot import PostgresSnapshot

    Conn = psycopg.Connection[Any]

T = TypeVar("T")
_SIZE_SECONDS = 30.0


class PostgresStore:
    """A memex store in a PostgreSQL database (with pgvector), safe for many processes."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 30.0,
        ann_min_vectors: int = 50_000,
        read_only: bool = False,
    ) -> None:
        self._db = Database(url, timeout=busy_timeout, read_only=read_only)
        self._read_only = "opened read-only" if read_only else None
        self._ann_min = ann_min_vectors
        self._size: tuple[int, float] | None = None
        conn = self._db.connect()
        try:
            self._version = upgrade(conn, self._db.location, read_only=read_only)
        except Exception as exc:
            if isinstance(exc, _driver_error()):
                raise translate(exc, self._db.location) from exc
            raise
        finally:
            conn.close()
        self._db.open_pool()

    # -- plumbing --------------------------------------------------------------------

    def _read(self, scope_tenant: str | None, fn: Callable[[Conn], T], **options: Any) -> T:
        with self._db.transaction(scope_tenant, **options) as conn:
            return fn(conn)

    def _write(self, tenant: str | None, fn: Callable[[Conn], T], **options: Any) -> T:
        if self._read_only is not None:
            raise StoreReadOnlyError.refused(self._db.location, self._read_only)
        return self._read(tenant, fn, **options)

    def info(self) -> StoreInfo:
        vectors, memories = self._read(None, model_and_size)
        return StoreInfo(
            location=self._db.location,
            read_only=self._read_only,
            schema_version=self._version,
            vectors=vectors,
            memories=memories,
            files=(),
        )

    def close(self) -> None:
        self._db.close()

    # -- writes ----------------------------------------------------------------------

    def write(self, scope: Scope, batch: WriteBatch, model: StoredVectors) -> None:
        sql.scope_clause(scope)  # refuses a scope without a tenant

        def apply(conn: Conn) -> None:
            claim_model(conn, model)
            writes.apply_batch(conn, scope, batch, model.dimensions)

        self._write(str(scope.tenant), apply)

    def record(
        self,
        scope: Scope,
        accesses: Mapping[str, tuple[int, datetime]] | None = None,
        context: SavedContext | None = None,
    ) -> None:
        sql.scope_clause(scope)
        tenant = str(scope.tenant)
        counts = [(n, to_micros(at), tenant, mid) for mid, (n, at) in (accesses or {}).items()]
        if not counts and context is None:
            return

        def apply(conn: Conn) -> None:
            if counts:
                reads.record_reads(conn, sorted(counts, key=lambda c: c[3]))
            if context is not None:
                reads.save_context(
                    conn, tenant, context.session, context.text, context.prefix_hash, context.ids
                )

        # Never waits long: a row another writer holds makes it StoreLockedError.
        self._write(tenant, apply, lock_timeout_ms=50)

    # -- reads -----------------------------------------------------------------------

    def fetch(self, filters: Filters, ids: Sequence[str]) -> dict[str, Memory]:
        sql.scope_clause(filters.scope)
        if not ids:
            return {}
        found = self._read(filters.scope.tenant, lambda c: reads.by_ids(c, filters, ids))
        return dict(zip([row[1] for row in found], rows.memories(found), strict=True))

    def history(self, scope: Scope, memory_id: str) -> builtins.list[Memory]:
        sql.scope_clause(scope)
        found = self._read(scope.tenant, lambda c: reads.history(c, scope, memory_id))
        return rows.memories(found)

    def list(
        self, filters: Filters, order: Order, limit: int | None, cursor: str | None
    ) -> tuple[builtins.list[Memory], str | None]:
        query, params = sql.list_query(filters, utcnow(), order, limit, cursor)
        found = self._read(filters.scope.tenant, lambda c: c.execute(query, params).fetchall())
        page = found if limit is None else found[:limit]
        next_cursor = None
        if limit is not None and len(found) > limit and page:
            next_cursor = rows.encode_cursor(page[-1][rows.CREATED], page[-1][0])
        return rows.memories(page), next_cursor

    def candidates(self, filters: Filters, query: CandidateQuery) -> Candidates:
        sql.scope_clause(filters.scope)
        approximate = None
        size = self._size_cached()
        vector = query.vector
        if vector is not None:
            model = self._read(filters.scope.tenant, stored_model)
            if model is None:  # no vectors yet: no vector leg
                query = dataclasses.replace(query, vector=None)
            elif vector.shape != (model.dimensions,):
                raise ValidationError(
                    f"query vector has shape {vector.shape}; the store's vectors have "
                    f"{model.dimensions} dimensions"
                )
            elif size >= self._ann_min:
                approximate = model.dimensions
        return self._read(
            filters.scope.tenant,
            lambda c: candidates.gather(c, filters, query, approximate=approximate, size=size),
            isolation="REPEATABLE READ",
        )

    def snapshot(self, scope: Scope, *, include_deleted: bool, history: bool) -> PostgresSnapshot:
        where, params = sql.scope_clause(scope)
        if not include_deleted:
            where += f" AND NOT {sql.forgotten_sql('m')}"
        from memex.storage.postgres.snapshot import PostgresSnapshot

        return PostgresSnapshot(self._db, str(scope.tenant), where, params, history=history)

    def cached_vectors(self, scope: Scope, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        sql.scope_clause(scope)
        if not hashes:
            return {}

        def read(conn: Conn) -> dict[str, Any]:
            stored = stored_model(conn)
            if stored is None or stored.model != model:
                return {}
            return reads.vectors_by_hash(conn, str(scope.tenant), hashes)

        found = self._read(scope.tenant, read)
        return {h: v.to_numpy().copy() for h, v in found.items()}

    def tenants(self) -> builtins.list[str]:
        query = "SELECT DISTINCT tenant FROM memories ORDER BY 1"
        found = self._read(None, lambda c: c.execute(query).fetchall(), all_tenants=True)
        return [str(row[0]) for row in found]

    def changes(self, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
        sql.scope_clause(scope)
        return self._read(scope.tenant, lambda c: reads.change_versions(c, scope, keys))

    def last_context(self, scope: Scope, session: str, prefix_hash: str) -> tuple[str | None, int]:
        sql.scope_clause(scope)
        tenant = str(scope.tenant)
        return self._read(tenant, lambda c: reads.last_context(c, tenant, session, prefix_hash))

    def stats(self, scope: Scope, now: datetime) -> StoreStats:
        sql.scope_clause(scope)
        found = self._read(scope.tenant, lambda c: reads.stats(c, scope, to_micros(now)))
        return StoreStats(**found)

    def _size_cached(self) -> int:
        now = time.monotonic()
        if self._size is None or now - self._size[1] > _SIZE_SECONDS:
            self._size = (self._read(None, lambda c: model_and_size(c)[1]), now)
        return self._size[0]

    # -- copies, indexes and reindex -------------------------------------------------

    def backup(self, target: Path, progress: Progress | None = None) -> int:
        from memex.storage.postgres.backup import backup

        return backup(self._db, target, progress)

    def build_indexes(
        self, tenant: str | None, progress: Progress | None = None, *, lagging_only: bool = False
    ) -> None:
        """PostgreSQL keeps its own indexes up to date; the one memex adds is the HNSW
        index of the vectors, built once the store is large enough to use it."""
        if self._read_only is not None:
            return
        self._size = None
        if self._size_cached() < self._ann_min:
            return
        from memex.storage.postgres.reindex import ensure_hnsw

        self._write(None, ensure_hnsw, all_tenants=True)

    def replace_vectors(
        self,
        model: StoredVectors,
        embed: Callable[[Sequence[str]], Vector],
        batch_size: int,
        progress: Progress | None = None,
    ) -> int:
        if self._read_only is not None:
            raise StoreReadOnlyError.refused(self._db.location, self._read_only)
        from memex.storage.postgres.reindex import replace

        return replace(self._db, model, embed, batch_size, progress)


def _driver_error() -> tuple[type[Exception], ...]:
    from memex.storage.postgres.connection import driver_errors

    return driver_errors()

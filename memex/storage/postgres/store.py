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
from memex.errors import StoreError, StoreReadOnlyError, ValidationError
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
from memex.storage.encryption import KeyProvider, Keyring
from memex.storage.postgres import candidates, keys, reads, rows, sql, writes
from memex.storage.postgres.audit import PostgresAuditLog
from memex.storage.postgres.connection import Database, translate
from memex.storage.postgres.migrate import upgrade
from memex.storage.postgres.model import (
    claim_model,
    model_and_size,
    read_model_and_size,
)

if TYPE_CHECKING:
    import psycopg

    from memex.storage.postgres.directory import PostgresDirectory
    from memex.storage.postgres.privacy import PostgresPrivacy
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
        master_key: KeyProvider | None = None,
        audit: bool = True,
    ) -> None:
        self._audited = audit  # False: no audit entries are appended (the ``audit`` setting)
        self._db = Database(url, timeout=busy_timeout, read_only=read_only)
        self._keyring = Keyring(master_key)
        self._keys = keys.ReadKeys(self._db, self._keyring)
        self._read_only = "opened read-only" if read_only else None
        self._ann_min = ann_min_vectors
        self._known: tuple[StoredVectors | None, int, float] | None = None
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
            cipher = keys.write_cipher(conn, self._keyring, str(scope.tenant))
            writes.apply_batch(conn, scope, batch, model.dimensions, cipher, self._audited)

        try:
            self._write(str(scope.tenant), apply)
        finally:
            if batch.purges:  # what this process opened of them goes too
                self._keyring.opened.drop(str(scope.tenant))

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
                cipher = keys.write_cipher(conn, self._keyring, tenant)
                reads.save_context(
                    conn, tenant, context.session, context.text, context.prefix_hash,
                    context.ids, cipher,
                )  # fmt: skip

        # Never waits long: a row another writer holds makes it StoreLockedError.
        self._write(tenant, apply, lock_timeout_ms=50)

    # -- reads -----------------------------------------------------------------------

    def fetch(self, filters: Filters, ids: Sequence[str]) -> dict[str, Memory]:
        sql.scope_clause(filters.scope)
        if not ids:
            return {}
        sealed = self._keys.sealed_matches(filters)
        [found] = self._db.run(filters.scope.tenant, [reads.by_ids(filters, ids, sealed)])
        found = self._keys.opened(found)
        return dict(zip([row[1] for row in found], rows.memories(found), strict=True))

    def history(self, scope: Scope, memory_id: str) -> builtins.list[Memory]:
        sql.scope_clause(scope)
        [found] = self._db.run(scope.tenant, [reads.history(scope, memory_id)])
        return rows.memories(self._keys.opened(found))

    def list(
        self, filters: Filters, order: Order, limit: int | None, cursor: str | None
    ) -> tuple[builtins.list[Memory], str | None]:
        sql.scope_clause(filters.scope)
        sealed = self._keys.sealed_matches(filters)
        query, params = sql.list_query(filters, utcnow(), order, limit, cursor, sealed)
        [found] = self._db.run(filters.scope.tenant, [(query, params)])
        page = found if limit is None else found[:limit]
        next_cursor = None
        if limit is not None and len(found) > limit and page:
            next_cursor = rows.encode_cursor(page[-1][rows.CREATED], page[-1][0])
        return rows.memories(self._keys.opened(page)), next_cursor

    def candidates(self, filters: Filters, query: CandidateQuery) -> Candidates:
        sql.scope_clause(filters.scope)
        try:
            return self._candidates(filters, query)
        except (StoreError, ValidationError):
            if query.vector is None or self._known is None:
                raise
            self._known = None  # the vectors may have changed under a cached model: read again
            return self._candidates(filters, query)

    def _candidates(self, filters: Filters, query: CandidateQuery) -> Candidates:
        approximate = None
        model, size = self._model_and_size()
        vector = query.vector
        if vector is not None:
            if model is None:  # no vectors yet: no vector leg
                query = dataclasses.replace(query, vector=None)
            elif vector.shape != (model.dimensions,):
                raise ValidationError(
                    f"query vector has shape {vector.shape}; the store's vectors have "
                    f"{model.dimensions} dimensions"
                )
            elif size >= self._ann_min:
                approximate = model.dimensions
        return candidates.gather(
            self._db,
            filters,
            query,
            approximate=approximate,
            size=size,
            keys=self._keys,
            sealed=self._keys.sealed_matches(filters),
        )

    def snapshot(self, scope: Scope, *, include_deleted: bool, history: bool) -> PostgresSnapshot:
        where, params = sql.scope_clause(scope)
        if not include_deleted:
            where += f" AND NOT {sql.forgotten_sql('m')}"
        from memex.storage.postgres.snapshot import PostgresSnapshot

        return PostgresSnapshot(
            self._db, str(scope.tenant), where, params, history=history, opened=self._keys.opened
        )

    def cached_vectors(self, scope: Scope, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        sql.scope_clause(scope)
        if not hashes:
            return {}
        tenant = str(scope.tenant)
        named = self._keys.digests(tenant, hashes)  # keyed hashes, if the key is loaded
        statements = [reads.vectors_by_hash(tenant, model, builtins.list(named or hashes))]
        if named is None and self._keyring.provider is not None:
            # Whether the tenant is encrypted, asked alongside: no round trip more if not.
            statements.append(keys.key_statement(tenant))
        found, *key = self._db.run(tenant, statements)
        if key and key[0]:
            self._keys.cipher(tenant)
            named = self._keys.digests(tenant, hashes) or {}
            [found] = self._db.run(
                tenant, [reads.vectors_by_hash(tenant, model, builtins.list(named))]
            )
        named = named or {h: h for h in hashes}
        return {named[h]: v.to_numpy().copy() for h, v in found}

    def tenant_keys(self) -> keys.PostgresTenantKeys:
        return keys.PostgresTenantKeys(self._keyring, self._read, self._write)

    def directory(self) -> PostgresDirectory:
        """The store's tenants, users, projects and API keys (storage/postgres/directory.py)."""
        from memex.storage.postgres.directory import PostgresDirectory

        return PostgresDirectory(self._db, self._read_only, audited=self._audited)

    def privacy(self) -> PostgresPrivacy:
        from memex.storage.postgres.privacy import PostgresPrivacy

        return PostgresPrivacy(self._db, self._read_only, self._keyring.opened.drop)

    def audit(self) -> PostgresAuditLog:
        """The store's audit chains (storage/postgres/audit.py)."""
        return PostgresAuditLog(self._db, self._read_only, audited=self._audited)

    def tenants(self) -> builtins.list[str]:
        query = "SELECT DISTINCT tenant FROM memories ORDER BY 1"
        found = self._read(None, lambda c: c.execute(query).fetchall(), all_tenants=True)
        return [str(row[0]) for row in found]

    def changes(self, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
        sql.scope_clause(scope)
        out = dict.fromkeys(keys, 0)
        if keys:
            [found] = self._db.run(scope.tenant, [reads.change_versions(scope, keys)])
            out.update((str(key), int(version)) for key, version in found)
        return out

    def last_context(self, scope: Scope, session: str, prefix_hash: str) -> tuple[str | None, int]:
        sql.scope_clause(scope)
        tenant = str(scope.tenant)
        [[(text, sealed, others)]] = self._db.run(
            tenant, [reads.last_context(tenant, session, prefix_hash)]
        )
        if text is None:
            return None, int(others)
        return self._keys.context(tenant, session, str(text), sealed), int(others)

    def stats(self, scope: Scope, now: datetime) -> StoreStats:
        sql.scope_clause(scope)
        found = self._read(scope.tenant, lambda c: reads.stats(c, scope, to_micros(now)))
        return StoreStats(**found)

    def _model_and_size(self) -> tuple[StoredVectors | None, int]:
        """The stored model and the store's size, read at most every ``_SIZE_SECONDS``
        (a store without vectors yet is asked each time, so its first vectors count)."""
        now = time.monotonic()
        known = self._known
        if known is None or known[0] is None or now - known[2] > _SIZE_SECONDS:
            model, size = read_model_and_size(self._db)
            known = self._known = (model, size, now)
        return known[0], known[1]

    def _size_cached(self) -> int:
        return self._model_and_size()[1]

    # -- copies, indexes and reindex -------------------------------------------------

    def backup(self, target: Path, progress: Progress | None = None) -> int:
        from memex.storage.postgres.backup import backup

        return backup(self._db, target, progress, self._keys)

    def build_indexes(
        self, tenant: str | None, progress: Progress | None = None, *, lagging_only: bool = False
    ) -> None:
        """PostgreSQL keeps its own indexes up to date; the one memex adds is the HNSW
        index of the vectors, built once the store is large enough to use it."""
        if self._read_only is not None:
            return
        self._known = None
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

        try:
            return replace(self._db, model, embed, batch_size, progress, self._keys)
        finally:
            self._known = None


def _driver_error() -> tuple[type[Exception], ...]:
    from memex.storage.postgres.connection import driver_errors

    return driver_errors()

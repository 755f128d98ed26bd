"""SQLiteStore: the embedded backend (WAL, one writer at a time, FTS5, in-memory vectors)."""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from memex.core.episodes import Placement
from memex.core.models import (
    STORED_COLUMNS,
    Memory,
    Scope,
    from_micros,
    stored_memories,
    to_micros,
    utcnow,
)
from memex.core.query import Filters, Order, encode_cursor
from memex.core.ranking import Candidate
from memex.errors import (
    ConflictError,
    EmbedderError,
    MemexError,
    StoreError,
    ValidationError,
)
from memex.storage.base import StoredVectors, Vector, WriteBatch
from memex.storage.sqlite import contexts, lexical, reads, reindex, sql, writes
from memex.storage.sqlite.ann import IndexFiles
from memex.storage.sqlite.connection import Holder, connect, translate, write_transaction
from memex.storage.sqlite.fulltext import FullTextIndex
from memex.storage.sqlite.migrate import upgrade
from memex.storage.sqlite.neighbours import thread_neighbours
from memex.storage.sqlite.purge import truncate_wal
from memex.storage.sqlite.vectors import VectorIndex, bump_epoch

T = TypeVar("T")
_MODEL_KEY = "vectors_model"
_DIMS_KEY = "vectors_dimensions"
_MAX_VARS = 900
_CREATED = STORED_COLUMNS.index("created_at")
_THREAD_COLUMNS = (*sql.SCOPE_COLUMNS.values(), "kind")
_THREAD = ", ".join(f"m.{c}" for c in _THREAD_COLUMNS)


class SQLiteStore:
    """A memex store in one SQLite file, safe for several processes at once."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        ann_min_vectors: int = 50_000,
        ann_probes: int = 48,
        lexical_index_min: int = 1_000,
    ):
        self._path = Path(path)
        self._ann = (ann_min_vectors, ann_probes)
        self._lexical_min = lexical_index_min
        self._fulltext = FullTextIndex(self._path.with_name(self._path.name + ".lexical"))
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._local = threading.local()
        self._holders: weakref.WeakSet[Holder] = weakref.WeakSet()
        self._conn_lock = threading.Lock()
        self._closed = False
        self._index: VectorIndex | None = None
        self._size: tuple[int, float] | None = None
        self._wal_dirty = False  # a purge's page images may still be in the WAL
        if self._path.exists() and self._path.is_dir():
            raise StoreError(f"store path {self._path} is a directory")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self._path.parent}: {exc.strerror}") from exc
        try:
            self._version = upgrade(self._conn(), str(self._path))
            self._tidy(self._conn())
        except sqlite3.Error as exc:
            self.close()
            raise translate(exc, str(self._path)) from exc
        except BaseException:
            self.close()
            raise

    # -- connections ---------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self._path)

    @property
    def _busy_ms(self) -> int:
        return int(self._busy_timeout * 1000)

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection; it is closed when the thread ends or the store closes."""
        if self._closed:
            raise StoreError(f"store {self._path} is closed")
        holder: Holder | None = getattr(self._local, "holder", None)
        if holder is None or holder.pid != os.getpid():
            conn = connect(
                self._path, busy_timeout=self._busy_timeout, synchronous=self._synchronous
            )
            holder = Holder(conn)
            self._local.holder = holder
            with self._conn_lock:
                self._holders.add(holder)
        return holder.conn

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn())
        except sqlite3.Error as exc:
            raise translate(exc, str(self._path)) from exc
        except OverflowError as exc:
            raise ValidationError("a number in the query is too large for the store") from exc

    def _rows(self, query: str, params: Sequence[Any]) -> builtins.list[Any]:
        return self._run(lambda c: c.execute(query, params).fetchall())

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        try:
            with write_transaction(conn, str(self._path)):
                return fn(conn)
        except sqlite3.IntegrityError as exc:
            if "memories.tenant, memories.id" in str(exc):
                raise ConflictError("a memory with that id already exists") from exc
            raise translate(exc, str(self._path)) from exc
        except sqlite3.Error as exc:
            raise translate(exc, str(self._path)) from exc
        except OverflowError as exc:
            raise ValidationError("a number is too large for the store") from exc

    def _tidy(self, conn: sqlite3.Connection) -> None:
        """Clear up after processes killed mid-work, without waiting for any lock:
        staging tables of a reindex, and copies of purged text a purge had not yet
        scrubbed from the write-ahead log and the full-text index."""
        reindex.drop_stale_staging(conn, self._busy_ms)
        if _wal_size(self._path) and self._meta(conn, "purges"):
            self._truncate_wal()
        self._fulltext.scrub(conn, wait=0, insist=False)

    def close(self) -> None:
        if self._closed:
            return
        if self._index is not None:
            index = self._index
            # The approximate index is derived data: failing to save it costs a catch-up
            # on the next open, never a memory, so close still succeeds.
            with contextlib.suppress(OSError, MemexError):
                self._run(index.save)
        if self._size is not None and self._size[0] >= self._lexical_min:
            # Likewise the full-text index: a lag left here is caught up by the next query.
            with contextlib.suppress(Exception):
                self._run(lambda c: self._fulltext.catch_up(c, force=True))
        if self._wal_dirty:
            with contextlib.suppress(MemexError):
                self._run(lambda c: truncate_wal(c, self._busy_ms))
        self._closed = True
        with self._conn_lock:
            for holder in list(self._holders):
                holder.close()
            self._holders.clear()

    def schema_version(self) -> int:
        return self._version

    # -- model bookkeeping -----------------------------------------------------------

    def _meta(self, conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def vectors_model(self) -> StoredVectors | None:
        def read(conn: sqlite3.Connection) -> StoredVectors | None:
            model, dims = self._meta(conn, _MODEL_KEY), self._meta(conn, _DIMS_KEY)
            return None if model is None or dims is None else StoredVectors(model, int(dims))

        return self._run(read)

    def _claim_model(self, conn: sqlite3.Connection, model: StoredVectors) -> None:
        stored = self._meta(conn, _MODEL_KEY)
        if stored is None:
            self._set_meta(conn, _MODEL_KEY, model.model)
            self._set_meta(conn, _DIMS_KEY, str(model.dimensions))
        elif stored != model.model:
            raise EmbedderError(f"store holds vectors of {stored}, not {model.model}")
        if self._index is None or self._index.model != model.model:
            self._index = self._new_index(model)

    # -- writes ------------------------------------------------------------------------

    def write(self, scope: Scope, batch: WriteBatch, model: StoredVectors) -> None:
        sql.scope_clause(scope)  # refuses a scope without a tenant

        def apply(conn: sqlite3.Connection) -> None:
            self._claim_model(conn, model)
            writes.apply_batch(conn, scope, batch, model.dimensions)

        self._write(apply)
        if batch.purges or self._wal_dirty:
            self._truncate_wal()
        if batch.purges:
            try:
                self._run(lambda c: self._fulltext.scrub(c, wait=self._busy_timeout))
            except OSError as exc:
                raise StoreError(
                    f"purged, but the full-text index {self._fulltext.folder} could not be "
                    f"rewritten ({exc.strerror}); delete that folder"
                ) from exc

    def _truncate_wal(self) -> None:
        # A reader still on an older snapshot keeps the log from being truncated; then
        # the next write of a batch tries again, and so does close.
        self._wal_dirty = not self._run(lambda c: truncate_wal(c, self._busy_ms))

    def record_access(self, scope: Scope, accesses: Mapping[str, tuple[int, datetime]]) -> None:
        if not accesses:
            return
        sql.scope_clause(scope)
        rows = [(n, to_micros(at), scope.tenant, mid) for mid, (n, at) in accesses.items()]

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE memories SET access_count = access_count + ?, "
                "last_accessed_at = max(coalesce(last_accessed_at, 0), ?) "
                "WHERE tenant = ? AND id = ?",
                rows,
            )

        self._write(apply)

    # -- reads -------------------------------------------------------------------------

    def get(self, scope: Scope, memory_id: str, *, include_deleted: bool = False) -> Memory | None:
        where, params = sql.scope_clause(scope)
        if not include_deleted:
            where += " AND m.deleted_at IS NULL"
        row = self._run(
            lambda c: c.execute(
                f"SELECT {sql.COLUMNS} FROM memories m WHERE {where} AND m.id = ?",
                [*params, memory_id],
            ).fetchone()
        )
        return None if row is None else stored_memories([row])[0]

    def fetch(self, filters: Filters, keys: Sequence[int]) -> dict[int, Memory]:
        if not keys:
            return {}
        where, params = sql.filter_clause(filters, utcnow())
        rows = self._run(lambda c: reads.by_keys(c, sql.COLUMNS, keys, where, params))
        return dict(zip([r[0] for r in rows], stored_memories(rows), strict=True))

    def boost_inputs(
        self, filters: Filters, keys: Sequence[int]
    ) -> dict[int, tuple[float, datetime]]:
        if not keys:
            return {}
        where, params = sql.filter_clause(filters, utcnow())
        columns = "m.seq, m.importance, m.created_at"
        rows = self._run(lambda c: reads.by_keys(c, columns, keys, where, params))
        return {seq: (importance, from_micros(created)) for seq, importance, created in rows}

    def placements(self, filters: Filters, keys: Sequence[int]) -> dict[int, Placement]:
        if not keys:
            return {}
        where, params = sql.filter_clause(filters, utcnow())
        columns = f"m.seq, {_THREAD}, m.created_at, m.content"
        rows = self._run(lambda c: reads.by_keys(c, columns, keys, where, params))
        end = 1 + len(_THREAD_COLUMNS)  # seq, the thread's columns, created_at, content
        return {r[0]: Placement(r[1:end], r[end], r[end + 1]) for r in rows}

    def neighbours(
        self, filters: Filters, keys: Sequence[int], radius: int
    ) -> dict[int, builtins.list[int]]:
        if not keys or radius <= 0:
            return {}
        return self._run(lambda c: thread_neighbours(c, filters, keys, radius, utcnow()))

    def search_lexical(
        self, filters: Filters, terms: Sequence[str], limit: int
    ) -> builtins.list[Candidate]:
        if not terms or limit <= 0:
            return []
        size = self._size_cached()
        if size >= self._lexical_min:
            found = self._run(lambda c: self._fulltext.search(c, filters, terms, limit))
            if found is not None:
                return found
        return self._run(lambda c: lexical.search(c, filters, terms, limit, size))

    def _prune_common(self, terms: Sequence[str]) -> Sequence[str]:
        size = self._size_cached()
        return self._run(lambda c: lexical.prune_common(c, terms, size))

    def _size_cached(self) -> int:
        now = time.monotonic()
        if self._size is None or now - self._size[1] > 30:
            self._size = (self.size_estimate(), now)
        return self._size[0]

    def search_vector(
        self, filters: Filters, vector: Vector, limit: int
    ) -> builtins.list[Candidate]:
        index = self._vector_index()
        tenant = filters.scope.tenant
        if index is None or tenant is None or limit <= 0:
            return []
        if vector.shape != (index.dims,):
            raise ValidationError(
                f"query vector has shape {vector.shape}; the store's vectors have {index.dims} "
                "dimensions"
            )

        def search(conn: sqlite3.Connection) -> builtins.list[Candidate]:
            # Broad filters: the nearest few times `limit` rows usually pass, so check
            # just those; if too few pass, try once more with a pool sized by the share
            # that passed. Narrow filters: score only the rows SQL says may be returned.
            total = index.count(conn, tenant)
            pool = min(filters.pool(limit, ("tenant", "project")), total)
            project = filters.scope.project
            for _ in range(2):
                found = index.search(conn, tenant, vector, pool, project=project, refresh=False)
                passing = reads.passing(conn, filters, [c.key for c in found])
                kept = [c for c in found if c.key in passing]
                if len(kept) >= limit or pool >= total:
                    return kept[:limit]
                share = max(len(kept), 1) / max(len(found), 1)
                pool = min(int(limit / share * 1.5) + 1, total)
                if pool > max(limit * 64, total // 8):
                    break
            where, params = sql.filter_clause(filters, utcnow())
            allowed = np.fromiter(
                (r[0] for r in conn.execute(f"SELECT m.seq FROM memories m WHERE {where}", params)),
                dtype=np.int64,
            )
            return index.search(
                conn, tenant, vector, limit, allowed=allowed, project=project, refresh=False
            )

        return self._run(search)

    def _vector_index(self) -> VectorIndex | None:
        """The in-memory index, created once the store has vectors (from any process)."""
        if self._index is None:
            model = self.vectors_model()
            if model is not None:
                self._index = self._new_index(model)
        return self._index

    def _new_index(self, model: StoredVectors) -> VectorIndex:
        return VectorIndex(
            model.model,
            model.dimensions,
            files=IndexFiles(self._path.with_name(self._path.name + ".ann")),
            ann_min_vectors=self._ann[0],
            probes=self._ann[1],
        )

    def list(
        self, filters: Filters, order: Order, limit: int, cursor: str | None
    ) -> tuple[builtins.list[Memory], str | None]:
        query, params = sql.list_query(filters, utcnow(), order, limit, cursor)
        rows = self._rows(query, params)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit and page:
            next_cursor = encode_cursor(page[-1][_CREATED], page[-1][0])
        return stored_memories(page), next_cursor

    def range(
        self, filters: Filters, start: datetime | None, end: datetime | None, limit: int | None
    ) -> builtins.list[Memory]:
        query, params = sql.range_query(filters, utcnow(), start, end, limit)
        return stored_memories(self._rows(query, params))

    def history(self, scope: Scope, memory_id: str) -> builtins.list[Memory]:
        return stored_memories(self._run(lambda c: reads.history(c, scope, memory_id)))

    def expired(self, scope: Scope, now: datetime) -> builtins.list[Memory]:
        where, params = sql.scope_clause(scope)
        rows = self._run(
            lambda c: c.execute(
                f"SELECT {sql.COLUMNS} FROM memories m WHERE {where} AND m.deleted_at IS NULL "
                "AND m.expires_at IS NOT NULL AND m.expires_at <= ? ORDER BY m.seq",
                [*params, to_micros(now)],
            ).fetchall()
        )
        return stored_memories(rows)

    def cached_vectors(self, scope: Scope, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        stored = self.vectors_model()
        if not hashes or stored is None or stored.model != model:
            return {}
        found = self._run(lambda c: reads.vectors_by_hash(c, str(scope.tenant), hashes))
        return {h: np.frombuffer(blob, dtype=np.float32).copy() for h, blob in found.items()}

    def last_context(self, scope: Scope, session: str) -> str | None:
        sql.scope_clause(scope)
        return self._run(lambda c: contexts.last_context(c, str(scope.tenant), session))

    def save_context(
        self, scope: Scope, session: str, text: str, prefix_hash: str, ids: Sequence[str]
    ) -> int:
        sql.scope_clause(scope)
        tenant = str(scope.tenant)
        return self._write(
            lambda c: contexts.save_context(c, tenant, session, text, prefix_hash, ids)
        )

    def size_estimate(self) -> int:
        row = self._run(lambda c: c.execute("SELECT max(seq) FROM memories").fetchone())
        return int(row[0] or 0)

    def change_versions(self, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
        sql.scope_clause(scope)
        return self._run(lambda c: contexts.change_versions(c, scope, keys))

    def stats(self, scope: Scope, now: datetime) -> dict[str, Any]:
        sql.scope_clause(scope)  # refuses a scope without a tenant
        found = self._run(lambda c: reads.stats(c, scope, to_micros(now)))
        found["size_bytes"] += _wal_size(self._path)
        return found

    # -- reindex -----------------------------------------------------------------------

    def iter_contents(self, batch_size: int) -> Iterator[builtins.list[tuple[int, str, str]]]:
        last = 0
        query = "SELECT seq, tenant, content FROM memories WHERE seq > ? ORDER BY seq LIMIT ?"
        while rows := self._rows(query, (last, batch_size)):
            last = rows[-1][0]
            yield [(int(s), str(t), str(c)) for s, t, c in rows]

    def replace_vectors(
        self, model: StoredVectors, batches: Iterator[builtins.list[tuple[int, str, Vector]]]
    ) -> int:
        staging = reindex.staging_name()
        self._write(lambda c: reindex.create_staging(c, staging))
        try:
            count = 0
            for batch in batches:
                rows = [(k, h, writes.blob(v, model.dimensions)) for k, h, v in batch]
                self._write(lambda c, rows=rows: reindex.stage(c, staging, rows))  # type: ignore[misc]
                count += len(rows)

            def swap(conn: sqlite3.Connection) -> None:
                reindex.swap(conn, staging)
                self._set_meta(conn, _MODEL_KEY, model.model)
                self._set_meta(conn, _DIMS_KEY, str(model.dimensions))
                bump_epoch(conn)

            self._write(swap)
        finally:
            self._write(lambda c: reindex.drop_tables(c, [staging]))
        self._index = self._new_index(model)
        return count


def _wal_size(path: Path) -> int:
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0

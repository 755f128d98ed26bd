"""SQLiteStore: the embedded backend (WAL, one writer at a time, FTS5, in-memory vectors)."""

from __future__ import annotations

import builtins
import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from memex.core.models import (
    STORED_COLUMNS,
    Memory,
    Scope,
    from_micros,
    stored_memories,
    to_micros,
    utcnow,
)
from memex.core.progress import Progress
from memex.core.query import Filters, Order, encode_cursor
from memex.errors import (
    ConflictError,
    EmbedderError,
    MemexError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
    ValidationError,
)
from memex.storage.base import StoredVectors, Vector, WriteBatch
from memex.storage.sqlite import contexts, lexical, reads, reindex, sql, writes
from memex.storage.sqlite.changes import bump_epoch
from memex.storage.sqlite.connection import (
    Connections,
    prepare,
    translate,
    without_waiting,
    write_transaction,
)
from memex.storage.sqlite.fulltext_mark import read_mark, store_meta
from memex.storage.sqlite.migrate import require_current, upgrade
from memex.storage.sqlite.neighbours import thread_neighbours
from memex.storage.sqlite.purge import truncate_wal
from memex.storage.sqlite.snapshot import SQLiteSnapshot

if TYPE_CHECKING:
    from memex.core.episodes import Placement
    from memex.core.ranking import Candidate
    from memex.storage.sqlite.fulltext import FullTextIndex
    from memex.storage.sqlite.vectors import VectorIndex

T = TypeVar("T")
_MODEL_KEY = "vectors_model"
_DIMS_KEY = "vectors_dimensions"
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
        read_only: bool = False,
    ):
        self._path = Path(path)
        self._ann = (ann_min_vectors, ann_probes)
        self._lexical_min = lexical_index_min
        self._read_only = prepare(self._path, read_only=read_only)
        self._connections = self._connect(busy_timeout, synchronous)
        writable = self._read_only is None
        self._fulltext_index: FullTextIndex | None = None
        self._index: VectorIndex | None = None
        self._size: tuple[int, float] | None = None
        self._wal_dirty = False  # a purge's page images may still be in the WAL
        try:
            if writable:
                self._version = upgrade(self._conn(), str(self._path))
                self._tidy(self._conn())
            else:
                self._version = require_current(self._conn(), str(self._path))
        except sqlite3.Error as exc:
            self.close()
            raise translate(exc, str(self._path)) from exc
        except BaseException:
            self.close()
            raise

    def _connect(self, busy_timeout: float, synchronous: str) -> Connections:
        """This thread's first connection; a store on a full device is opened read-only."""

        def first(read_only: bool) -> Connections:
            connections = Connections(
                self._path, busy_timeout=busy_timeout, synchronous=synchronous, read_only=read_only
            )
            connections.get()
            return connections

        try:
            return first(self._read_only is not None)
        except StoreFullError:
            if self._read_only is not None:
                raise
            # SQLite cannot create the shared-memory file a writer needs; reading needs none.
            self._read_only = "no space left on the device"
            return first(True)

    # -- connections ---------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self._path)

    @property
    def read_only(self) -> str | None:
        return self._read_only

    @property
    def _busy_ms(self) -> int:
        return int(self._connections.busy_timeout * 1000)

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn())
        except sqlite3.Error as exc:
            raise translate(exc, str(self._path)) from exc
        except OverflowError as exc:
            raise ValidationError("a number in the query is too large for the store") from exc

    def _rows(self, query: str, params: Sequence[Any]) -> builtins.list[Any]:
        return self._run(lambda c: c.execute(query, params).fetchall())

    def _write(self, fn: Callable[[sqlite3.Connection], T], *, wait: bool = True) -> T:
        """Run ``fn`` in a write transaction; without ``wait``, fail at once if another
        process holds the write lock (StoreLockedError) rather than wait for it."""
        if self._read_only is not None:
            raise StoreReadOnlyError.refused(str(self._path), self._read_only)
        conn = self._conn()
        waiting: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if not wait:
            waiting = without_waiting(conn, self._connections.busy_timeout)
        try:
            with waiting, write_transaction(conn, str(self._path)):
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
        store_id, purges = store_meta(conn)
        if not purges:
            return
        if _wal_size(self._path):
            self._truncate_wal()
        # Only an index whose watermark predates the last purge has anything to scrub; the
        # watermark is read without loading tantivy, which an open then rarely needs.
        found = read_mark(self._lexical_folder, store_id)
        if found is not None and found[0].purges < purges:
            self._fulltext.scrub(conn, wait=0, insist=False)

    def close(self) -> None:
        if self._connections.closed:
            return
        if self._index is not None and self._read_only is None:
            index = self._index
            # The approximate index is derived data: failing to save it costs a catch-up
            # on the next open, never a memory, so close still succeeds.
            with contextlib.suppress(OSError, MemexError):
                index.save()
        size = self._size[0] if self._size is not None else 0
        if self._read_only is None and size >= self._lexical_min:
            # Likewise the full-text index, and only a lag too large for a query to score
            # itself: committing a few rows would cost every short-lived process a commit.
            with contextlib.suppress(Exception):
                self._run(lambda c: self._fulltext.catch_up(c))
        if self._wal_dirty:
            with contextlib.suppress(MemexError):
                self._truncate_wal()
        if self._fulltext_index is not None:
            self._fulltext_index.close()
        self._connections.close()

    def schema_version(self) -> int:
        return self._version

    @property
    def _lexical_folder(self) -> Path:
        return self._path.with_name(self._path.name + ".lexical")

    @property
    def _fulltext(self) -> FullTextIndex:
        """The tantivy index beside the store, loaded when first needed: a process that
        never searches text (a command-line `get`) does not load tantivy."""
        if self._fulltext_index is None:
            from memex.storage.sqlite.fulltext import FullTextIndex

            self._fulltext_index = FullTextIndex(
                self._lexical_folder,
                writable=self._read_only is None,
            )
        return self._fulltext_index

    def files(self) -> builtins.list[Path]:
        index = self._fulltext_index
        copy = index.private_copy if index is not None else None
        from memex.storage.sqlite import backup

        return [*backup.owned_paths(self._path), *([copy] if copy is not None else [])]

    # -- copies ----------------------------------------------------------------------

    def snapshot(self, scope: Scope, *, include_deleted: bool, history: bool) -> SQLiteSnapshot:
        where, params = sql.scope_clause(scope)
        if not include_deleted:
            where += f" AND NOT {sql.forgotten_sql('m')}"
        # A connection of its own: its read transaction spans the whole iteration.
        conn = self._connections.separate()
        return SQLiteSnapshot(conn, str(self._path), where, params, history=history)

    def backup(self, target: Path, progress: Progress | None = None) -> int:
        # A connection of its own: its read transaction spans the whole copy.
        conn = self._connections.separate()
        try:
            from memex.storage.sqlite import backup

            return backup.backup(conn, target, progress)
        except sqlite3.Error as exc:
            raise translate(exc, str(self._path)) from exc
        finally:
            conn.close()

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
        if self._index is not None and self._index.model != model.model:
            self._index = None  # made again, for the new model, when next searched

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
                self._run(lambda c: self._fulltext.scrub(c, wait=self._connections.busy_timeout))
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

        self._write(apply, wait=False)

    # -- reads -------------------------------------------------------------------------

    def get(self, scope: Scope, memory_id: str, *, include_deleted: bool = False) -> Memory | None:
        # Any valid time: superseded and pending memories are found by id.
        visible = Filters(scope=scope, include_deleted=include_deleted, include_superseded=True)
        where, params = sql.filter_clause(visible, utcnow())
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
        from memex.core.episodes import Placement

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

        from memex.storage.sqlite.nearest import nearest

        return self._run(lambda c: nearest(c, index, tenant, filters, vector, limit))

    def build_indexes(
        self, tenant: str | None, progress: Progress | None = None, *, lagging_only: bool = False
    ) -> None:
        built = True
        if self.size_estimate() >= self._lexical_min:
            text = functools.partial(
                self._fulltext.build, progress=progress, lagging_only=lagging_only
            )
            built = self._derived(text)
        index = self._vector_index()
        if index is not None:
            query = "SELECT DISTINCT tenant FROM vectors"
            for name in [tenant] if tenant else [r[0] for r in self._rows(query, ())]:
                self._derived(
                    functools.partial(
                        index.build, tenant=name, progress=progress, lagging_only=lagging_only
                    )
                )
        if not built:
            raise StoreLockedError("another process is writing the full-text index; try again")

    def _derived(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn``, which writes a derived index: its own failures become StoreError."""
        try:
            return self._run(fn)
        except (OSError, ValueError) as exc:
            if isinstance(exc, MemexError):
                raise
            raise StoreError(f"cannot write the search indexes beside {self._path}: {exc}") from exc

    def _vector_index(self) -> VectorIndex | None:
        """The in-memory index, created once the store has vectors (from any process)."""
        if self._index is None:
            model = self.vectors_model()
            if model is not None:
                self._index = self._new_index(model)
        return self._index

    def _new_index(self, model: StoredVectors) -> VectorIndex:
        from memex.storage.sqlite.ann import IndexFiles
        from memex.storage.sqlite.vectors import VectorIndex

        folder = self._path.with_name(self._path.name + ".ann")
        return VectorIndex(
            model.model,
            model.dimensions,
            files=IndexFiles(folder, writable=self._read_only is None),
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
        import numpy as np

        return {h: np.frombuffer(blob, dtype=np.float32).copy() for h, blob in found.items()}

    def last_context(self, scope: Scope, session: str, prefix_hash: str) -> tuple[str | None, int]:
        sql.scope_clause(scope)
        tenant = str(scope.tenant)
        return self._run(lambda c: contexts.last_context(c, tenant, session, prefix_hash))

    def save_context(
        self, scope: Scope, session: str, text: str, prefix_hash: str, ids: Sequence[str]
    ) -> None:
        sql.scope_clause(scope)
        tenant = str(scope.tenant)
        self._write(
            lambda c: contexts.save_context(c, tenant, session, text, prefix_hash, ids),
            wait=False,
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

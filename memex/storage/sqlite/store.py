"""SQLiteStore: the embedded backend (WAL, one writer at a time, FTS5, in-memory vectors)."""

from __future__ import annotations

import builtins
import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from memex.core.models import Memory, Scope, to_micros, utcnow
from memex.core.progress import Progress, Tally
from memex.core.query import Filters, Order
from memex.errors import (
    MemexError,
    StoreError,
    StoreLockedError,
)
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
from memex.storage.sqlite import (
    candidates,
    contexts,
    keys,
    lexical,
    reads,
    reindex,
    rows,
    sql,
    writes,
)
from memex.storage.sqlite.access import Access
from memex.storage.sqlite.audit import SQLiteAuditLog
from memex.storage.sqlite.connection import (
    open_connections,
    owned_paths,
    prepare,
    translate,
    wal_size,
)
from memex.storage.sqlite.directory import SQLiteDirectory
from memex.storage.sqlite.fulltext_mark import read_mark, store_meta
from memex.storage.sqlite.migrate import require_current, upgrade
from memex.storage.sqlite.model import claim_model, model_and_size, stored_model
from memex.storage.sqlite.privacy import WAL_HELD, SQLitePrivacy
from memex.storage.sqlite.purge import truncate_wal
from memex.storage.sqlite.snapshot import SQLiteSnapshot
from memex.storage.sqlite.visibility import Visibility

if TYPE_CHECKING:
    from memex.core.ranking import Candidate
    from memex.storage.sqlite.fulltext import FullTextIndex
    from memex.storage.sqlite.vectors import VectorIndex

T = TypeVar("T")
SCOPE = tuple(sql.SCOPE_COLUMNS)  # the scope fields the full-text index matches itself
AT = ("tenant", "project")  # and those the vector index does
Ids = dict[int, str]


class SQLiteStore(Access):
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
        master_key: KeyProvider | None = None,
        audit: bool = True,
    ):
        self._path = Path(path)
        self._audited = audit  # False: no audit entries are appended (the ``audit`` setting)
        self._keyring = Keyring(master_key)
        self._ann = (ann_min_vectors, ann_probes)
        self._lexical_min = lexical_index_min
        self._read_only = prepare(self._path, read_only=read_only)
        self._connections, self._read_only = open_connections(
            self._path, busy_timeout, synchronous, self._read_only, self._keyring.plain
        )
        writable = self._read_only is None
        self._fulltext_index: FullTextIndex | None = None
        self._index: VectorIndex | None = None
        self._size: tuple[int, float] | None = None
        self._visibility = Visibility()
        # The tenant, ids and keys of the last candidates read (by any thread: another
        # thread's recall replaces them, and a page then takes the (tenant, id) index).
        self._recent_keys: tuple[str | None, dict[str, int]] = (None, {})
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

    def directory(self) -> SQLiteDirectory:
        return SQLiteDirectory(self._run, self._write, audited=self._audited)

    def tenant_keys(self) -> keys.SQLiteTenantKeys:
        return keys.SQLiteTenantKeys(self._keyring, self._run, self._write)

    def audit(self) -> SQLiteAuditLog:
        return SQLiteAuditLog(self._run, self._write, audited=self._audited)

    # -- connections ---------------------------------------------------------------

    def info(self) -> StoreInfo:
        vectors, memories = self._run(model_and_size)  # one statement
        return StoreInfo(
            location=str(self._path),
            read_only=self._read_only,
            schema_version=self._version,
            vectors=vectors,
            memories=memories,
            files=tuple(self._files()),
        )

    def _tidy(self, conn: sqlite3.Connection) -> None:
        """Clear up after processes killed mid-work, without waiting for any lock:
        staging tables of a reindex, and copies of purged text a purge had not yet
        scrubbed from the write-ahead log and the full-text index."""
        reindex.drop_stale_staging(conn, self._busy_ms)
        store_id, purges = store_meta(conn)
        if not purges:
            return
        if wal_size(self._path):
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

    def _files(self) -> builtins.list[Path]:
        index = self._fulltext_index
        copy = index.private_copy if index is not None else None
        return [*owned_paths(self._path), *([copy] if copy is not None else [])]

    # -- copies ----------------------------------------------------------------------

    def snapshot(self, scope: Scope, *, include_deleted: bool, history: bool) -> SQLiteSnapshot:
        where, params = sql.scope_clause(scope)
        if not include_deleted:
            where += f" AND NOT {sql.forgotten_sql('m')}"
        # A connection of its own: its read transaction spans the whole iteration.
        self._run(lambda c: keys.preload(c, self._keyring, str(scope.tenant)))
        conn = self._connections.separate()
        keyring = self._keyring
        return SQLiteSnapshot(
            conn, str(self._path), where, params, history=history,
            opener=keyring.open_row, failure=keyring.failure,
        )  # fmt: skip

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

    def _vectors_model(self) -> StoredVectors | None:
        return self._run(stored_model)

    def _claim_model(self, conn: sqlite3.Connection, vectors: StoredVectors) -> None:
        claim_model(conn, vectors)
        if self._index is not None and self._index.model != vectors.model:
            self._index = None  # made again, for the new model, when next searched

    # -- writes ------------------------------------------------------------------------

    def write(self, scope: Scope, batch: WriteBatch, model: StoredVectors) -> None:
        sql.scope_clause(scope)  # refuses a scope without a tenant

        def apply(conn: sqlite3.Connection) -> None:
            self._claim_model(conn, model)
            cipher = keys.write_cipher(conn, self._keyring, str(scope.tenant))
            writes.apply_batch(conn, scope, batch, model.dimensions, cipher, self._audited)

        self._write(apply)
        if batch.purges:
            self._keyring.opened.drop(str(scope.tenant))
        if batch.purges or self._wal_dirty:
            self._truncate_wal()
        if batch.purges:
            self._scrub_index()

    def _scrub_index(self) -> None:
        try:
            self._run(lambda c: self._fulltext.scrub(c, wait=self._connections.busy_timeout))
        except OSError as exc:
            raise StoreError(
                f"purged, but the full-text index {self._fulltext.folder} could not be "
                f"rewritten ({exc.strerror}); delete that folder"
            ) from exc

    def privacy(self) -> SQLitePrivacy:
        return SQLitePrivacy(self._run, self._write, self._scrub_files, self._keyring.opened.drop)

    def _scrub_files(self) -> tuple[str, ...]:
        """After an erasure: empty the write-ahead log, rewrite the tantivy index."""
        self._truncate_wal()
        self._scrub_index()
        return (WAL_HELD,) if self._wal_dirty else ()

    def _truncate_wal(self) -> None:
        # A reader still on an older snapshot keeps the log from being truncated; then
        # the next write of a batch tries again, and so does close.
        self._wal_dirty = not self._run(lambda c: truncate_wal(c, self._busy_ms))

    def record(
        self,
        scope: Scope,
        accesses: Mapping[str, tuple[int, datetime]] | None = None,
        context: SavedContext | None = None,
    ) -> None:
        sql.scope_clause(scope)  # refuses a scope without a tenant
        tenant = str(scope.tenant)
        counts = [(n, to_micros(at), tenant, mid) for mid, (n, at) in (accesses or {}).items()]
        if not counts and context is None:
            return

        def apply(conn: sqlite3.Connection) -> None:
            contexts.record_reads(conn, counts)
            if context is not None:
                cipher = keys.write_cipher(conn, self._keyring, tenant)
                contexts.save_context(
                    conn, tenant, context.session, context.text, context.prefix_hash,
                    context.ids, cipher,
                )  # fmt: skip

        self._write(apply, wait=False)

    # -- reads -------------------------------------------------------------------------

    def fetch(self, filters: Filters, ids: Sequence[str]) -> dict[str, Memory]:
        if not ids:
            sql.scope_clause(filters.scope)  # refuses a scope without a tenant
            return {}
        if len(ids) == 1:  # get: one indexed lookup
            where, params = sql.filter_clause(filters, utcnow())  # refuses a tenantless scope
            query = f"SELECT {sql.COLUMNS} FROM memories m WHERE m.id = ? AND {where}"
            found = self._opened_rows(lambda c: c.execute(query, [ids[0], *params]).fetchall())
            return {ids[0]: rows.memories(found)[0]} if found else {}
        # The last recall's candidates (of whichever thread asked last): its page is
        # found by key. Ids are unique within a tenant only.
        tenant, recent = self._recent_keys
        keys = recent if tenant == filters.scope.tenant else {}
        found = self._opened_rows(lambda c: reads.by_ids(c, filters, ids, keys))
        memories = rows.memories(found)
        return dict(zip([row[1] for row in found], memories, strict=True))

    def candidates(self, filters: Filters, query: CandidateQuery) -> Candidates:
        sql.scope_clause(filters.scope)  # refuses a scope without a tenant
        tenant = str(filters.scope.tenant)
        self._run(lambda c: self._visibility.refresh(c, tenant))
        ids: dict[int, str] = {}  # what the legs read while checking the filters
        lexical = self._search_lexical(filters, query.terms, query.limit, ids)
        vector = self._search_vector(filters, query.vector, query.limit, ids)
        seen = self._visibility
        found = self._run(
            lambda c: candidates.gather(
                c, filters, query, lexical, vector, ids, self._keyring.open_contents, seen
            )
        )
        # The page asked for next is among these: fetch finds it by key, not by id.
        self._recent_keys = (tenant, {i: k for k, i in found.ids.items()})
        return found

    def _search_lexical(
        self, filters: Filters, terms: Sequence[str], limit: int, ids: dict[int, str]
    ) -> builtins.list[Candidate]:
        if not terms or limit <= 0:
            return []
        size = self._size_cached()
        if size >= self._lexical_min:
            found = self._run(lambda c: self._search_fulltext(c, filters, terms, limit, ids))
            if found is not None:
                return found
        return self._run(lambda c: lexical.search(c, filters, terms, limit, size))

    def _search_fulltext(
        self, conn: sqlite3.Connection, filters: Filters, terms: Sequence[str], limit: int, ids: Ids
    ) -> builtins.list[Candidate] | None:
        check, alone = self._visibility.check(conn, filters, SCOPE, ids)
        implied = ("tenant",) if alone else ()  # the tenant need not be matched
        return self._fulltext.search(conn, filters, terms, limit, check, implied)

    def _size_cached(self) -> int:
        now = time.monotonic()
        if self._size is None or now - self._size[1] > 30:
            self._size = (self._size_estimate(), now)
        return self._size[0]

    def _search_vector(
        self, filters: Filters, vector: Vector | None, limit: int, ids: dict[int, str]
    ) -> builtins.list[Candidate]:
        index = self._vector_index() if vector is not None else None
        tenant = filters.scope.tenant
        if vector is None or index is None or tenant is None or limit <= 0:
            return []
        from memex.storage.sqlite.nearest import nearest

        check = self._visibility.check
        return self._run(
            lambda c: nearest(
                c, index, tenant, filters, vector, limit, check(c, filters, AT, ids)[0]
            )
        )

    def build_indexes(
        self, tenant: str | None, progress: Progress | None = None, *, lagging_only: bool = False
    ) -> None:
        built = True
        if self._size_estimate() >= self._lexical_min:
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
            model = self._vectors_model()
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
        self, filters: Filters, order: Order, limit: int | None, cursor: str | None
    ) -> tuple[builtins.list[Memory], str | None]:
        query, params = sql.list_query(filters, utcnow(), order, limit, cursor)
        found = self._opened_rows(lambda c: c.execute(query, params).fetchall())
        page = found if limit is None else found[:limit]
        next_cursor = None
        if limit is not None and len(found) > limit and page:
            next_cursor = rows.encode_cursor(page[-1][rows.CREATED], page[-1][0])
        return rows.memories(page), next_cursor

    def history(self, scope: Scope, memory_id: str) -> builtins.list[Memory]:
        found = self._opened_rows(lambda c: reads.history(c, scope, memory_id))
        return rows.memories(found)

    def cached_vectors(self, scope: Scope, model: str, hashes: Sequence[str]) -> dict[str, Vector]:
        stored = self._vectors_model()
        if not hashes or stored is None or stored.model != model:
            return {}
        tenant = str(scope.tenant)
        cipher = self._run(lambda c: keys.preload(c, self._keyring, tenant))
        digests = {cipher.digest(h): h for h in hashes} if cipher else {h: h for h in hashes}
        found = self._run(lambda c: reads.vectors_by_hash(c, tenant, builtins.list(digests)))
        import numpy as np

        return {digests[h]: np.frombuffer(b, dtype=np.float32).copy() for h, b in found.items()}

    def last_context(self, scope: Scope, session: str, prefix_hash: str) -> tuple[str | None, int]:
        sql.scope_clause(scope)
        tenant = str(scope.tenant)
        return self._run(
            lambda c: contexts.last_context(c, tenant, session, prefix_hash, self._keyring)
        )

    def tenants(self) -> builtins.list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT tenant FROM memories ORDER BY 1", ())]

    def _size_estimate(self) -> int:
        row = self._run(lambda c: c.execute("SELECT max(seq) FROM memories").fetchone())
        return int(row[0] or 0)

    def changes(self, scope: Scope, keys: Sequence[str]) -> dict[str, int]:
        sql.scope_clause(scope)
        return self._run(lambda c: contexts.change_versions(c, scope, keys))

    def stats(self, scope: Scope, now: datetime) -> StoreStats:
        sql.scope_clause(scope)  # refuses a scope without a tenant
        found = self._run(lambda c: reads.stats(c, scope, to_micros(now)))
        found["size_bytes"] += wal_size(self._path)
        return StoreStats(**found)

    # -- reindex -----------------------------------------------------------------------

    def replace_vectors(
        self,
        model: StoredVectors,
        embed: Callable[[Sequence[str]], Vector],
        batch_size: int,
        progress: Progress | None = None,
    ) -> int:
        count = reindex.replace(
            self._write, self._rows, model, embed, batch_size, Tally(progress, "embedding")
        )
        self._index = self._new_index(model)
        return count

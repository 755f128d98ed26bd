"""Per-tenant vector search, kept in step with the SQLite source of truth.

The ``vectors`` table is authoritative. A tenant's vectors are searched exactly, from
one contiguous float32 matrix, until the tenant holds ``ann_min_vectors``; from then on
from an approximate inverted-file index (see ``ann.py``) that is saved beside the store
and loaded, not rebuilt, by the next process. Either way the in-memory state records a
watermark: the highest vector key it holds and the last entry of ``index_changes`` (the
log of removed and replaced vectors) it applied. Each refresh replays what is newer, so
rows added or changed by this or any other process are picked up, and a lost, stale or
foreign index file is rebuilt from the table, never trusted over it. A reindex (a new
model or epoch) or a restore (a new store id) starts every tenant afresh. ``build`` does
ahead of time, with progress, what the next search would otherwise do: after a large
write, or when asked.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from memex import log
from memex.core.progress import Progress, Tally
from memex.core.ranking import Candidate
from memex.errors import EmbedderMismatchError
from memex.storage.sqlite import reads
from memex.storage.sqlite.ann import (
    TRAIN_PER_LIST,
    FileKey,
    IndexFiles,
    IvfIndex,
    Keys,
    Matrix,
    Saved,
    Watermark,
    bitmap,
    list_count,
)
from memex.storage.sqlite.changes import EPOCH_KEY
from memex.storage.sqlite.connection import write_failure
from memex.storage.sqlite.tenant_vectors import TenantVectors, rows_of
from memex.storage.sqlite.vector_marks import PROBE, count_after, generation, watermark

REPLAY_MIN = 10_000
_CHUNK = 16_384  # rows read and added per step
_SAVE_RETRY_SECONDS = 60.0


def save_due(unsaved: int, size: int) -> bool:
    """Whether an approximate index of ``size`` vectors, ``unsaved`` of them changed since
    its file was written, should be saved now: when none of it is saved yet, or when the
    next process to load the file would replay a tenth of it (at least ``REPLAY_MIN``)."""
    return unsaved > 0 and unsaved >= min(size, max(REPLAY_MIN, size // 10))


class VectorIndex:
    """Cosine search (vectors are unit length) over per-tenant exact or approximate indexes."""

    def __init__(
        self,
        model: str,
        dims: int,
        *,
        files: IndexFiles | None = None,
        ann_min_vectors: int = 50_000,
        probes: int = 48,
    ) -> None:
        self.model = model
        self.dims = dims
        self.files = files
        self.ann_min_vectors = ann_min_vectors
        self.probes = probes
        self._tenants: dict[str, TenantVectors] = {}
        self._counted: dict[str, tuple[int, int]] = {}  # tenant -> (vectors, highest key)
        self._lock = threading.Lock()

    # -- keeping up with the table ----------------------------------------------------

    def _refresh(
        self, conn: sqlite3.Connection, tenant: str, progress: Progress | None = None
    ) -> TenantVectors:
        model, store_id, epoch = generation(conn)
        if model is not None and model != self.model:
            raise EmbedderMismatchError(
                f"the store's vectors now come from {model} (reindexed or restored by "
                "another process); open it again to use that model"
            )
        newest = watermark(conn, tenant)
        state = self._tenants.get(tenant)
        if state is None or state.epoch != epoch or state.store_id != store_id:
            key = FileKey(store_id, tenant, self.model, epoch)
            state = self._start(conn, tenant, key, newest, progress)
            self._tenants[tenant] = state
        total = 0
        if progress is not None:  # counted only for a caller who shows it
            total = count_after(conn, "vectors", "seq", tenant, state.max_key)
            total += count_after(conn, "index_changes", "pos", tenant, state.change_pos)
        tally = Tally(progress if total else None, "indexing vectors", total)
        if newest.change_pos > state.change_pos:
            self._apply_changes(conn, state, tenant, tally)
        if newest.max_key > state.max_key:
            self._load_rows(conn, state, tenant, tally)
        if state.ivf is None and state.size >= self.ann_min_vectors:
            self._convert(state)
        if state.ivf is not None and save_due(state.unsaved, state.size):
            self._save(tenant, state, progress)
        return state

    def _start(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        key: FileKey,
        newest: Watermark,
        progress: Progress | None = None,
    ) -> TenantVectors:
        """A tenant's state: from its index file if one is usable, else a new one (trained
        on a sample of the table if the tenant is large) for the caller to fill."""
        epoch, store_id = key.epoch, key.store_id
        if self.files is not None:
            # Key numbers are never reused, so a file claiming a key above the store's
            # high-water mark belongs to another (restored or replaced) store.
            limit = Watermark(reads.high_key(conn), newest.change_pos)
            saved = self.files.load(key, limit)
            if saved is not None:
                state = TenantVectors(
                    dims=self.dims,
                    epoch=epoch,
                    store_id=store_id,
                    max_key=saved.mark.max_key,
                    change_pos=saved.mark.change_pos,
                    size=len(saved.keys),
                    keys=saved.keys,
                    projects=saved.projects,
                    codes={name: i for i, name in enumerate(saved.project_names)},
                    ivf=saved.index,
                )
                return state
        # Changes logged before now are already reflected in the table.
        state = TenantVectors(
            dims=self.dims, epoch=epoch, store_id=store_id, change_pos=newest.change_pos
        )
        count = conn.execute("SELECT count(*) FROM vectors WHERE tenant = ?", (tenant,)).fetchone()
        if count[0] >= self.ann_min_vectors:
            state.ivf = self._train_from_table(conn, tenant, int(count[0]), progress)
            state.matrix = None
        return state

    def _train_from_table(
        self, conn: sqlite3.Connection, tenant: str, count: int, progress: Progress | None
    ) -> IvfIndex:
        """Train on a random sample read from the table, without loading every vector."""
        nlist = list_count(count)
        keys = np.fromiter(
            (r[0] for r in conn.execute("SELECT seq FROM vectors WHERE tenant = ?", (tenant,))),
            dtype=np.int64,
        )
        rng = np.random.default_rng(len(keys))
        sample = np.sort(rng.choice(keys, min(len(keys), nlist * TRAIN_PER_LIST), replace=False))
        rows = reads.in_chunks(
            conn, "SELECT vector FROM vectors WHERE seq IN ({marks})", sample.tolist()
        )
        blobs = [r[0] for r in rows]
        return IvfIndex.train(rows_of(blobs, self.dims), self.dims, nlist, progress)

    def _convert(self, state: TenantVectors) -> None:
        """Move a tenant that outgrew exact search onto an approximate index."""
        assert state.matrix is not None
        matrix = state.matrix[: state.size]
        nlist = list_count(state.size)
        rng = np.random.default_rng(state.size)
        sample = rng.choice(state.size, min(state.size, nlist * TRAIN_PER_LIST), replace=False)
        state.ivf = IvfIndex.train(matrix[np.sort(sample)], self.dims, nlist)
        state.ivf.add(state.keys[: state.size], matrix)
        state.matrix = None
        state.unsaved = state.size

    def _load_rows(
        self, conn: sqlite3.Connection, state: TenantVectors, tenant: str, tally: Tally
    ) -> None:
        """Append the tenant's rows newer than the state, a chunk at a time."""
        # A memory's project never changes, so its code can be kept beside its vector
        # and a project scope becomes a mask instead of a query.
        cursor = conn.execute(
            "SELECT v.seq, v.vector, m.project FROM vectors v JOIN memories m ON m.seq = v.seq "
            "WHERE v.tenant = ? AND v.seq > ? ORDER BY v.seq",
            (tenant, state.max_key),
        )
        while rows := cursor.fetchmany(_CHUNK):
            keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            projects = np.fromiter(
                (state.code(r[2]) for r in rows), dtype=np.int32, count=len(rows)
            )
            state.append(keys, rows_of([r[1] for r in rows], self.dims), projects)
            tally.advance(len(rows))

    def _apply_changes(
        self, conn: sqlite3.Connection, state: TenantVectors, tenant: str, tally: Tally
    ) -> None:
        changes = conn.execute(
            "SELECT pos, seq FROM index_changes WHERE tenant = ? AND pos > ? ORDER BY pos",
            (tenant, state.change_pos),
        ).fetchall()
        keys = sorted({seq for _, seq in changes if seq <= state.max_key})
        found: dict[int, bytes] = dict(
            reads.in_chunks(conn, "SELECT seq, vector FROM vectors WHERE seq IN ({marks})", keys)
        )
        state.replace(found, [k for k in keys if k not in found])
        state.change_pos = changes[-1][0]
        tally.advance(len(changes))

    def _refreshed(self, conn: sqlite3.Connection, tenant: str) -> TenantVectors:
        """Refresh inside one read transaction, so model, epoch, log and rows agree.

        Most searches find nothing new: one statement (one snapshot) says so, and the
        transaction and its reads are spared.
        """
        state = self._tenants.get(tenant)
        if state is not None and self._current(
            state, conn.execute(PROBE, (EPOCH_KEY, tenant, tenant)).fetchone()
        ):
            return state
        with reads.read_transaction(conn):
            return self._refresh(conn, tenant)

    def _current(self, state: TenantVectors, probe: tuple[Any, ...]) -> bool:
        """Whether ``_refresh`` would find nothing to do: same model, store and epoch, no
        rows or changes after the state's, no conversion or save due."""
        model, store_id, epoch, top, pos = probe
        return (
            (model is None or model == self.model)
            and state.store_id == str(store_id or "")
            and state.epoch == int(epoch or 0)
            and int(top or 0) <= state.max_key
            and int(pos or 0) <= state.change_pos
            and not (state.ivf is None and state.size >= self.ann_min_vectors)
            and not (state.ivf is not None and save_due(state.unsaved, state.size))
        )

    # -- index files --------------------------------------------------------------------

    def _save(
        self,
        tenant: str,
        state: TenantVectors,
        progress: Progress | None = None,
    ) -> None:
        """Save the tenant's approximate index; a failure only costs a later catch-up.

        The file is derived data, so a full disk or a read-only folder must not fail a
        search: the index keeps serving from memory and saving is retried later. It is
        named after the store the state was read from, not the store as it is now, so a
        state older than a restore can never pass for the restored store's index.
        """
        if self.files is None or not self.files.writable or state.ivf is None:
            return
        if time.monotonic() - state.save_failed_at < _SAVE_RETRY_SECONDS:
            return
        names: list[str | None] = [None] * len(state.codes)
        for name, code in state.codes.items():
            names[code] = name
        saved = Saved(
            index=state.ivf,
            keys=state.keys[: state.size],
            projects=state.projects[: state.size],
            project_names=names,
            mark=Watermark(state.max_key, state.change_pos),
        )
        tally = Tally(progress, "saving vector index", 1)
        try:
            self.files.save(FileKey(state.store_id, tenant, self.model, state.epoch), saved)
        except (OSError, RuntimeError) as exc:  # faiss reports I/O errors as RuntimeError
            state.save_failed_at = time.monotonic()
            folder = self.files.folder
            why = write_failure(exc, folder)
            log.warning(
                __name__,
                "cannot save the approximate vector index in %s (%s); it is kept in memory "
                "and saving is retried later",
                folder,
                why,
            )
            return
        state.unsaved = 0
        tally.advance(1)

    def save(self) -> None:
        """Write every approximate index with unsaved changes (on close)."""
        with self._lock:
            for tenant, state in self._tenants.items():
                if state.ivf is not None and state.unsaved:
                    self._save(tenant, state)

    # -- building ahead of searches ------------------------------------------------------

    def build(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        progress: Progress | None = None,
        *,
        lagging_only: bool = False,
    ) -> None:
        """Bring the tenant's index up to date, saving it if it is approximate, reporting
        "training vector index", "indexing vectors" and "saving vector index".

        With ``lagging_only``, only when the next process to search the tenant would
        otherwise train its approximate index or replay more than a save's worth (see
        ``save_due``) of rows and changes after the saved file.

        Raises:
            OSError: the approximate index could not be saved.
        """
        with self._lock, reads.read_transaction(conn):
            if lagging_only and not self._lagging(conn, tenant):
                return
            state = self._tenants.get(tenant)
            if state is not None and state.ivf is None and self._large(conn, tenant):
                del self._tenants[tenant]  # trained from the table, as the next process would
            try:
                state = self._refresh(conn, tenant, progress)
                if state.ivf is not None and state.unsaved:
                    self._save(tenant, state, progress)
            except BaseException:
                self._tenants.pop(tenant, None)  # maybe half applied: start afresh next time
                raise
        if state.unsaved and self.files is not None:
            raise OSError(f"cannot save the vector index in {self.files.folder}")

    def _lagging(self, conn: sqlite3.Connection, tenant: str) -> bool:
        """Whether the next process to search the tenant would train its approximate index
        or replay a save's worth of rows or changes after the saved file (cheap)."""
        if self.files is None:
            return False
        newest = watermark(conn, tenant)
        limit = Watermark(reads.high_key(conn), newest.change_pos)
        _, store_id, epoch = generation(conn)
        saved = self.files.newest(FileKey(store_id, tenant, self.model, epoch), limit)
        if saved is None:
            return self._large(conn, tenant, newest.max_key)
        state = self._tenants.get(tenant)
        size = state.size if state is not None and state.ivf is not None else newest.max_key
        rows = count_after(conn, "vectors", "seq", tenant, saved.max_key, size)
        changes = count_after(conn, "index_changes", "pos", tenant, saved.change_pos, size)
        return save_due(max(rows, changes), size)

    def _large(self, conn: sqlite3.Connection, tenant: str, newest: int | None = None) -> bool:
        """Whether the tenant holds ``ann_min_vectors`` vectors or more.

        A count stops there, and is remembered: vectors added since then have higher
        keys, so the count plus the keys since is a bound that spares most recounts.
        """
        if newest is None:
            newest = watermark(conn, tenant).max_key
        counted = self._counted.get(tenant)
        if counted is not None and counted[0] + newest - counted[1] < self.ann_min_vectors:
            return False
        count = count_after(conn, "vectors", "seq", tenant, 0, self.ann_min_vectors)
        self._counted[tenant] = (count, newest)
        return count >= self.ann_min_vectors

    # -- searching ------------------------------------------------------------------------

    def search(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        query: Matrix,
        limit: int,
        allowed: Keys | None = None,
        project: str | None = None,
        refresh: bool = True,
    ) -> list[Candidate]:
        """The ``limit`` best keys by cosine similarity, within ``project`` if given and
        among ``allowed`` keys if given. ``refresh=False`` searches the index as the last
        refresh left it (one refresh serves every search of a recall)."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        with self._lock:
            state = self._refreshed(conn, tenant) if refresh else self._state(tenant)
            code = state.codes.get(project) if project is not None else None
            if state.size == 0 or limit <= 0 or (project is not None and code is None):
                return []
            if state.ivf is not None:
                return self._search_ivf(state, query, limit, allowed, code)
            assert state.matrix is not None
            keys = state.keys[: state.size]
            matrix = state.matrix[: state.size]
            projects = state.projects[: state.size]
        if allowed is not None:
            mask = np.isin(keys, allowed, assume_unique=True)
            keys, matrix, projects = keys[mask], matrix[mask], projects[mask]
            if len(keys) == 0:
                return []
        # Not ``matrix @ query``: BLAS splits a matrix-vector product over its threads,
        # and when another process keeps a core busy, waiting for the second thread costs
        # milliseconds (8 ms for 3,000 vectors on 2 cores, where one thread takes 0.1 ms).
        # einsum's own loop runs on this thread only.
        scores = np.einsum("ij,j->i", matrix, query)
        if code is not None:
            inside = projects == code
            limit = min(limit, int(inside.sum()))
            if limit == 0:
                return []
            scores = np.where(inside, scores, -np.inf).astype(np.float32)
        if limit < len(scores):
            top = np.argpartition(-scores, limit - 1)[:limit]
        else:
            top = np.arange(len(scores))
        return _ranked(keys[top], scores[top])

    def _search_ivf(
        self,
        state: TenantVectors,
        query: Matrix,
        limit: int,
        allowed: Keys | None,
        code: int | None,
    ) -> list[Candidate]:
        assert state.ivf is not None
        members = state.members(code) if code is not None else None
        selected = state.size
        if allowed is not None:
            wanted = bitmap(allowed)
            if members is not None:
                width = min(len(wanted), len(members))
                wanted = wanted[:width] & members[:width]
            members = wanted
            selected = min(selected, len(allowed))
        elif code is not None:
            selected = int((state.projects[: state.size] == code).sum())
        # A filter that passes a share s of the vectors needs about 1/s times the lists
        # scanned to meet as many candidates as an unfiltered search.
        share = max(selected / state.size, 1 / state.ivf.nlist)
        scores, keys = state.ivf.search(query, limit, math.ceil(self.probes / share), members)
        return _ranked(keys, scores)

    def _state(self, tenant: str) -> TenantVectors:
        return self._tenants.get(tenant) or TenantVectors(dims=self.dims, epoch=-1)

    def count(self, conn: sqlite3.Connection, tenant: str) -> int:
        """How many vectors the tenant's index holds after a refresh."""
        with self._lock:
            return self._refreshed(conn, tenant).size

    def approximate(self, tenant: str) -> bool:
        """Whether the tenant is searched through the approximate index."""
        with self._lock:
            state = self._tenants.get(tenant)
            return state is not None and state.ivf is not None

    def clear(self) -> None:
        """Drop every loaded index (they are reloaded or rebuilt on next use)."""
        with self._lock:
            self._tenants.clear()


def _ranked(keys: Keys, scores: npt.NDArray[np.float32]) -> list[Candidate]:
    order = np.lexsort((keys, -scores))
    # tolist converts every element at once; indexing the arrays one element at a time
    # costs about as much as building the candidate.
    return list(
        map(Candidate._make, zip(keys[order].tolist(), scores[order].tolist(), strict=True))
    )

"""Per-tenant vector search, kept in step with the SQLite source of truth.

The ``vectors`` table is authoritative. A tenant's vectors are searched exactly, from
one contiguous float32 matrix, until the tenant holds ``ann_min_vectors``; from then on
from an approximate inverted-file index (see ``ann.py``) that is saved beside the store
and loaded, not rebuilt, by the next process. Either way the in-memory state records a
watermark: the highest vector key it holds and the last entry of ``index_changes`` (the
log of removed and replaced vectors) it applied. Each refresh replays what is newer, so
rows added or changed by this or any other process are picked up, and a lost, stale or
foreign index file is rebuilt from the table, never trusted over it. A reindex (a new
model or epoch) or a restore (a new store id) starts every tenant afresh.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from memex.core.ranking import Candidate
from memex.errors import EmbedderMismatchError
from memex.storage.sqlite import reads
from memex.storage.sqlite.ann import (
    TRAIN_PER_LIST,
    Codes,
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

EPOCH_KEY = "vectors_generation"
_CHUNK = 16_384
_SAVE_RETRY_SECONDS = 60.0


def _generation(conn: sqlite3.Connection) -> tuple[str | None, str, int]:
    """The vectors' model, the store's id and the reindex epoch, in one read."""
    found = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('vectors_model', 'store_id', ?)",
            (EPOCH_KEY,),
        ).fetchall()
    )
    return found.get("vectors_model"), str(found.get("store_id", "")), int(found.get(EPOCH_KEY, 0))


def bump_epoch(conn: sqlite3.Connection) -> None:
    """Mark every loaded index stale; call inside the transaction that swaps all vectors."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
        "SET value = CAST(value AS INTEGER) + 1",
        (EPOCH_KEY,),
    )


def log_changes(conn: sqlite3.Connection, tenant: str, keys: list[int]) -> None:
    """Record that these keys' vectors were removed or replaced (in the write transaction)."""
    conn.executemany(
        "INSERT INTO index_changes (tenant, seq) VALUES (?, ?)", [(tenant, k) for k in keys]
    )


@dataclass
class _Tenant:
    dims: int
    epoch: int
    store_id: str = ""  # the store the state was read from: a restore gives a new one
    max_key: int = 0
    change_pos: int = 0
    size: int = 0
    keys: Keys = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    projects: Codes = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    codes: dict[str | None, int] = field(default_factory=dict)
    matrix: Matrix | None = None  # exact search, for small tenants
    ivf: IvfIndex | None = None  # approximate search, for large ones
    unsaved: int = 0
    save_failed_at: float = -math.inf
    bitmaps: dict[int, npt.NDArray[np.uint8]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ivf is None and self.matrix is None:
            self.matrix = np.zeros((0, self.dims), dtype=np.float32)

    def code(self, project: str | None) -> int:
        return self.codes.setdefault(project, len(self.codes))

    def append(self, keys: Keys, rows: Matrix, projects: Codes) -> None:
        need = self.size + len(keys)
        if need > len(self.keys):
            capacity = max(need, int(len(self.keys) * 1.5), 1024)
            self.keys = _grown(self.keys, self.size, capacity)
            self.projects = _grown(self.projects, self.size, capacity)
            if self.matrix is not None:
                self.matrix = _grown(self.matrix, self.size, capacity)
        self.keys[self.size : need] = keys
        self.projects[self.size : need] = projects
        if self.matrix is not None:
            self.matrix[self.size : need] = rows
        else:
            assert self.ivf is not None
            self.ivf.add(keys, rows)
            self.unsaved += len(keys)
        self.size = need
        self.bitmaps.clear()
        if len(keys):
            self.max_key = max(self.max_key, int(keys.max()))

    def replace(self, found: dict[int, bytes], gone: list[int]) -> None:
        """Apply replaced (``found``) and removed (``gone``) vectors of known keys."""
        if self.size == 0:
            return
        live = self.keys[: self.size]
        changed = np.asarray(sorted([*found, *gone]), dtype=np.int64)
        at = np.searchsorted(live, changed)
        known = (at < self.size) & (live[np.minimum(at, self.size - 1)] == changed)
        changed, at = changed[known], at[known]
        if not len(changed):
            return
        present = np.fromiter((int(k) in found for k in changed), dtype=bool, count=len(changed))
        rows = _rows([found[int(k)] for k in changed[present]], self.dims)
        if self.matrix is not None:
            self.matrix[at[present]] = rows
        else:
            assert self.ivf is not None
            self.ivf.remove(changed)
            self.ivf.add(changed[present], rows)
            self.unsaved += len(changed)
        drop = at[~present]
        if len(drop):
            keep = np.ones(self.size, dtype=bool)
            keep[drop] = False
            self.keys = self.keys[: self.size][keep]
            self.projects = self.projects[: self.size][keep]
            if self.matrix is not None:
                self.matrix = self.matrix[: self.size][keep]
            self.size = int(keep.sum())
        self.bitmaps.clear()

    def members(self, code: int) -> npt.NDArray[np.uint8]:
        """The bitmap of this project's keys (cached until the keys change)."""
        if code not in self.bitmaps:
            live = self.keys[: self.size]
            self.bitmaps[code] = bitmap(live[self.projects[: self.size] == code])
        return self.bitmaps[code]


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
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.Lock()

    # -- keeping up with the table ----------------------------------------------------

    def _refresh(self, conn: sqlite3.Connection, tenant: str) -> _Tenant:
        model, store_id, epoch = _generation(conn)
        if model is not None and model != self.model:
            raise EmbedderMismatchError(
                f"the store's vectors now come from {model} (reindexed or restored by "
                "another process); open it again to use that model"
            )
        newest = _watermark(conn, tenant)
        state = self._tenants.get(tenant)
        if state is None or state.epoch != epoch or state.store_id != store_id:
            state = self._start(conn, tenant, FileKey(store_id, tenant, self.model, epoch), newest)
            self._tenants[tenant] = state
        if newest.change_pos > state.change_pos:
            self._apply_changes(conn, state, tenant)
        if newest.max_key > state.max_key:
            self._load_rows(conn, state, tenant)
        if state.ivf is None and state.size >= self.ann_min_vectors:
            self._convert(state)
            self._save(tenant, state)
        elif state.ivf is not None and state.unsaved >= max(10_000, state.size // 10):
            self._save(tenant, state)
        return state

    def _start(
        self, conn: sqlite3.Connection, tenant: str, key: FileKey, newest: Watermark
    ) -> _Tenant:
        """A tenant's state: from its index file if one is usable, else from the table."""
        epoch, store_id = key.epoch, key.store_id
        if self.files is not None:
            # Key numbers are never reused, so a file claiming a key above the store's
            # high-water mark belongs to another (restored or replaced) store.
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memories'")
            high = row.fetchone()
            limit = Watermark(int(high[0]) if high else 0, newest.change_pos)
            saved = self.files.load(key, limit)
            if saved is not None:
                state = _Tenant(
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
        state = _Tenant(
            dims=self.dims, epoch=epoch, store_id=store_id, change_pos=newest.change_pos
        )
        count = conn.execute("SELECT count(*) FROM vectors WHERE tenant = ?", (tenant,)).fetchone()
        if count[0] >= self.ann_min_vectors:
            state.ivf = self._train_from_table(conn, tenant, int(count[0]))
            state.matrix = None
            self._load_rows(conn, state, tenant)
            self._save(tenant, state)
        return state

    def _train_from_table(self, conn: sqlite3.Connection, tenant: str, count: int) -> IvfIndex:
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
        return IvfIndex.train(_rows(blobs, self.dims), self.dims, nlist)

    def _convert(self, state: _Tenant) -> None:
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

    def _load_rows(self, conn: sqlite3.Connection, state: _Tenant, tenant: str) -> None:
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
            state.append(keys, _rows([r[1] for r in rows], self.dims), projects)

    def _apply_changes(self, conn: sqlite3.Connection, state: _Tenant, tenant: str) -> None:
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

    def _refreshed(self, conn: sqlite3.Connection, tenant: str) -> _Tenant:
        """Refresh inside one read transaction, so model, epoch, log and rows agree."""
        if conn.in_transaction:
            return self._refresh(conn, tenant)
        conn.execute("BEGIN")
        try:
            return self._refresh(conn, tenant)
        finally:
            conn.execute("COMMIT")

    # -- index files --------------------------------------------------------------------

    def _save(self, tenant: str, state: _Tenant) -> None:
        """Save the tenant's approximate index; a failure only costs a later catch-up.

        The file is derived data, so a full disk or a read-only folder must not fail a
        search: the index keeps serving from memory and saving is retried later. It is
        named after the store the state was read from, not the store as it is now, so a
        state older than a restore can never pass for the restored store's index.
        """
        if self.files is None or state.ivf is None:
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
        try:
            self.files.save(FileKey(state.store_id, tenant, self.model, state.epoch), saved)
        except (OSError, RuntimeError):  # faiss reports its own I/O errors as RuntimeError
            state.save_failed_at = time.monotonic()
            return
        state.unsaved = 0

    def save(self) -> None:
        """Write every approximate index with unsaved changes (on close)."""
        with self._lock:
            for tenant, state in self._tenants.items():
                if state.ivf is not None and state.unsaved:
                    self._save(tenant, state)

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
        self, state: _Tenant, query: Matrix, limit: int, allowed: Keys | None, code: int | None
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

    def _state(self, tenant: str) -> _Tenant:
        return self._tenants.get(tenant) or _Tenant(dims=self.dims, epoch=-1)

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


def _watermark(conn: sqlite3.Connection, tenant: str) -> Watermark:
    top = conn.execute("SELECT max(seq) FROM vectors WHERE tenant = ?", (tenant,)).fetchone()[0]
    pos = conn.execute("SELECT max(pos) FROM index_changes WHERE tenant = ?", (tenant,)).fetchone()[
        0
    ]
    return Watermark(int(top or 0), int(pos or 0))


def _rows(blobs: list[bytes], dims: int) -> Matrix:
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dims)


_A = TypeVar("_A", bound=np.generic)


def _grown(array: npt.NDArray[_A], size: int, capacity: int) -> npt.NDArray[_A]:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[:size] = array[:size]
    return grown


def _ranked(keys: Keys, scores: npt.NDArray[np.float32]) -> list[Candidate]:
    order = np.lexsort((keys, -scores))
    # tolist converts every element at once; indexing the arrays one element at a time
    # costs about as much as building the candidate.
    return [
        Candidate(key, score)
        for key, score in zip(keys[order].tolist(), scores[order].tolist(), strict=True)
    ]

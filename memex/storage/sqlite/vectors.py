"""An in-memory matrix of a tenant's vectors, kept in step with the SQLite source of truth.

The ``vectors`` table is authoritative. Each tenant's vectors are loaded into one
contiguous float32 matrix on first use; rows added since (by this or any other
process) are appended by key, and any removal or replacement of a vector bumps a
generation counter in ``meta`` that makes every process reload the tenant. A lost or
stale matrix is therefore rebuilt from the table, never trusted over it.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from memex.core.ranking import Candidate
from memex.errors import EmbedderMismatchError

GENERATION_KEY = "vectors_generation"
Matrix = npt.NDArray[np.float32]
Keys = npt.NDArray[np.int64]
Codes = npt.NDArray[np.int32]
_CHUNK = 16_384


def current_generation(conn: sqlite3.Connection) -> int:
    """The store-wide vector generation (bumped when vectors are removed or replaced)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
    return int(row[0]) if row else 0


def bump_generation(conn: sqlite3.Connection) -> None:
    """Mark every loaded matrix stale; call inside the write transaction that changes vectors."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
        "SET value = CAST(value AS INTEGER) + 1",
        (GENERATION_KEY,),
    )


@dataclass
class _TenantMatrix:
    dims: int
    generation: int = -1
    max_key: int = 0
    size: int = 0
    keys: Keys = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    matrix: Matrix = field(init=False)
    projects: Codes = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    codes: dict[str | None, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = np.zeros((0, self.dims), dtype=np.float32)

    def code(self, project: str | None) -> int:
        return self.codes.setdefault(project, len(self.codes))

    def append(self, keys: Keys, rows: Matrix, projects: Codes) -> None:
        need = self.size + len(keys)
        if need > len(self.keys):
            capacity = max(need, int(len(self.keys) * 1.5), 1024)
            grown_keys = np.zeros(capacity, dtype=np.int64)
            grown_matrix = np.zeros((capacity, self.dims), dtype=np.float32)
            grown_projects = np.zeros(capacity, dtype=np.int32)
            grown_keys[: self.size] = self.keys[: self.size]
            grown_matrix[: self.size] = self.matrix[: self.size]
            grown_projects[: self.size] = self.projects[: self.size]
            self.keys, self.matrix, self.projects = grown_keys, grown_matrix, grown_projects
        self.keys[self.size : need] = keys
        self.matrix[self.size : need] = rows
        self.projects[self.size : need] = projects
        self.size = need
        if len(keys):
            self.max_key = max(self.max_key, int(keys.max()))


class VectorIndex:
    """Exact cosine search over per-tenant matrices (vectors are unit length)."""

    def __init__(self, model: str, dims: int) -> None:
        self.model = model
        self.dims = dims
        self._tenants: dict[str, _TenantMatrix] = {}
        self._lock = threading.Lock()

    def _load_rows(self, conn: sqlite3.Connection, state: _TenantMatrix, tenant: str) -> None:
        """Append the tenant's rows newer than the matrix, a chunk at a time."""
        # A memory's project never changes, so its code can be kept beside its vector
        # and a project scope becomes a mask instead of a query.
        cursor = conn.execute(
            "SELECT v.seq, v.vector, m.project FROM vectors v JOIN memories m ON m.seq = v.seq "
            "WHERE v.tenant = ? AND v.seq > ? ORDER BY v.seq",
            (tenant, state.max_key),
        )
        while rows := cursor.fetchmany(_CHUNK):
            keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            projects = np.fromiter(
                (state.code(r[2]) for r in rows), dtype=np.int32, count=len(rows)
            )
            state.append(keys, matrix.reshape(len(rows), self.dims), projects)

    def _refresh(self, conn: sqlite3.Connection, tenant: str) -> _TenantMatrix:
        generation = current_generation(conn)
        state = self._tenants.get(tenant)
        if state is None or state.generation != generation:
            stored = conn.execute("SELECT value FROM meta WHERE key = 'vectors_model'").fetchone()
            if stored is not None and stored[0] != self.model:
                raise EmbedderMismatchError(
                    f"the store was reindexed with {stored[0]} by another process; "
                    "open it again to use the new model"
                )
            state = _TenantMatrix(dims=self.dims, generation=generation)
            self._tenants[tenant] = state
        top = conn.execute("SELECT max(seq) FROM vectors WHERE tenant = ?", (tenant,)).fetchone()[0]
        if top is not None and top > state.max_key:
            self._load_rows(conn, state, tenant)
        return state

    def _refreshed(self, conn: sqlite3.Connection, tenant: str) -> _TenantMatrix:
        """Refresh inside one read transaction, so generation, model and rows agree."""
        if conn.in_transaction:
            return self._refresh(conn, tenant)
        conn.execute("BEGIN")
        try:
            return self._refresh(conn, tenant)
        finally:
            conn.execute("COMMIT")

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
        among ``allowed`` keys if given. ``refresh=False`` searches the matrix as the last
        refresh left it (one refresh serves every search of a recall)."""
        with self._lock:
            state = self._refreshed(conn, tenant) if refresh else self._state(tenant)
            keys = state.keys[: state.size]
            matrix = state.matrix[: state.size]
            projects = state.projects[: state.size]
            code = state.codes.get(project) if project is not None else None
        if state.size == 0 or limit <= 0 or (project is not None and code is None):
            return []
        if allowed is not None:
            mask = np.isin(keys, allowed, assume_unique=True)
            keys, matrix, projects = keys[mask], matrix[mask], projects[mask]
            if len(keys) == 0:
                return []
        scores = matrix @ query.astype(np.float32).reshape(-1)
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
        top = top[np.lexsort((keys[top], -scores[top]))]
        return [Candidate(int(keys[i]), float(scores[i])) for i in top]

    def _state(self, tenant: str) -> _TenantMatrix:
        return self._tenants.get(tenant) or _TenantMatrix(dims=self.dims)

    def count(self, conn: sqlite3.Connection, tenant: str) -> int:
        """How many vectors the tenant's matrix holds after a refresh."""
        with self._lock:
            return self._refreshed(conn, tenant).size

    def clear(self) -> None:
        """Drop every loaded matrix (they are rebuilt from the table on next use)."""
        with self._lock:
            self._tenants.clear()

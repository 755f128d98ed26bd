"""One tenant's in-memory vector index: its keys, their project codes and the vectors.

Rows are appended in key order and replaced or removed by key; the vectors live in one
float32 matrix searched exactly, or in an approximate index once the tenant is large.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from memex.storage.sqlite.ann import Codes, IvfIndex, Keys, Matrix, bitmap


@dataclass
class TenantVectors:
    """What one tenant's vector index holds: keys, project codes, and the vectors in an
    exact matrix (small tenants) or an approximate index (large ones)."""

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
        rows = rows_of([found[int(k)] for k in changed[present]], self.dims)
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


def rows_of(blobs: list[bytes], dims: int) -> Matrix:
    """Stored vector blobs as the rows of one matrix."""
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dims)


_A = TypeVar("_A", bound=np.generic)


def _grown(array: npt.NDArray[_A], size: int, capacity: int) -> npt.NDArray[_A]:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[:size] = array[:size]
    return grown

"""An approximate vector index for a large tenant: inverted lists of 8-bit vectors (faiss).

Vectors are clustered into ``nlist`` lists around trained centroids and stored with one
byte per dimension; a query scans only the ``nprobe`` lists nearest to it. That keeps a
million 256-d vectors in about 270 MB instead of 1 GB, makes adding a vector a cheap
assignment rather than a graph insertion, and answers in a few milliseconds.

The index is derived data. Its file name carries the store's id, the embedding model,
the reindex epoch and the watermark it was saved at (the highest vector key and the
last vector change applied), so a file is only ever used for the store and model it was
built from, and whatever happened after the watermark is replayed from SQLite. Files are
written to a temporary name and renamed into place, so a crash leaves the previous file
or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from memex.core.progress import Progress, Tally

Matrix = npt.NDArray[np.float32]
Keys = npt.NDArray[np.int64]
Codes = npt.NDArray[np.int32]

#: Vectors per list the centroids are trained for; faiss asks for at least 39.
TRAIN_PER_LIST = 40
MAX_LISTS = 1024
MIN_LISTS = 16
#: Rounds of k-means that place the centroids (faiss's default for IVF training).
ITERATIONS = 10


def list_count(size: int) -> int:
    """How many inverted lists suit a tenant of ``size`` vectors."""
    return int(min(MAX_LISTS, max(MIN_LISTS, size // TRAIN_PER_LIST)))


@dataclass(frozen=True, slots=True)
class FileKey:
    """What an index file is valid for: store, tenant, model and reindex epoch."""

    store_id: str
    tenant: str
    model: str
    epoch: int

    def stem(self) -> str:
        digest = hashlib.sha256(
            json.dumps([self.store_id, self.tenant, self.model, self.epoch]).encode()
        ).hexdigest()[:24]
        return f"ivf-{digest}"


@dataclass(frozen=True, slots=True)
class Watermark:
    """The highest vector key an index holds and the last vector change it applied."""

    max_key: int
    change_pos: int


class IvfIndex:
    """A trained inverted-file index whose ids are vector keys (memory ``seq``)."""

    def __init__(self, index: Any) -> None:
        self._index = index

    @classmethod
    def train(
        cls, sample: Matrix, dims: int, nlist: int, progress: Progress | None = None
    ) -> IvfIndex:
        """Train centroids and the 8-bit quantiser on ``sample`` (unit-length rows).

        The centroids come from ``ITERATIONS`` rounds of spherical k-means, as faiss's own
        IVF training runs them, but one round per call so that each can be reported: at
        100,000 vectors training takes most of the build.
        """
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        nlist = max(1, min(nlist, len(sample)))
        tally = Tally(progress, "training vector index", ITERATIONS)
        centroids: Matrix | None = None
        for _ in range(ITERATIONS):
            params = faiss.ClusteringParameters()
            params.niter = 1
            params.spherical = True  # inner product on unit vectors: centroids stay unit
            params.seed = 1234  # deterministic clustering for a given sample
            clustering = faiss.Clustering(dims, nlist, params)
            if centroids is not None:  # given centroids start the round; none: random rows
                faiss.copy_array_to_vector(centroids.reshape(-1), clustering.centroids)
            clustering.train(sample, faiss.IndexFlatIP(dims))
            centroids = faiss.vector_to_array(clustering.centroids).reshape(nlist, dims)
            tally.advance(1)
        quantiser = faiss.IndexFlatIP(dims)
        quantiser.add(centroids)
        index = faiss.IndexIVFScalarQuantizer(
            quantiser, dims, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        # The coarse quantiser holds its nlist centroids, so this trains the 8-bit codes only.
        index.train(sample)
        return cls(index)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int:
        return int(self._index.nlist)

    def add(self, keys: Keys, rows: Matrix) -> None:
        if len(keys):
            self._index.add_with_ids(
                np.ascontiguousarray(rows, dtype=np.float32), np.ascontiguousarray(keys)
            )

    def remove(self, keys: Keys) -> None:
        if len(keys):
            self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(keys)))

    def search(
        self, query: Matrix, limit: int, nprobe: int, members: npt.NDArray[np.uint8] | None
    ) -> tuple[npt.NDArray[np.float32], Keys]:
        """Up to ``limit`` (scores, keys), best first; ``members`` is a bitmap of allowed keys."""
        params = faiss.SearchParametersIVF()
        params.nprobe = int(min(max(nprobe, 1), self.nlist))
        if members is not None:
            params.sel = faiss.IDSelectorBitmap(len(members), faiss.swig_ptr(members))
        scores, keys = self._index.search(
            np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), limit, params=params
        )
        found = keys[0] >= 0
        return scores[0][found], keys[0][found].astype(np.int64)

    def serialize(self) -> npt.NDArray[np.uint8]:
        return np.asarray(faiss.serialize_index(self._index), dtype=np.uint8)

    @classmethod
    def deserialize(cls, data: npt.NDArray[np.uint8]) -> IvfIndex:
        return cls(faiss.deserialize_index(np.ascontiguousarray(data)))


def bitmap(keys: Keys) -> npt.NDArray[np.uint8]:
    """A little-endian bitmap with a bit set for every key (faiss's IDSelectorBitmap)."""
    top = int(keys.max()) if len(keys) else 0
    bits = np.zeros(top + 1, dtype=bool)
    bits[keys] = True
    return np.packbits(bits, bitorder="little")


@dataclass
class Saved:
    """An index file's content: the index, its keys and their project codes."""

    index: IvfIndex
    keys: Keys
    projects: Codes
    project_names: list[str | None]
    mark: Watermark


class IndexFiles:
    """The folder of index files beside a store file; ``writable=False`` only reads it."""

    def __init__(self, folder: Path, *, writable: bool = True) -> None:
        self.folder = folder
        self.writable = writable

    def _files(self, key: FileKey) -> list[tuple[Watermark, Path]]:
        found: list[tuple[Watermark, Path]] = []
        with contextlib.suppress(OSError):
            for path in self.folder.glob(f"{key.stem()}.*.npz"):
                parts = path.name.split(".")
                if len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit():
                    found.append((Watermark(int(parts[1]), int(parts[2])), path))
        found.sort(key=lambda f: (f[0].max_key, f[0].change_pos), reverse=True)
        return found

    def newest(self, key: FileKey, limit: Watermark) -> Watermark | None:
        """The watermark of the newest file not ahead of ``limit``, without reading it."""
        for mark, _ in self._files(key):
            if mark.max_key <= limit.max_key and mark.change_pos <= limit.change_pos:
                return mark
        return None

    def load(self, key: FileKey, newest: Watermark) -> Saved | None:
        """The newest readable file not ahead of ``newest`` (the store's own watermark).

        A file ahead of the store, unreadable or inconsistent is deleted (skipped, when
        the folder is only read): it belongs to a store that was restored or replaced,
        or to a write that never completed.
        """
        for mark, path in self._files(key):
            if mark.max_key > newest.max_key or mark.change_pos > newest.change_pos:
                self._unlink(path)
                continue
            try:
                with np.load(path, allow_pickle=False) as data:
                    index = IvfIndex.deserialize(data["index"])
                    keys = data["keys"].astype(np.int64)
                    projects = data["projects"].astype(np.int32)
                    names = json.loads(str(data["project_names"]))
                if index.size != len(keys) or len(projects) != len(keys):
                    raise ValueError("index and keys disagree")
            except Exception:  # any unreadable file is rebuilt, never trusted
                self._unlink(path)
                continue
            return Saved(index, keys, projects, list(names), mark)
        return None

    def save(self, key: FileKey, saved: Saved) -> None:
        """Write atomically, then remove the key's older files (best effort)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{key.stem()}.{saved.mark.max_key}.{saved.mark.change_pos}.npz"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    index=saved.index.serialize(),
                    keys=saved.keys,
                    projects=saved.projects,
                    project_names=np.asarray(json.dumps(saved.project_names)),
                )
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.folder / name)
        except BaseException:
            self._unlink(Path(tmp))
            raise
        self._sweep()
        for mark, path in self._files(key):
            if path.name != name and (mark.max_key, mark.change_pos) <= (
                saved.mark.max_key,
                saved.mark.change_pos,
            ):
                self._unlink(path)

    def _sweep(self) -> None:
        """Remove temporary files left by a process killed while saving."""
        cutoff = time.time() - 3600
        with contextlib.suppress(OSError):
            for path in self.folder.glob(".tmp-*.npz"):
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()

    def _unlink(self, path: Path) -> None:
        if self.writable:
            with contextlib.suppress(OSError):
                path.unlink()

"""The full-text leg for large stores: a tantivy index derived from the FTS5 source of truth.

FTS5 answers a disjunctive BM25 query in tens to hundreds of milliseconds once a store
holds a few hundred thousand memories; tantivy answers the same query in one or two.
The index lives in a folder beside the store (``<store file>.lexical/``), one per store
(BM25 statistics are store-wide in FTS5 too), keyed by ``memories.seq``. It keeps term
frequencies only, no text, and a raw ``scope`` term for each scope field the memory
sets: ``tenant=<t>``, ``project=<p>``, ``user=<u>``, ``agent=<a>``, ``session=<s>``
(scope values never contain ``=``). A query must match the term of every field its scope
sets, so a project's search walks that project's postings only instead of discarding
other projects' hits after the fact. A memory's scope never changes, so its terms are
written with its row and replaced with its content.

It is derived data. A sidecar ``watermark.json`` in the folder names the store it was
built from and what it holds: every row up to ``max_seq`` and every ``index_changes``
entry up to ``change_pos``. It is written (atomically) only after the tantivy commit, so
the index is never behind its watermark; a catch-up deletes before it adds, so replaying
work the watermark did not record is harmless. A missing, unreadable or foreign folder,
one ahead of the store or one of another ``FORMAT`` is rebuilt from SQLite, and an open
index is dropped as soon as the store's id changes (a restore).

A write commits tantivy only when its batch leaves the index far behind (``build``
with ``lagging_only``). A query that finds a small lag scores the rows after the
watermark and the rows changed since it with FTS5 (restricted by rowid, so cheap) and
merges them with the index's hits, leaving out index hits for those keys; a larger lag
is caught up first. Every hit passes through the SQL filter, as on the FTS5 path, scope
included: the scope terms narrow the search, the tables decide.

A read-only store never builds, catches up or rebuilds the index: it searches the folder
as it finds it (in place, or from a copy in the temporary folder when the folder cannot
be written, since tantivy needs lock files beside the index), scores the lag itself,
and uses FTS5 when there is no usable index.

A deleted document only gets a mark: its terms stay in its segment's files until the
segment is merged away, which the Python binding cannot ask for. So a purge (counted
in ``meta``) is followed by a fresh rewrite: every document is deleted and the rows are
added back from SQLite, every old segment is dropped at the commit and its files are
removed. The purging process does it at once (``scrub``); should it die first, the
next catch-up or open of the store sees the watermark's purge count behind the store's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import tantivy

from memex import log
from memex.core.progress import Progress
from memex.core.query import Filters
from memex.core.ranking import Candidate
from memex.storage.sqlite import fulltext_write, reads
from memex.storage.sqlite.connection import lacked_space, writable, write_failure
from memex.storage.sqlite.fulltext_mark import FORMAT as FORMAT
from memex.storage.sqlite.fulltext_mark import (
    MARK_FILE,
    Mark,
    lag,
    read_mark,
    store_id_of,
    store_meta,
    store_state,
)
from memex.storage.sqlite.fulltext_query import index_schema, query_analyzer, search_index
from memex.storage.sqlite.visibility import Check

TAIL_ROWS = 2_000
TAIL_CHANGES = 500
_RETRY_SECONDS = 60.0


class FullTextIndex:
    """The tantivy index of one store, opened, built and caught up on demand."""

    def __init__(self, folder: Path, *, writable: bool = True) -> None:
        self.folder = folder
        self.writable = writable
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        self._schema = index_schema()
        self._analyzer = query_analyzer()
        self._lock = threading.Lock()
        self._index: tantivy.Index | None = None
        self._store_id = ""
        self._mark = Mark(0, 0)
        self._stamp: tuple[int, int] | None = None
        self._failed_at = -_RETRY_SECONDS

    # -- opening and building -------------------------------------------------------------

    def _ready(self, conn: sqlite3.Connection, store_id: str | None = None) -> bool:
        """Open the index, rebuilding it if it cannot be trusted; False: use FTS5 for now.
        ``store_id``: the store's id, when just read."""
        self._follow_store(store_id_of(conn) if store_id is None else store_id)
        if self._index is not None:
            return True
        if time.monotonic() - self._failed_at < _RETRY_SECONDS:
            return False
        try:
            self._open(conn)
        except (ValueError, OSError, sqlite3.Error, shutil.Error) as exc:
            self._failed_at = time.monotonic()
            if self.writable:
                self._warn("build", exc)
            return False
        return True

    def _open(self, conn: sqlite3.Connection, progress: Progress | None = None) -> None:
        """Open the index if it can be trusted, else rebuild it (raising if that fails or
        the store is read-only)."""
        store_id, high, top_pos, _ = store_state(conn)
        mark = self._trusted_mark(store_id, high, top_pos)
        if mark is not None:
            try:
                index = tantivy.Index.open(str(self._readable()))
                index.reload()
                index.searcher()
                self._index, self._mark, self._store_id = index, mark, store_id
                self._failed_at = -_RETRY_SECONDS
                return
            except (ValueError, OSError, shutil.Error):
                self.close()
        if not self.writable:
            raise ValueError(f"no usable full-text index in {self.folder}, and it is read-only")
        self._rebuild(conn, store_id, progress)
        self._store_id = store_id
        self._failed_at = -_RETRY_SECONDS

    def _follow_store(self, store_id: str) -> None:
        """Let go of an open index once the store's id changed (it was restored from a
        backup: a different store)."""
        if self._index is not None and store_id != self._store_id:
            self.close()

    def _trusted_mark(self, store_id: str, high: int, top_pos: int) -> Mark | None:
        """The folder's watermark, unless it is missing, foreign or ahead of the store."""
        mark = self._read_mark(store_id)
        if mark is not None and mark.max_seq <= high and mark.change_pos <= top_pos:
            return mark
        return None

    def _readable(self) -> Path:
        """Where the index can be opened: in place, unless only this process cannot write
        the folder (tantivy writes lock files beside the index); then a private copy."""
        self._drop_copy()
        if self.writable or writable(self.folder):
            return self.folder
        self._copy = tempfile.TemporaryDirectory(prefix="memex-lexical-")
        # Without the watermark: a copy never follows the folder (see _refresh_mark).
        skip = shutil.ignore_patterns(".tantivy-*.lock", MARK_FILE, ".tmp-*")
        shutil.copytree(self.folder, self._opened, ignore=skip)
        return self._opened

    @property
    def _opened(self) -> Path:
        """Where the index is opened from: the folder, or this process's copy of it."""
        return self.folder if self._copy is None else Path(self._copy.name) / "index"

    def _warn(self, action: str, exc: BaseException) -> None:
        why = write_failure(exc, self.folder)
        log.warning(
            __name__,
            "cannot %s the full-text index in %s (%s); full-text search uses SQLite's FTS5 "
            "meanwhile and retries later",
            action,
            self.folder,
            why,
        )

    @property
    def private_copy(self) -> Path | None:
        """The folder of this process's copy of a folder it cannot write, if it made one."""
        return None if self._copy is None else Path(self._copy.name)

    def close(self) -> None:
        """Let go of the index, and of a private copy of it."""
        self._index = None
        self._drop_copy()

    def _drop_copy(self) -> None:
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def _read_mark(self, store_id: str) -> Mark | None:
        found = read_mark(self.folder, store_id)
        if found is None:
            return None
        mark, self._stamp = found
        return mark

    def _rebuild(
        self, conn: sqlite3.Connection, store_id: str, progress: Progress | None = None
    ) -> None:
        """Build a fresh index in a new folder from SQLite, then move it into place."""
        self._index = None
        parent = self.folder.parent
        build = Path(tempfile.mkdtemp(prefix=self.folder.name + ".build-", dir=parent))
        try:
            index = tantivy.Index(self._schema, path=str(build))
            mark = fulltext_write.apply_changes(
                index, self._schema, conn, Mark(0, 0), store_id, build, progress, fresh=True
            )
            if mark is None:
                raise ValueError("a fresh index is locked")
            if self.folder.exists():
                old = Path(tempfile.mkdtemp(prefix=self.folder.name + ".old-", dir=parent))
                os.replace(self.folder, old / "index")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(build, self.folder)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        self._index = tantivy.Index.open(str(self.folder))
        self._read_mark(store_id)
        self._mark = mark

    # -- catching up ------------------------------------------------------------------------

    def _refresh_mark(self, store_id: str) -> None:
        """Follow a catch-up made by another process (the sidecar changed)."""
        assert self._index is not None
        try:
            stat = (self._opened / MARK_FILE).stat()
        except OSError:
            return
        if (stat.st_mtime_ns, stat.st_ino) != self._stamp:
            mark = self._read_mark(store_id)
            if mark is not None:  # a catch-up or a rebuild by another handle
                # Watermark first, then the reader: the searcher is never older than it.
                self._index.reload()
                self._mark = mark

    def catch_up(self, conn: sqlite3.Connection, *, force: bool = False) -> bool:
        """Commit what the index lacks if the lag is large (or any, with ``force``).

        False when another process holds the writer (the query then scores the tail).
        """
        with self._lock:
            if not self._ready(conn):
                return False
            return self._catch_up(conn, force)

    def _catch_up(
        self,
        conn: sqlite3.Connection,
        force: bool,
        progress: Progress | None = None,
        wait: float = 0.0,
        state: tuple[str, int, int, int] | None = None,
    ) -> bool:
        """Catch up (see ``catch_up``); after a purge, rewrite the index instead.
        ``state``: ``store_state``, when just read."""
        assert self._index is not None
        state = store_state(conn) if state is None else state
        store_id, _, _, purges = state
        self._refresh_mark(store_id)
        if not self.writable:
            return False
        fresh = self._mark.purges < purges
        if not fresh:
            rows, changes = lag(state, self._mark)
            if not (rows or changes) or (not force and rows < TAIL_ROWS and changes < TAIL_CHANGES):
                return True
        mark = fulltext_write.apply_changes(
            self._index,
            self._schema,
            conn,
            self._mark,
            store_id,
            self.folder,
            progress,
            fresh=fresh,
            wait=wait,
        )
        if mark is None:
            return False
        self._index.reload()
        self._read_mark(store_id)
        self._mark = mark
        return True

    # -- building ahead of queries -------------------------------------------------------

    def build(
        self,
        conn: sqlite3.Connection,
        progress: Progress | None = None,
        *,
        lagging_only: bool = False,
    ) -> bool:
        """Bring the index up to date and commit it, reporting "indexing full text".

        With ``lagging_only``, only when a query would otherwise build it or catch it up
        before answering (no usable index, or a lag of ``TAIL_ROWS`` rows or
        ``TAIL_CHANGES`` changes): a smaller lag costs a query little and a commit per
        write a lot. False when another process holds the index's writer.

        Raises:
            ValueError, OSError: the index cannot be written.
        """
        with self._lock:
            self._follow_store(store_id_of(conn))
            if lagging_only and not self._behind(conn):
                return True
            if self._index is None:
                try:
                    self._open(conn, progress)
                except (ValueError, OSError, sqlite3.Error):
                    self._failed_at = time.monotonic()
                    raise
            return self._catch_up(conn, True, progress)

    def _behind(self, conn: sqlite3.Connection) -> bool:
        """Whether the next query would build the index, rewrite it (after a purge) or
        catch it up first (cheap)."""
        state = store_state(conn)
        store_id, high, top_pos, purges = state
        if self._index is not None:
            self._refresh_mark(store_id)
            mark: Mark | None = self._mark
        elif time.monotonic() - self._failed_at < _RETRY_SECONDS:
            return False  # a build failed a moment ago: leave the retry to a query
        else:
            mark = self._trusted_mark(store_id, high, top_pos)
        if mark is None or mark.purges < purges:
            return True
        rows, changes = lag(state, mark)
        return rows >= TAIL_ROWS or changes >= TAIL_CHANGES

    # -- scrubbing after a purge ---------------------------------------------------------

    def scrub(self, conn: sqlite3.Connection, *, wait: float, insist: bool = True) -> None:
        """Make sure no file of the index keeps terms of a purged memory: unless it was
        rewritten since the store's last purge, rewrite it from SQLite.

        Waits up to ``wait`` seconds for another process's catch-up to release the
        index. With ``insist``, an index that cannot be rewritten (still busy, or
        unreadable) is removed, to be rebuilt when next needed; without, it is left to
        the next catch-up, which rewrites it too. A read-only store's index is left alone.
        """
        if not self.writable:
            return
        with self._lock:
            if not self.folder.exists():
                self.close()
                return
            store_id, purges = store_meta(conn)
            self._follow_store(store_id)
            if self._index is None:
                mark = self._read_mark(store_id)
                clean = mark is not None and mark.purges >= purges
                if clean or (mark is None and not insist):
                    return  # nothing to rewrite, or an untrusted folder left to its next use
            try:
                done = self._ready(conn) and self._catch_up(conn, force=True, wait=wait)
            except (ValueError, OSError, sqlite3.Error):
                done = False
            if not done and insist:
                self._discard()

    def _discard(self) -> None:
        """Remove the folder (moved aside first, so no half-removed index is opened)."""
        self.close()
        parent = self.folder.parent
        old = Path(tempfile.mkdtemp(prefix=self.folder.name + ".old-", dir=parent))
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.folder, old / "index")
        shutil.rmtree(old)

    # -- searching ---------------------------------------------------------------------------

    def search(
        self,
        conn: sqlite3.Connection,
        filters: Filters,
        terms: Sequence[str],
        limit: int,
        check: Check | None = None,
        implied: Collection[str] = (),
    ) -> list[Candidate] | None:
        """The ``limit`` best memories for any of ``terms`` that ``filters`` pass, by BM25
        (``check`` tells which keys pass; default: SQL). ``implied``: scope fields the
        index need not match, because the store holds no other value for them and
        ``check`` asks SQL about any key newer than it knows.

        None when the index cannot answer (being built elsewhere, or too few index hits
        pass the filters): the caller runs the FTS5 query instead.
        """
        if filters.scope.tenant is None:
            return None
        with self._lock:
            state = store_state(conn)  # one statement for what the next two steps ask
            if not self._ready(conn, state[0]):
                return None
            try:
                self._catch_up(conn, force=False, state=state)
                index, mark = self._index, self._mark
                assert index is not None
                # With a lag, the rows after the watermark and the index hits are read in
                # one snapshot; without one, the index alone answers (one state read).
                lagging = lag(state, mark) != (0, 0)
                with reads.read_transaction(conn) if lagging else contextlib.nullcontext():
                    return search_index(
                        index,
                        self._schema,
                        self._analyzer,
                        conn,
                        filters,
                        terms,
                        limit,
                        mark,
                        check,
                        None if lagging else (state[1], state[2]),
                        implied,
                    )
            except (ValueError, OSError) as exc:
                if lacked_space(exc, self.folder):  # not again on every query
                    self._warn("update", exc)
                    self._failed_at = time.monotonic()
                self.close()  # an unreadable index is reopened or rebuilt on next use
                return None

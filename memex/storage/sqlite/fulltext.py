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
one ahead of the store or one of another ``FORMAT`` is rebuilt from SQLite.

Writes never commit tantivy. A query that finds a small lag scores the rows after the
watermark and the rows changed since it with FTS5 (restricted by rowid, so cheap) and
merges them with the index's hits, leaving out index hits for those keys; a larger lag
is caught up first. Every hit passes through the SQL filter, as on the FTS5 path, scope
included: the scope terms narrow the search, the tables decide.

A deleted document only gets a mark: its terms stay in its segment's files until the
segment is merged away, which the Python binding cannot ask for. So a purge (counted
in ``meta``) is followed by a fresh rewrite: every document is deleted and the rows are
added back from SQLite, every old segment is dropped at the commit and its files are
removed. The purging process does it at once (``scrub``); should it die first, the
next catch-up or open of the store sees the watermark's purge count behind the store's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tantivy

from memex.core.query import Filters
from memex.core.ranking import Candidate
from memex.storage.sqlite import lexical, reads, sql
from memex.storage.sqlite.fulltext_query import index_schema, indexed_hits, prune, query_analyzer

FORMAT = 2  # 1: the tenant only, as a ``tenant`` field
TAIL_ROWS = 2_000
TAIL_CHANGES = 500
_MARK_FILE = "watermark.json"
_HEAP = 64 * 1024 * 1024
_RETRY_SECONDS = 60.0
_ROW = "seq, " + ", ".join(sql.SCOPE_COLUMNS.values()) + ", content"


@dataclass(frozen=True, slots=True)
class Mark:
    """What the index holds: rows up to ``max_seq`` and changes up to ``change_pos``;
    no terms of the first ``purges`` memories purged from the store (its files were
    last rewritten from scratch after them)."""

    max_seq: int
    change_pos: int
    purges: int = 0


class FullTextIndex:
    """The tantivy index of one store, opened, built and caught up on demand."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._schema = index_schema()
        self._analyzer = query_analyzer()
        self._lock = threading.Lock()
        self._index: tantivy.Index | None = None
        self._mark = Mark(0, 0)
        self._stamp: tuple[int, int] | None = None
        self._failed_at = -_RETRY_SECONDS

    # -- opening and building -------------------------------------------------------------

    def _ready(self, conn: sqlite3.Connection) -> bool:
        """Open the index, rebuilding it if it cannot be trusted; False: use FTS5 for now."""
        if self._index is not None:
            return True
        if time.monotonic() - self._failed_at < _RETRY_SECONDS:
            return False
        store_id, high, top_pos, _ = _store_state(conn)
        mark = self._read_mark(store_id)
        if mark is not None and mark.max_seq <= high and mark.change_pos <= top_pos:
            try:
                index = tantivy.Index.open(str(self.folder))
                index.reload()
                index.searcher()
                self._index, self._mark = index, mark
                return True
            except (ValueError, OSError):
                pass
        try:
            self._rebuild(conn, store_id)
            return True
        except (ValueError, OSError, sqlite3.Error):
            self._failed_at = time.monotonic()
            return False

    def _read_mark(self, store_id: str) -> Mark | None:
        try:
            path = self.folder / _MARK_FILE
            stat = path.stat()
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("store_id") != store_id:
                return None
            self._stamp = (stat.st_mtime_ns, stat.st_ino)
            return Mark(int(data["max_seq"]), int(data["change_pos"]), int(data.get("purges", 0)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _write_mark(self, folder: Path, store_id: str, mark: Mark) -> None:
        data = {"format": FORMAT, "store_id": store_id, "max_seq": mark.max_seq}
        data["change_pos"] = mark.change_pos
        data["purges"] = mark.purges
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / _MARK_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _rebuild(self, conn: sqlite3.Connection, store_id: str) -> None:
        """Build a fresh index in a new folder from SQLite, then move it into place."""
        self._index = None
        parent = self.folder.parent
        build = Path(tempfile.mkdtemp(prefix=self.folder.name + ".build-", dir=parent))
        try:
            index = tantivy.Index(self._schema, path=str(build))
            mark = self._apply(index, conn, Mark(0, 0), store_id, build, fresh=True)
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

    def _apply(
        self,
        index: tantivy.Index,
        conn: sqlite3.Connection,
        mark: Mark,
        store_id: str,
        folder: Path,
        *,
        fresh: bool = False,
        wait: float = 0.0,
    ) -> Mark | None:
        """Add what SQLite holds beyond ``mark``, commit, then record the new watermark.

        ``fresh``: replace everything the index holds with what SQLite holds; every old
        segment is dropped at the commit and its files removed. Returns None when
        another process holds the index's writer (for longer than ``wait`` seconds).
        """
        writer = _writer(index, wait)
        if writer is None:
            return None
        try:
            if fresh:
                writer.delete_all_documents()
                mark = Mark(0, 0)
            with _snapshot(conn):
                new = self._replay(writer, conn, mark, fresh)
            writer.commit()  # also removes the files of segments no longer listed
        except BaseException:
            with contextlib.suppress(ValueError):
                writer.rollback()
            raise
        finally:
            del writer  # releases the writer's lock file
        self._write_mark(folder, store_id, new)
        return new

    def _replay(
        self, writer: tantivy.IndexWriter, conn: sqlite3.Connection, mark: Mark, fresh: bool
    ) -> Mark:
        key_query = tantivy.Query.term_query
        purges = _store_state(conn)[3] if fresh else mark.purges
        if mark.max_seq == 0:
            top = conn.execute("SELECT max(pos) FROM index_changes").fetchone()[0]
            change_pos = int(top or 0)
        else:
            changes = conn.execute(
                "SELECT pos, seq FROM index_changes WHERE pos > ? ORDER BY pos", (mark.change_pos,)
            ).fetchall()
            change_pos = changes[-1][0] if changes else mark.change_pos
            changed = sorted({int(s) for _, s in changes if s <= mark.max_seq})
            for key in changed:
                writer.delete_documents_by_query(key_query(self._schema, "key", key))
            for row in reads.in_chunks(
                conn, f"SELECT {_ROW} FROM memories WHERE seq IN ({{marks}})", changed
            ):
                writer.add_document(self._document(row))
        # Rows a killed catch-up committed without recording them: replace, not repeat.
        writer.delete_documents_by_query(
            tantivy.Query.range_query(
                self._schema, "key", tantivy.FieldType.Unsigned, mark.max_seq + 1, None
            )
        )
        max_seq = mark.max_seq
        cursor = conn.execute(
            f"SELECT {_ROW} FROM memories WHERE seq > ? ORDER BY seq", (mark.max_seq,)
        )
        while rows := cursor.fetchmany(5_000):
            for row in rows:
                writer.add_document(self._document(row))
            max_seq = int(rows[-1][0])
        return Mark(max_seq, change_pos, purges)

    def _document(self, row: Sequence[Any]) -> tantivy.Document:
        """A row of ``_ROW`` (key, scope columns, content) as an index document."""
        seq, *scope, content = row
        doc = tantivy.Document()
        doc.add_unsigned("key", int(seq))
        for name, value in zip(sql.SCOPE_COLUMNS, scope, strict=True):
            if value is not None:
                doc.add_text("scope", f"{name}={value}")
        doc.add_text("text", content)
        return doc

    def _refresh_mark(self, store_id: str) -> None:
        """Follow a catch-up made by another process (the sidecar changed)."""
        assert self._index is not None
        try:
            stat = (self.folder / _MARK_FILE).stat()
        except OSError:
            return
        if (stat.st_mtime_ns, stat.st_ino) != self._stamp:
            mark = self._read_mark(store_id)
            if mark is not None:  # a catch-up or a rebuild by another handle
                # Watermark first, then the reader: the searcher is never older than it.
                self._index.reload()
                self._mark = mark

    def _lag(self, conn: sqlite3.Connection) -> tuple[int, int]:
        rows = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM memories WHERE seq > ? LIMIT ?)",
            (self._mark.max_seq, TAIL_ROWS),
        ).fetchone()[0]
        changes = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM index_changes WHERE pos > ? LIMIT ?)",
            (self._mark.change_pos, TAIL_CHANGES),
        ).fetchone()[0]
        return int(rows), int(changes)

    def catch_up(self, conn: sqlite3.Connection, *, force: bool = False) -> bool:
        """Commit what the index lacks if the lag is large (or any, with ``force``).

        False when another process holds the writer (the query then scores the tail).
        """
        with self._lock:
            if not self._ready(conn):
                return False
            return self._catch_up(conn, force)

    def _catch_up(self, conn: sqlite3.Connection, force: bool, wait: float = 0.0) -> bool:
        """Catch up (see ``catch_up``); after a purge, rewrite the index instead."""
        assert self._index is not None
        store_id, _, _, purges = _store_state(conn)
        self._refresh_mark(store_id)
        fresh = self._mark.purges < purges
        if not fresh:
            rows, changes = self._lag(conn)
            if not (rows or changes) or (not force and rows < TAIL_ROWS and changes < TAIL_CHANGES):
                return True
        folder = self.folder
        mark = self._apply(self._index, conn, self._mark, store_id, folder, fresh=fresh, wait=wait)
        if mark is None:
            return False
        self._index.reload()
        self._read_mark(store_id)
        self._mark = mark
        return True

    def scrub(self, conn: sqlite3.Connection, *, wait: float, insist: bool = True) -> None:
        """Make sure no file of the index keeps terms of a purged memory: unless it was
        rewritten since the store's last purge, rewrite it from SQLite.

        Waits up to ``wait`` seconds for another process's catch-up to release the
        index. With ``insist``, an index that cannot be rewritten (still busy, or
        unreadable) is removed, to be rebuilt when next needed; without, it is left to
        the next catch-up, which rewrites it too.
        """
        with self._lock:
            if not self.folder.exists():
                self._index = None
                return
            store_id, _, _, purges = _store_state(conn)
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
        self._index = None
        parent = self.folder.parent
        old = Path(tempfile.mkdtemp(prefix=self.folder.name + ".old-", dir=parent))
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.folder, old / "index")
        shutil.rmtree(old)

    # -- searching ---------------------------------------------------------------------------

    def search(
        self, conn: sqlite3.Connection, filters: Filters, terms: Sequence[str], limit: int
    ) -> list[Candidate] | None:
        """The ``limit`` best memories for any of ``terms`` that ``filters`` pass, by BM25.

        None when the index cannot answer (being built elsewhere, or too few index hits
        pass the filters): the caller runs the FTS5 query instead.
        """
        if filters.scope.tenant is None:
            return None
        with self._lock:
            if not self._ready(conn):
                return None
            try:
                self._catch_up(conn, force=False)
                with _snapshot(conn):
                    return self._search(conn, filters, terms, limit)
            except (ValueError, OSError):
                self._index = None  # an unreadable index is reopened or rebuilt on next use
                return None

    def _search(
        self,
        conn: sqlite3.Connection,
        filters: Filters,
        terms: Sequence[str],
        limit: int,
    ) -> list[Candidate] | None:
        assert self._index is not None
        mark = self._mark
        searcher = self._index.searcher()
        pending = {
            int(r[0])
            for r in conn.execute(
                "SELECT DISTINCT seq FROM index_changes WHERE pos > ? AND seq <= ?",
                (mark.change_pos, mark.max_seq),
            )
        }
        kept_terms, tokens = prune(self._analyzer, searcher, terms)
        indexed: list[Candidate] = []
        if tokens:
            found = indexed_hits(
                self._schema, conn, searcher, filters, tokens, limit, mark.max_seq, pending
            )
            if found is None:
                return None
            indexed = found
        tail = lexical.search(conn, filters, kept_terms, limit, 0, after=mark.max_seq)
        for start in range(0, len(pending), 500):
            chunk = sorted(pending)[start : start + 500]
            tail += lexical.search(conn, filters, kept_terms, limit, 0, among=chunk)
        merged = sorted([*indexed, *tail], key=lambda c: (-c.score, c.key))
        return merged[:limit]


def _writer(index: tantivy.Index, wait: float) -> tantivy.IndexWriter | None:
    """The index's writer, polling while another process holds it; None after ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return index.writer(_HEAP, 1)
        except ValueError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def _store_state(conn: sqlite3.Connection) -> tuple[str, int, int, int]:
    """The store's id, highest key ever assigned, last change logged and purge count."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    high = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memories'").fetchone()
    pos = conn.execute("SELECT max(pos) FROM index_changes").fetchone()[0]
    purges = conn.execute("SELECT value FROM meta WHERE key = 'purges'").fetchone()
    return (
        str(row[0]) if row else "",
        int(high[0]) if high else 0,
        int(pos or 0),
        int(purges[0]) if purges else 0,
    )


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Any:
    """One read transaction, so the log, the rows and the filters agree."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")

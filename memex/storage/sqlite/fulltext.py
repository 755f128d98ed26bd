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
"""

from __future__ import annotations

import contextlib
import json
import logging
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

from memex.core.progress import Progress, Tally
from memex.core.query import Filters
from memex.core.ranking import Candidate
from memex.storage.sqlite import lexical, reads, sql
from memex.storage.sqlite.connection import lacked_space, writable

FORMAT = 2  # 1: the tenant only, as a ``tenant`` field
TAIL_ROWS = 2_000
TAIL_CHANGES = 500
_MARK_FILE = "watermark.json"
_HEAP = 64 * 1024 * 1024
_RETRY_SECONDS = 60.0
_BATCH = 5_000  # rows read and added per step of a build
_ROW = "seq, " + ", ".join(sql.SCOPE_COLUMNS.values()) + ", content"
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mark:
    """What the index holds: rows up to ``max_seq`` and changes up to ``change_pos``."""

    max_seq: int
    change_pos: int


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("key", stored=False, indexed=True, fast=True)
    builder.add_text_field("scope", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", stored=False, tokenizer_name="en_stem", index_option="freq")
    return builder.build()


def _analyzer() -> tantivy.TextAnalyzer:
    """The query-side twin of tantivy's ``en_stem`` tokenizer."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


class FullTextIndex:
    """The tantivy index of one store, opened, built and caught up on demand."""

    def __init__(self, folder: Path, *, writable: bool = True) -> None:
        self.folder = folder
        self.writable = writable
        self._opened = folder  # where the index was opened: the folder, or a copy of it
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        self._schema = _schema()
        self._analyzer = _analyzer()
        self._lock = threading.Lock()
        self._index: tantivy.Index | None = None
        self._store_id = ""
        self._mark = Mark(0, 0)
        self._stamp: tuple[int, int] | None = None
        self._failed_at = -_RETRY_SECONDS

    # -- opening and building -------------------------------------------------------------

    def _ready(self, conn: sqlite3.Connection) -> bool:
        """Open the index, rebuilding it if it cannot be trusted; False: use FTS5 for now."""
        self._follow_store(conn)
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
        store_id, high, top_pos = _store_state(conn)
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

    def _follow_store(self, conn: sqlite3.Connection) -> None:
        """Let go of an open index once the store's id changed (it was restored from a
        backup: a different store)."""
        if self._index is not None and _store_id(conn) != self._store_id:
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
        self._opened = self.folder
        if self.writable or writable(self.folder):
            return self.folder
        self._copy = tempfile.TemporaryDirectory(prefix="memex-lexical-")
        # Without the watermark: a copy never follows the folder (see _refresh_mark).
        skip = shutil.ignore_patterns(".tantivy-*.lock", _MARK_FILE, ".tmp-*")
        self._opened = Path(self._copy.name) / "index"
        shutil.copytree(self.folder, self._opened, ignore=skip)
        return self._opened

    def _warn(self, action: str, exc: BaseException) -> None:
        why = "no space left on the device" if lacked_space(exc, self.folder) else str(exc)
        _log.warning(
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
        self._opened = self.folder
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def _read_mark(self, store_id: str) -> Mark | None:
        try:
            path = self.folder / _MARK_FILE
            stat = path.stat()
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT or data.get("store_id") != store_id:
                return None
            self._stamp = (stat.st_mtime_ns, stat.st_ino)
            return Mark(int(data["max_seq"]), int(data["change_pos"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _write_mark(self, folder: Path, store_id: str, mark: Mark) -> None:
        data = {"format": FORMAT, "store_id": store_id, "max_seq": mark.max_seq}
        data["change_pos"] = mark.change_pos
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

    def _rebuild(
        self, conn: sqlite3.Connection, store_id: str, progress: Progress | None = None
    ) -> None:
        """Build a fresh index in a new folder from SQLite, then move it into place."""
        self._index = None
        parent = self.folder.parent
        build = Path(tempfile.mkdtemp(prefix=self.folder.name + ".build-", dir=parent))
        try:
            index = tantivy.Index(self._schema, path=str(build))
            mark = self._apply(index, conn, Mark(0, 0), store_id, build, progress)
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
        progress: Progress | None = None,
    ) -> Mark | None:
        """Add what SQLite holds beyond ``mark``, commit, then record the new watermark.

        Returns None when another process holds the index's writer.
        """
        try:
            writer = index.writer(_HEAP, 1)
        except ValueError:
            return None
        try:
            with _snapshot(conn):
                new = self._replay(writer, conn, mark, progress)
            writer.commit()
        except BaseException:
            with contextlib.suppress(ValueError):
                writer.rollback()
            raise
        finally:
            del writer  # releases the writer's lock file
        self._write_mark(folder, store_id, new)
        return new

    def _replay(
        self,
        writer: tantivy.IndexWriter,
        conn: sqlite3.Connection,
        mark: Mark,
        progress: Progress | None,
    ) -> Mark:
        key_query = tantivy.Query.term_query
        changed: list[int] = []
        if mark.max_seq == 0:
            top = conn.execute("SELECT max(pos) FROM index_changes").fetchone()[0]
            change_pos = int(top or 0)
        else:
            changes = conn.execute(
                "SELECT pos, seq FROM index_changes WHERE pos > ? ORDER BY pos", (mark.change_pos,)
            ).fetchall()
            change_pos = changes[-1][0] if changes else mark.change_pos
            changed = sorted({int(s) for _, s in changes if s <= mark.max_seq})
        total = 0
        if progress is not None:  # counted only for a caller who shows it
            fresh = conn.execute("SELECT count(*) FROM memories WHERE seq > ?", (mark.max_seq,))
            total = len(changed) + int(fresh.fetchone()[0])
        tally = Tally(progress if total else None, "indexing full text", total)
        for key in changed:
            writer.delete_documents_by_query(key_query(self._schema, "key", key))
        for row in reads.in_chunks(
            conn, f"SELECT {_ROW} FROM memories WHERE seq IN ({{marks}})", changed
        ):
            writer.add_document(self._document(row))
        tally.advance(len(changed))
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
        while rows := cursor.fetchmany(_BATCH):
            for row in rows:
                writer.add_document(self._document(row))
            max_seq = int(rows[-1][0])
            tally.advance(len(rows))
        return Mark(max_seq, change_pos)

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
            stat = (self._opened / _MARK_FILE).stat()
        except OSError:
            return
        if (stat.st_mtime_ns, stat.st_ino) != self._stamp:
            mark = self._read_mark(store_id)
            if mark is not None:  # a catch-up or a rebuild by another handle
                # Watermark first, then the reader: the searcher is never older than it.
                self._index.reload()
                self._mark = mark

    def _lag(self, conn: sqlite3.Connection, mark: Mark) -> tuple[int, int]:
        """Rows and changes after ``mark``, each counted up to its tail limit."""
        rows = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM memories WHERE seq > ? LIMIT ?)",
            (mark.max_seq, TAIL_ROWS),
        ).fetchone()[0]
        changes = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM index_changes WHERE pos > ? LIMIT ?)",
            (mark.change_pos, TAIL_CHANGES),
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

    def _catch_up(
        self, conn: sqlite3.Connection, force: bool, progress: Progress | None = None
    ) -> bool:
        assert self._index is not None
        store_id = _store_state(conn)[0]
        self._refresh_mark(store_id)
        if not self.writable:
            return False
        rows, changes = self._lag(conn, self._mark)
        if not (rows or changes) or (not force and rows < TAIL_ROWS and changes < TAIL_CHANGES):
            return True
        mark = self._apply(self._index, conn, self._mark, store_id, self.folder, progress)
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
            self._follow_store(conn)
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
        """Whether the next query would build the index or catch it up first (cheap)."""
        store_id, high, top_pos = _store_state(conn)
        if self._index is not None:
            self._refresh_mark(store_id)
            mark: Mark | None = self._mark
        elif time.monotonic() - self._failed_at < _RETRY_SECONDS:
            return False  # a build failed a moment ago: leave the retry to a query
        else:
            mark = self._trusted_mark(store_id, high, top_pos)
        if mark is None:
            return True
        rows, changes = self._lag(conn, mark)
        return rows >= TAIL_ROWS or changes >= TAIL_CHANGES

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
            except (ValueError, OSError) as exc:
                if lacked_space(exc, self.folder):  # not again on every query
                    self._warn("update", exc)
                    self._failed_at = time.monotonic()
                self.close()  # an unreadable index is reopened or rebuilt on next use
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
        kept_terms, tokens = self._prune(searcher, terms)
        indexed: list[Candidate] = []
        if tokens:
            found = self._indexed(conn, searcher, filters, tokens, limit, mark, pending)
            if found is None:
                return None
            indexed = found
        tail = lexical.search(conn, filters, kept_terms, limit, 0, after=mark.max_seq)
        for start in range(0, len(pending), 500):
            chunk = sorted(pending)[start : start + 500]
            tail += lexical.search(conn, filters, kept_terms, limit, 0, among=chunk)
        merged = sorted([*indexed, *tail], key=lambda c: (-c.score, c.key))
        return merged[:limit]

    def _indexed(
        self,
        conn: sqlite3.Connection,
        searcher: tantivy.Searcher,
        filters: Filters,
        tokens: Sequence[str],
        limit: int,
        mark: Mark,
        pending: set[int],
    ) -> list[Candidate] | None:
        """The index's best hits that pass the filters; None if too few pass."""
        term = tantivy.Query.term_query
        should = [(tantivy.Occur.Should, term(self._schema, "text", t)) for t in tokens]
        # Scope terms score nothing: the ranking is the text's BM25 alone.
        clauses = [
            (
                tantivy.Occur.Must,
                tantivy.Query.const_score_query(
                    term(self._schema, "scope", f"{name}={value}"), 0.0
                ),
            )
            for name, value in filters.scope.items()
        ]
        clauses.append((tantivy.Occur.Must, tantivy.Query.boolean_query(should)))
        query = tantivy.Query.boolean_query(clauses)
        total = max(int(searcher.num_docs), 1)
        pool = min(filters.pool(limit, tuple(sql.SCOPE_COLUMNS)), total)
        for _ in range(3):
            hits = searcher.search(query, pool, count=False).hits
            keys = searcher.fast_field_values("key", [address for _, address in hits])
            found = [
                Candidate(int(k), float(score))
                for (score, _), k in zip(hits, keys, strict=True)
                if k is not None and k <= mark.max_seq and k not in pending
            ]
            passing = reads.passing(conn, filters, [c.key for c in found])
            kept = [c for c in found if c.key in passing]
            if len(kept) >= limit or len(hits) < pool:
                return kept[:limit]
            share = max(len(kept), 1) / max(len(hits), 1)
            pool = min(int(limit / share * 1.5) + 1, total)
            if pool > max(limit * 64, total // 8):
                break
        return None

    def _prune(
        self, searcher: tantivy.Searcher, terms: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        """The query terms worth walking and their index tokens (see lexical.prune_common).

        When every term is common, the rarest two are kept rather than all of them: a
        query of common terms only walks long posting lists for little ranking value.
        """
        analysed = [(t, list(dict.fromkeys(self._analyzer.analyze(t)))) for t in terms]
        analysed = [(t, toks) for t, toks in analysed if toks]
        size = int(searcher.num_docs)
        if size >= lexical.PRUNE_MIN_MEMORIES and len(analysed) > 1:
            limit = max(lexical.PRUNE_MIN_POSTINGS, int(size * lexical.PRUNE_SHARE))
            freq = {t: max(searcher.doc_freq("text", tok) for tok in toks) for t, toks in analysed}
            rare = [(t, toks) for t, toks in analysed if freq[t] < limit]
            if not rare:
                rarest = sorted(analysed, key=lambda a: freq[a[0]])[:2]
                rare = [a for a in analysed if a in rarest]
            analysed = rare
        tokens = list(dict.fromkeys(tok for _, toks in analysed for tok in toks))
        return [t for t, _ in analysed], tokens


def _store_id(conn: sqlite3.Connection) -> str:
    """The store's id (a restore gives the store a new one)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    return str(row[0]) if row else ""


def _store_state(conn: sqlite3.Connection) -> tuple[str, int, int]:
    """The store's id, highest key ever assigned and last change logged."""
    high = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memories'").fetchone()
    pos = conn.execute("SELECT max(pos) FROM index_changes").fetchone()[0]
    return (_store_id(conn), int(high[0]) if high else 0, int(pos or 0))


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

"""Writing the tantivy index: replaying what SQLite holds beyond a watermark, then
committing and recording the new watermark (see ``memex.storage.sqlite.fulltext``).

A catch-up deletes before it adds, so replaying work a watermark did not record is
harmless; a fresh rewrite deletes every document, so the commit drops every old
segment and removes its files (what a purge needs).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import tantivy

from memex.core.progress import Progress, Tally
from memex.storage.sqlite import reads
from memex.storage.sqlite.fulltext_mark import Mark, store_meta, write_mark
from memex.storage.sqlite.fulltext_query import ROW, document

_HEAP = 64 * 1024 * 1024
_BATCH = 5_000  # rows read and added per step of a build


def apply_changes(
    index: tantivy.Index,
    schema: tantivy.Schema,
    conn: sqlite3.Connection,
    mark: Mark,
    store_id: str,
    folder: Path,
    progress: Progress | None = None,
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
        with reads.read_transaction(conn):
            new = _replay(writer, schema, conn, mark, progress, fresh)
        writer.commit()  # also removes the files of segments no longer listed
        # Let the merge policy finish its merges (they are dropped with the writer
        # otherwise): each commit adds a segment, every search walks them all, and at
        # 100,000 memories twenty segments search at half the speed of one.
        writer.wait_merging_threads()
    except BaseException:
        with contextlib.suppress(ValueError):
            writer.rollback()
        raise
    finally:
        del writer  # releases the writer's lock file
    write_mark(folder, store_id, new)
    return new


def _replay(
    writer: tantivy.IndexWriter,
    schema: tantivy.Schema,
    conn: sqlite3.Connection,
    mark: Mark,
    progress: Progress | None,
    fresh: bool,
) -> Mark:
    key_query = tantivy.Query.term_query
    purges = store_meta(conn)[1] if fresh else mark.purges
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
        new = conn.execute("SELECT count(*) FROM memories WHERE seq > ?", (mark.max_seq,))
        total = len(changed) + int(new.fetchone()[0])
    tally = Tally(progress if total else None, "indexing full text", total)
    for key in changed:
        writer.delete_documents_by_query(key_query(schema, "key", key))
    for row in reads.in_chunks(
        conn, f"SELECT {ROW} FROM memories WHERE seq IN ({{marks}})", changed
    ):
        writer.add_document(document(row))
    tally.advance(len(changed))
    # Rows a killed catch-up committed without recording them: replace, not repeat.
    writer.delete_documents_by_query(
        tantivy.Query.range_query(schema, "key", tantivy.FieldType.Unsigned, mark.max_seq + 1, None)
    )
    max_seq = mark.max_seq
    cursor = conn.execute(f"SELECT {ROW} FROM memories WHERE seq > ? ORDER BY seq", (mark.max_seq,))
    while rows := cursor.fetchmany(_BATCH):
        for row in rows:
            writer.add_document(document(row))
        max_seq = int(rows[-1][0])
        tally.advance(len(rows))
    # Keys above the last row were purged (keys are never reused): the index holds every
    # row up to the highest key assigned, so they count as no lag.
    return Mark(max(max_seq, reads.high_key(conn)), change_pos, purges)


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

"""SQL for swapping in a new set of vectors after a reindex, and for its staging tables.

Staged rows carry the hash of the content that was embedded, so the swap can tell a
memory written or changed during the reindex from one that is ready, and refuse.

A staging table is named after the process (host and pid) and thread that reindex
into it, and dropped when the reindex ends. A process killed meanwhile cannot drop it,
so tables whose process is gone are dropped when the store is next opened or
reindexed; their pages are then reused instead of the file growing with every
interrupted reindex.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from memex.core.models import content_hash
from memex.core.progress import Tally
from memex.errors import ConflictError
from memex.storage.base import StoredVectors, Vector
from memex.storage.sqlite import sql
from memex.storage.sqlite.changes import bump_epoch
from memex.storage.sqlite.connection import without_waiting
from memex.storage.sqlite.model import set_model
from memex.storage.sqlite.writes import blob

_PREFIX = "vectors_reindex_"
# Older memex named staging tables without the host: vectors_reindex_<pid>_<thread>.
_NAME = re.compile(r"^vectors_reindex_(?:([0-9a-f]{8})_)?(\d+)_(\d+)$")


Write = Callable[[Callable[[sqlite3.Connection], Any]], Any]
"""Runs a function in a write transaction (the store's own)."""


def replace(
    write: Write,
    rows: Callable[[str, Sequence[Any]], list[Any]],
    model: StoredVectors,
    embed: Callable[[Sequence[str]], Vector],
    batch_size: int,
    tally: Tally,
) -> int:
    """Embed every memory into a staging table, a batch at a time, then swap it in.

    The swap fails with ConflictError if a memory was written or changed meanwhile; the
    staging table goes whatever happens. Returns how many memories were embedded.
    """
    staging = staging_name()
    write(lambda c: create_staging(c, staging))
    try:
        count = 0
        last = 0
        query = (
            f"SELECT seq, {sql.plain('content')} FROM memories WHERE seq > ? ORDER BY seq LIMIT ?"
        )
        while batch := rows(query, (last, batch_size)):
            last = batch[-1][0]
            vectors = embed([str(content) for _, content in batch])
            staged = [
                (int(key), content_hash(str(content)), blob(vector, model.dimensions))
                for (key, content), vector in zip(batch, vectors, strict=True)
            ]
            write(functools.partial(stage, staging=staging, rows=staged))
            count += len(staged)
            tally.advance(len(staged))

        def finish(conn: sqlite3.Connection) -> None:
            swap(conn, staging)
            set_model(conn, model)
            bump_epoch(conn)

        write(finish)
    finally:
        write(lambda c: drop_tables(c, [staging]))
    return count


@functools.cache
def _host() -> str:
    """This machine, as staging table names carry it (a hash of its host name)."""
    import hashlib

    return hashlib.sha256(os.uname().nodename.encode()).hexdigest()[:8]


def staging_name() -> str:
    """The staging table of a reindex run by this thread of this process."""
    return f"{_PREFIX}{_host()}_{os.getpid()}_{threading.get_ident()}"


def create_staging(conn: sqlite3.Connection, staging: str) -> None:
    """A table for the new vectors, private to this reindex (stale ones dropped first)."""
    drop_tables(conn, stale_staging(conn))
    conn.execute(
        f"CREATE TABLE {staging} (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, "
        "content_hash TEXT NOT NULL, vector BLOB NOT NULL)"
    )


def stage(conn: sqlite3.Connection, staging: str, rows: list[tuple[int, str, bytes]]) -> None:
    """Stage (key, content hash, vector blob) rows; memories purged meanwhile are skipped."""
    conn.executemany(
        f"INSERT INTO {staging} (seq, tenant, content_hash, vector) "
        "SELECT seq, tenant, ?, ? FROM memories WHERE seq = ?",
        [(chash, blob, key) for key, chash, blob in rows],
    )


def swap(conn: sqlite3.Connection, staging: str) -> None:
    """Replace every vector with the staged ones (inside the caller's transaction)."""
    stale = conn.execute(
        f"SELECT count(*) FROM memories m LEFT JOIN {staging} s ON s.seq = m.seq "
        f"WHERE s.seq IS NULL OR s.content_hash <> {sql.plain('content_hash', 'm')}"
    ).fetchone()[0]
    if stale:
        raise ConflictError(
            f"{stale} memories were written or changed during the reindex; run it again"
        )
    with _vectors_only(conn):
        conn.execute("DELETE FROM vectors")
    conn.execute(
        f"INSERT INTO vectors (seq, tenant, vector) SELECT s.seq, s.tenant, s.vector "
        f"FROM {staging} s JOIN memories m ON m.seq = s.seq"
    )


def stale_staging(conn: sqlite3.Connection) -> list[str]:
    """Staging tables whose reindex cannot be running: their process is gone (reads only).

    Tables of this process, of a live process, or of another host (whose processes
    cannot be seen from here) are left alone.
    """
    rows = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND substr(name, 1, ?) = ?",
        (len(_PREFIX), _PREFIX),
    ).fetchall()
    stale = []
    for (name,) in rows:
        match = _NAME.match(str(name))
        if match is None or match.group(1) not in (None, _host()):
            continue
        pid = int(match.group(2))
        if pid != os.getpid() and not _alive(pid):
            stale.append(str(name))
    return stale


def drop_tables(conn: sqlite3.Connection, names: list[str]) -> None:
    """Drop staging tables (inside the caller's transaction)."""
    with _vectors_only(conn):
        for name in names:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def drop_stale_staging(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Drop stale staging tables if the write lock is free now; never wait for it, and
    leave them for later on a store this process cannot write."""
    stale = stale_staging(conn)
    if not stale:
        return
    with without_waiting(conn, busy_timeout_ms / 1000):
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                drop_tables(conn, stale_staging(conn))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            pass  # locked, read-only or full: the next open or reindex tries again


def _alive(pid: int) -> bool:
    if os.name == "nt":  # no signal-0 probe there; keeping a table is the safe mistake
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


@contextlib.contextmanager
def _vectors_only(conn: sqlite3.Connection) -> Iterator[None]:
    """Skip zeroing freed pages for statements that delete vectors only (no text): a
    reindex would otherwise write every page of the old vectors once more."""
    conn.execute("PRAGMA secure_delete = OFF")
    try:
        yield
    finally:
        conn.execute("PRAGMA secure_delete = ON")

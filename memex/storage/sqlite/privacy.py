"""Erasure and anonymisation in a SQLite store (``memex.storage.privacy``).

An erasure removes its memories in batches, one write transaction each, as a purge
removes one memory (``purge.py``: rows, history, vectors, saved contexts, the change
logs the derived indexes replay), but without a purge's scrub per call: merging the
FTS5 index and rewriting the tantivy index cost as much for one memory as for a
thousand, so ``scrub`` does both once, after the last batch. Until then the ``meta``
row ``privacy_scrub`` says a scrub is owed (a second run does it even when nothing is
left to erase), and each batch counts as a purge in ``meta``, so a process that opens
the store or catches the tantivy index up rewrites it by itself (``fulltext.scrub``).
Free pages are zeroed as they are freed (``secure_delete``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from memex.core.privacy import Selector, renamed_session, session_names
from memex.errors import ConflictError
from memex.storage.privacy import Erased
from memex.storage.sqlite.changes import log_changes, log_memory_changes
from memex.storage.sqlite.purge import merge_fulltext

T = TypeVar("T")
PENDING = "privacy_scrub"
WAL_HELD = (
    "a reader of an older snapshot holds the write-ahead log (-wal), which still has page "
    "images of the erased rows: the next write of a batch or close empties it, and the "
    "last connection to close deletes it"
)


class Reader(Protocol):
    """Runs a read on one of the store's connections, translating driver errors."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T], /) -> T: ...


class Writer(Protocol):
    """Runs a write transaction on the store (refused when it is read-only)."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T], /, *, wait: bool = ...) -> T: ...


def _where(selector: Selector) -> tuple[str, list[Any]]:
    """The selector's memories, as a condition on ``memories`` (or ``memory_history``)."""
    if selector.user is not None:
        return "tenant = ? AND user_id = ?", [selector.tenant, selector.user]
    if selector.project is not None:
        return "tenant = ? AND project = ?", [selector.tenant, selector.project]
    return "tenant = ?", [selector.tenant]


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


class SQLitePrivacy:
    """The privacy operations of one SQLite store."""

    def __init__(
        self,
        read: Reader,
        write: Writer,
        scrub_files: Callable[[], tuple[str, ...]],
        forget_opened: Callable[[str], None],
    ):
        """``scrub_files`` empties the write-ahead log and rewrites the tantivy index
        (the store's own steps after a purge), returning notes on what it could not do;
        ``forget_opened`` drops a tenant's opened values from memory
        (``storage.opened.Opened``)."""
        self._read = read
        self._write = write
        self._scrub_files = scrub_files
        self._forget_opened = forget_opened

    def count(self, selector: Selector) -> int:
        """How many memories the selector covers."""
        where, params = _where(selector)
        query = f"SELECT count(*) FROM memories WHERE {where}"
        return int(self._read(lambda c: c.execute(query, params).fetchone()[0]))

    def known(self, selector: Selector) -> bool:
        """Whether the store holds anything of the selector."""
        return self._read(lambda c: _known(c, selector))

    def superseding(self, tenant: str, ids: Sequence[str]) -> set[str]:
        """Which of these ids a memory of the tenant names as ``superseded_by``."""
        if not ids:
            return set()
        query = (
            "SELECT DISTINCT superseded_by FROM memories "
            f"WHERE tenant = ? AND superseded_by IN ({_marks(ids)})"
        )
        return {str(r[0]) for r in self._read(lambda c: c.execute(query, [tenant, *ids]))}

    def erase_batch(self, selector: Selector, ids: Sequence[str]) -> Erased:
        """Remove these memories of the selector, in one transaction."""
        try:
            return self._write(lambda c: _erase_batch(c, selector, ids))
        finally:
            self._forget_opened(selector.tenant)

    def erase_rest(self, selector: Selector) -> Erased:
        """Remove the selector's sessions, keys and directory entries."""
        try:
            return self._write(lambda c: _erase_rest(c, selector))
        finally:
            self._forget_opened(selector.tenant)

    def scrub_pending(self) -> bool:
        """Whether a scrub is owed."""
        query = "SELECT 1 FROM meta WHERE key = ?"
        return self._read(lambda c: c.execute(query, (PENDING,)).fetchone() is not None)

    def scrub(self) -> tuple[str, ...]:
        """Merge the FTS5 index into one segment (dropping erased terms), then empty the
        write-ahead log and rewrite the tantivy index."""

        def merge(conn: sqlite3.Connection) -> None:
            merge_fulltext(conn)
            conn.execute("DELETE FROM meta WHERE key = ?", (PENDING,))

        self._write(merge)
        return self._scrub_files()

    def anonymise(self, selector: Selector, pseudonym: str) -> dict[str, int]:
        """Rename the selector's user, in one transaction."""
        try:
            return self._write(lambda c: _anonymise(c, selector, pseudonym))
        finally:
            self._forget_opened(selector.tenant)


def _known(conn: sqlite3.Connection, selector: Selector) -> bool:
    where, params = _where(selector)
    if conn.execute(f"SELECT 1 FROM memories WHERE {where} LIMIT 1", params).fetchone():
        return True
    if selector.kind == "tenant":
        found = conn.execute("SELECT 1 FROM tenants WHERE name = ?", (selector.tenant,))
        return found.fetchone() is not None
    table, name = ("users", selector.user) if selector.user else ("projects", selector.project)
    query = f"SELECT 1 FROM {table} WHERE tenant = ? AND name = ?"
    if conn.execute(query, (selector.tenant, name)).fetchone():
        return True
    return bool(_named_sessions(conn, selector))


def _owe_scrub(conn: sqlite3.Connection) -> None:
    """Record that erased text may linger until ``scrub``, and count a purge, which tells
    the tantivy index (in any process) to rewrite itself."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (PENDING,))
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('purges', 1) ON CONFLICT (key) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )


def _erase_batch(conn: sqlite3.Connection, selector: Selector, wanted: Sequence[str]) -> Erased:
    if not wanted:
        return Erased()
    where, params = _where(selector)
    found = conn.execute(
        f"SELECT seq, id FROM memories WHERE {where} AND id IN ({_marks(wanted)})",
        [*params, *wanted],
    ).fetchall()
    if not found:
        return Erased()
    tenant = selector.tenant
    keys = [int(r[0]) for r in found]
    ids = [str(r[1]) for r in found]
    at_keys, at_ids = _marks(keys), _marks(ids)
    past = conn.execute(
        f"DELETE FROM memory_history WHERE tenant = ? AND id IN ({at_ids})", [tenant, *ids]
    ).rowcount
    vectors = conn.execute(f"DELETE FROM vectors WHERE seq IN ({at_keys})", keys).rowcount
    sessions = _drop_sessions(
        conn,
        tenant,
        [
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT session FROM context_session_memories "
                f"WHERE tenant = ? AND id IN ({at_ids})",
                [tenant, *ids],
            )
        ],
    )
    memories = conn.execute(f"DELETE FROM memories WHERE seq IN ({at_keys})", keys).rowcount
    log_changes(conn, tenant, keys)
    log_memory_changes(conn, tenant, keys)
    _owe_scrub(conn)
    counts = {
        "memories": memories,
        "versions": memories + past,
        "vectors": vectors,
        "sessions": sessions,
    }
    return Erased(tuple(ids), counts)


def _drop_sessions(conn: sqlite3.Connection, tenant: str, sessions: Sequence[str]) -> int:
    """Delete these saved sessions of the tenant; how many there were."""
    pairs = [(tenant, s) for s in sessions]
    before = conn.total_changes
    conn.executemany("DELETE FROM context_sessions WHERE tenant = ? AND session = ?", pairs)
    dropped = conn.total_changes - before
    conn.executemany("DELETE FROM context_session_memories WHERE tenant = ? AND session = ?", pairs)
    return dropped


def _named_sessions(conn: sqlite3.Connection, selector: Selector) -> list[str]:
    """The tenant's saved sessions whose scope names the selector's user or project."""
    name, value = ("user", selector.user) if selector.user else ("project", selector.project)
    rows = conn.execute("SELECT session FROM context_sessions WHERE tenant = ?", (selector.tenant,))
    return [str(r[0]) for r in rows if value is not None and session_names(str(r[0]), name, value)]


def _erase_rest(conn: sqlite3.Connection, selector: Selector) -> Erased:
    tenant = selector.tenant
    counts: dict[str, int] = {}
    if selector.kind == "tenant":
        counts["sessions"] = conn.execute(
            "DELETE FROM context_sessions WHERE tenant = ?", (tenant,)
        ).rowcount
        conn.execute("DELETE FROM context_session_memories WHERE tenant = ?", (tenant,))
        conn.execute("DELETE FROM change_counters WHERE tenant = ?", (tenant,))
        counts["keys"] = conn.execute("DELETE FROM api_keys WHERE tenant = ?", (tenant,)).rowcount
        counts["users"] = conn.execute("DELETE FROM users WHERE tenant = ?", (tenant,)).rowcount
        counts["projects"] = conn.execute(
            "DELETE FROM projects WHERE tenant = ?", (tenant,)
        ).rowcount
        conn.execute("DELETE FROM tenant_quotas WHERE tenant = ?", (tenant,))
        counts["tenants"] = conn.execute("DELETE FROM tenants WHERE name = ?", (tenant,)).rowcount
    else:
        counts["sessions"] = _drop_sessions(conn, tenant, _named_sessions(conn, selector))
        column, table, name = (
            ("user_id", "users", selector.user)
            if selector.user
            else ("project", "projects", selector.project)
        )
        if selector.project is not None:
            conn.execute(
                "DELETE FROM change_counters WHERE tenant = ? AND project = ?", (tenant, name)
            )
        counts["keys"] = conn.execute(
            f"DELETE FROM api_keys WHERE tenant = ? AND {column} = ?", (tenant, name)
        ).rowcount
        counts[table] = conn.execute(
            f"DELETE FROM {table} WHERE tenant = ? AND name = ?", (tenant, name)
        ).rowcount
    if counts.get("keys") or counts.get("users") or counts.get("projects") or counts.get("tenants"):
        # Servers keep verified keys in memory: the new generation makes them read again.
        conn.execute("UPDATE directory_generation SET generation = generation + 1 WHERE id = 1")
    if any(counts.values()):
        _owe_scrub(conn)
    return Erased((), counts)


def _anonymise(conn: sqlite3.Connection, selector: Selector, pseudonym: str) -> dict[str, int]:
    tenant, user = selector.tenant, str(selector.user)
    taken = conn.execute(
        "SELECT 1 FROM users WHERE tenant = ? AND name = ? UNION ALL "
        "SELECT 1 FROM memories WHERE tenant = ? AND user_id = ? LIMIT 1",
        (tenant, pseudonym, tenant, pseudonym),
    ).fetchone()
    if taken is not None:
        raise ConflictError(f"user {pseudonym!r} exists in tenant {tenant!r}")
    renamed = conn.execute(
        "UPDATE memories SET user_id = ? WHERE tenant = ? AND user_id = ? RETURNING seq",
        (pseudonym, tenant, user),
    ).fetchall()
    keys = [int(r[0]) for r in renamed]
    # The tantivy index keeps a user term per memory, and threads group by user: both
    # replay these logs. The change counters are left: no kind, tag or content changed.
    log_changes(conn, tenant, keys)
    log_memory_changes(conn, tenant, keys)
    past = conn.execute(
        "UPDATE memory_history SET user_id = ? WHERE tenant = ? AND user_id = ?",
        (pseudonym, tenant, user),
    ).rowcount
    sessions = _named_sessions(conn, selector)
    for old in sessions:
        query = "SELECT typeof(text) FROM context_sessions WHERE tenant = ? AND session = ?"
        if conn.execute(query, (tenant, old)).fetchone()[0] == "blob":
            _drop_sessions(conn, tenant, [old])  # sealed: its seal is bound to its name
            continue
        new = renamed_session(old, user, pseudonym)
        for table in ("context_sessions", "context_session_memories"):
            conn.execute(
                f"UPDATE {table} SET session = ? WHERE tenant = ? AND session = ?",
                (new, tenant, old),
            )
    users = conn.execute(
        "INSERT INTO users (tenant, name, created_at) SELECT tenant, ?, created_at FROM users "
        "WHERE tenant = ? AND name = ?",
        (pseudonym, tenant, user),
    ).rowcount
    keys_renamed = conn.execute(
        "UPDATE api_keys SET user_id = ? WHERE tenant = ? AND user_id = ?",
        (pseudonym, tenant, user),
    ).rowcount
    conn.execute("DELETE FROM users WHERE tenant = ? AND name = ?", (tenant, user))
    if users or keys_renamed:
        conn.execute("UPDATE directory_generation SET generation = generation + 1 WHERE id = 1")
    counts = {
        "memories": len(keys),
        "versions": len(keys) + past,
        "sessions": len(sessions),
        "keys": keys_renamed,
        "users": users,
    }
    if any(counts.values()):
        _owe_scrub(conn)
    return counts

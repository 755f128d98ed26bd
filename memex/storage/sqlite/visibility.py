"""Which of a tenant's memories a plain recall may return, known without reading rows.

A recall checks every candidate its legs find against the filters; in SQL that is one
row lookup a candidate, a few hundred per recall. Most memories are plainly current for
good: never forgotten, no expiry, no end of validity, valid from their creation. Only
the others (``memories_limited`` indexes them) can be hidden by the default filters, so
a process keeps just those in memory, with their times, and answers the check for the
rest by their key alone. A refresh per recall (one statement when nothing changed)
catches up with what any process wrote since: new memories (keys only grow) and the
memories whose rows a write changed or removed (``memory_changes``).

Only filters that hide by visibility alone, on fields the leg's index already enforces,
are answered here; anything else goes to SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from memex.core.models import SCOPE_FIELDS, to_micros, utcnow
from memex.core.query import Filters
from memex.storage.sqlite import reads
from memex.storage.sqlite.threads import COLUMNS, Threads

LIMITED = (
    "deleted_at IS NOT NULL OR expires_at IS NOT NULL OR valid_until IS NOT NULL "
    "OR valid_from IS NOT created_at"
)
"""The rows ``memories_limited`` holds (its WHERE, word for word, so SQLite uses it)."""

NEWER = "FROM memories WHERE seq > ? AND +tenant = ?"
"""A tenant's rows past the last refresh: few, found by the key's range (``+tenant``
keeps SQLite from choosing the tenant's index, which reads every row of the tenant)."""
_TIMES = "seq, created_at, deleted_at, expires_at, valid_from, valid_until"
_PROBE = (
    "SELECT (SELECT value FROM meta WHERE key = 'store_id'), "
    "(SELECT seq FROM sqlite_sequence WHERE name = 'memories'), "
    "(SELECT max(pos) FROM memory_changes WHERE tenant = ?)"
)

Times = tuple[int | None, int | None, int | None, int | None]
"""A limited memory's deleted_at, expires_at, valid_from and valid_until (µs)."""

Check = Callable[[Sequence[int]], Collection[int]]
"""Which of some keys the filters let through."""

THREADS_AFTER = 3
"""The recall (with neighbours, per tenant) from which a process reads the tenant's
threads into memory: reading them takes about 0.3 s at 100,000 memories, which a
one-off command (a command-line recall) would pay for nothing."""


@dataclass
class _Tenant:
    store_id: str
    max_key: int
    change_pos: int
    latest_start: int  # no memory outside ``limited`` was created (so valid) after this
    alone: bool  # no memory of another tenant is in the store
    limited: dict[int, Times] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)  # removed since the state was read
    threads: Threads | None = None  # read once asked for often enough, then kept in step
    asked: int = 0  # how often neighbours were asked of memory


def current(times: Times, now: int) -> bool:
    """``memex.core.visibility.state_at`` is "current" (in µs; no NULL valid_from here)."""
    deleted, expires, valid_from, valid_until = times
    if deleted is not None and (expires is None or deleted < expires):
        return False  # forgotten
    if expires is not None and expires <= now:
        return False  # expired
    if valid_until is not None and valid_until <= now:
        return False  # superseded
    return valid_from is not None and valid_from <= now


def plain(filters: Filters, enforced: Collection[str]) -> bool:
    """Whether ``filters`` hide by visibility alone, beyond scope fields in ``enforced``."""
    return not (
        filters.kinds
        or filters.tags
        or filters.metadata
        or filters.since is not None
        or filters.until is not None
        or filters.as_of is not None
        or filters.include_deleted
        or filters.include_superseded
        or filters.superseded_by is not None
        or filters.expired_by is not None
        or any(name not in enforced for name, _ in filters.scope.items())
    )


class Visibility:
    """Per tenant, the memories that the default filters may hide, kept in step."""

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.Lock()

    def refresh(self, conn: sqlite3.Connection, tenant: str) -> None:
        """Catch up with every write since the last refresh (one statement if none)."""
        with self._lock:
            state = self._tenants.get(tenant)
            store_id, top, pos = conn.execute(_PROBE, (tenant,)).fetchone()
            if (
                state is not None
                and state.store_id == str(store_id or "")
                and int(top or 0) == state.max_key
                and int(pos or 0) == state.change_pos
            ):
                return
            with reads.read_transaction(conn):
                self._tenants[tenant] = self._caught_up(conn, tenant, state)

    def check(
        self,
        conn: sqlite3.Connection,
        filters: Filters,
        enforced: Collection[str],
        ids: dict[int, str] | None = None,
        at: int | None = None,
    ) -> tuple[Check, bool]:
        """A check of keys against ``filters``: from memory, as of the last refresh, when
        the filters hide by visibility alone; else (and for keys newer than the refresh)
        in SQL, which also puts the ids of the keys it passes in ``ids``. ``at`` (µs):
        the time visibility is judged at, for tests (default: now; SQL always uses now).

        With it, whether the check holds the tenant alone in the store (as of the same
        refresh): then a search need not match the tenant, since every key the check
        passes from memory is the tenant's and it asks SQL (which matches the tenant)
        about any newer key."""

        def in_sql(keys: Sequence[int]) -> Collection[int]:
            return reads.passing(conn, filters, keys, ids)

        tenant = filters.scope.tenant
        state = self._tenants.get(tenant) if tenant is not None else None
        now = to_micros(utcnow()) if at is None else at
        if state is None or state.latest_start > now or not plain(filters, enforced):
            return in_sql, False
        # One reading of the state: a refresh by another thread may move it meanwhile.
        limited, gone, max_key, alone = state.limited, state.gone, state.max_key, state.alone

        def in_memory(keys: Sequence[int]) -> Collection[int]:
            out: set[int] = set()
            newer: list[int] = []
            for key in keys:
                if key > max_key:
                    newer.append(key)
                elif key not in gone:
                    times = limited.get(key)
                    if times is None or current(times, now):
                        out.add(key)
            if newer:
                out.update(in_sql(newer))
            return out

        return in_memory, alone

    def neighbours(
        self, conn: sqlite3.Connection, filters: Filters, keys: Sequence[int], radius: int
    ) -> dict[int, list[int]] | None:
        """``neighbours.thread_neighbours`` from memory, as of the last refresh, when the
        filters hide by visibility alone (a member of a key's thread shares its scope);
        None when memory cannot tell: ask SQL."""
        tenant = filters.scope.tenant
        state = self._tenants.get(tenant) if tenant is not None else None
        now = to_micros(utcnow())
        if state is None or state.latest_start > now or not plain(filters, SCOPE_FIELDS):
            return None
        if state.threads is None:
            state.asked += 1
            if state.asked < THREADS_AFTER:  # a one-off command never pays for the load
                return None
            with self._lock, reads.read_transaction(conn):
                if state.threads is None:
                    state.threads = Threads.load(conn, str(tenant), state.max_key)
        limited, gone, max_key = state.limited, state.gone, state.max_key

        def passes(key: int) -> bool | None:
            if key > max_key:
                return None
            if key in gone:
                return False
            times = limited.get(key)
            return times is None or current(times, now)

        with self._lock:  # a refresh on another thread may be filing rows meanwhile
            return state.threads.around(keys, radius, dict(filters.scope.items()), passes)

    def _caught_up(self, conn: sqlite3.Connection, tenant: str, state: _Tenant | None) -> _Tenant:
        store_id, top, pos = conn.execute(_PROBE, (tenant,)).fetchone()
        store_id, top, pos = str(store_id or ""), int(top or 0), int(pos or 0)
        if (
            state is None
            or state.store_id != store_id
            or pos < state.change_pos
            or top < state.max_key  # the file was replaced by an older one: start again
        ):
            return self._loaded(conn, tenant, store_id, top, pos)
        changed = [
            int(r[0])
            for r in conn.execute(
                "SELECT DISTINCT seq FROM memory_changes WHERE tenant = ? AND pos > ?",
                (tenant, state.change_pos),
            )
        ]
        found = reads.in_chunks(
            conn, f"SELECT {_TIMES} FROM memories WHERE seq IN ({{marks}})", changed
        )
        present = {row[0] for row in found}
        for key in changed:
            if key not in present:
                state.limited.pop(key, None)
                state.gone.add(key)
        rows = conn.execute(f"SELECT {_TIMES} {NEWER}", (state.max_key, tenant)).fetchall()
        for row in [*found, *rows]:
            _place(state, row)
        if state.threads is not None:
            state.threads.drop(key for key in changed if key not in present)
            state.threads.put(
                reads.in_chunks(
                    conn, f"SELECT {COLUMNS} FROM memories WHERE seq IN ({{marks}})", changed
                )
            )
            state.threads.put(
                conn.execute(
                    f"SELECT {COLUMNS} {NEWER}",
                    (state.max_key, tenant),
                )
            )
        if (
            state.alone
            and conn.execute(
                "SELECT EXISTS (SELECT 1 FROM memories WHERE seq > ? AND tenant <> ?)",
                (state.max_key, tenant),
            ).fetchone()[0]
        ):
            state.alone = False
        state.max_key, state.change_pos = max(top, state.max_key), pos
        return state

    def _loaded(
        self, conn: sqlite3.Connection, tenant: str, store_id: str, top: int, pos: int
    ) -> _Tenant:
        latest, others = conn.execute(
            "SELECT (SELECT max(created_at) FROM memories WHERE tenant = ?), "
            "EXISTS (SELECT 1 FROM memories WHERE tenant < ?) "
            "OR EXISTS (SELECT 1 FROM memories WHERE tenant > ?)",
            (tenant, tenant, tenant),
        ).fetchone()
        state = _Tenant(store_id, top, pos, int(latest or 0), not others)
        rows = conn.execute(
            f"SELECT {_TIMES} FROM memories INDEXED BY memories_limited "
            f"WHERE tenant = ? AND ({LIMITED})",
            (tenant,),
        )
        for row in rows:
            state.limited[row[0]] = row[2:]
        return state

    def clear(self) -> None:
        """Forget every tenant's state (read again on next use)."""
        with self._lock:
            self._tenants.clear()


def _place(state: _Tenant, row: Sequence[int | None]) -> None:
    """File a memory's row (``_TIMES``) under limited or plain."""
    key, created, deleted, expires, valid_from, valid_until = row
    assert key is not None
    if deleted is None and expires is None and valid_until is None and valid_from == created:
        state.limited.pop(key, None)
        state.latest_start = max(state.latest_start, int(created or 0))
    else:
        state.limited[key] = (deleted, expires, valid_from, valid_until)

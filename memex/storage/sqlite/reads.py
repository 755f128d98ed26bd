"""Read queries of the SQLite store that need more than one statement."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.models import Scope, utcnow
from memex.core.query import Filters
from memex.core.visibility import content_bytes, count_states
from memex.storage.encryption import SEALED_OVERHEAD
from memex.storage.sqlite import sql
from memex.storage.sqlite.rows import ContentsOpener

if TYPE_CHECKING:
    from memex.core.ranking import Facts

MAX_VARS = 900


@contextlib.contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction (unless one is open already), so that several statements
    see the same state of the store: a change log, the rows it names, the filters."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def high_key(conn: sqlite3.Connection) -> int:
    """The highest memory key ever assigned (keys are never reused, purged ones neither)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memories'").fetchone()
    return int(row[0]) if row else 0


def in_chunks(
    conn: sqlite3.Connection,
    query: str,
    keys: Sequence[Any],
    params: Sequence[Any] = (),
    convert: Callable[[Any], Any] = int,
) -> list[tuple[Any, ...]]:
    """Rows of ``query`` for every key, asked a chunk of keys at a time.

    ``query`` has one ``{marks}`` placeholder for the chunk's parameter marks; the
    chunk's keys come first (each passed through ``convert``: row keys may come as
    numpy integers), then ``params``.
    """
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(keys), MAX_VARS):
        chunk = [convert(k) for k in keys[start : start + MAX_VARS]]
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(query.format(marks=marks), [*chunk, *params]).fetchall())
    return rows


def by_keys(
    conn: sqlite3.Connection, columns: str, keys: Sequence[int], where: str, params: list[Any]
) -> list[tuple[Any, ...]]:
    """``columns`` of the rows behind ``keys`` that also match ``where``, in chunks."""
    # NOT INDEXED: look rows up by key; without statistics SQLite would otherwise walk
    # a tenant index over every memory of the tenant.
    query = f"SELECT {columns} FROM memories m NOT INDEXED WHERE m.seq IN ({{marks}}) AND {where}"
    return in_chunks(conn, query, keys, params)


_THREAD = [f"m.{c}" for name, c in sql.SCOPE_COLUMNS.items() if name != "tenant"]
FACTS_COLUMNS = ", ".join(
    ["m.seq", *_THREAD, "m.kind", "m.created_at", "m.importance", "m.content", "m.id", "m.version"]
)
"""What ranking needs of a candidate (``memex.core.ranking.Facts``), behind its key, and
its id (and version, to open sealed content). The thread is every scope field but the
tenant (which the filters fix) and the kind, made a tuple here: joining them in SQL
costs more than the row's lookup."""

_END = len(_THREAD) + 2  # where the thread's columns end


def facts_of(
    rows: Iterable[Sequence[Any]],
    into: dict[int, Facts],
    ids: dict[int, str],
    tenant: str,
    opener: ContentsOpener,
) -> None:
    """Add the facts of rows selected as ``FACTS_COLUMNS`` to ``into``, their ids to
    ``ids``; sealed content (of the encrypted ``tenant``) is opened with ``opener``, all
    of the rows' at once."""
    from memex.core.ranking import Facts

    make = Facts._make
    end = _END
    found = rows if isinstance(rows, list) else list(rows)
    sealed = [(r[end + 3], r[end + 4], r[end + 2]) for r in found if type(r[end + 2]) is bytes]
    texts = iter(opener(tenant, sealed) if sealed else ())
    for r in found:
        text = r[end + 2]
        if type(text) is bytes:
            text = next(texts)
        into[r[0]] = make((tuple(r[1:end]), r[end], r[end + 1], text))
        ids[r[0]] = r[end + 3]


def passing(
    conn: sqlite3.Connection,
    filters: Filters,
    keys: Sequence[int],
    ids: dict[int, str] | None = None,
) -> Collection[int]:
    """Which of ``keys`` the filters let through; with ``ids``, their ids go there too
    (a recall returns them, and they cost next to nothing more than the check)."""
    where, params = sql.filter_clause(filters, utcnow())
    if ids is None:
        return {r[0] for r in by_keys(conn, "m.seq", keys, where, params)}
    found = dict(by_keys(conn, "m.seq, m.id", keys, where, params))
    ids.update(found)
    return found.keys()


def by_ids(
    conn: sqlite3.Connection, filters: Filters, ids: Sequence[str], keys: Mapping[str, int]
) -> list[tuple[Any, ...]]:
    """Rows (``sql.COLUMNS``) of the memories with these ids that pass ``filters``;
    ``keys`` maps ids to keys where known (a recall's candidates), to look rows up by
    key rather than through the (tenant, id) index."""
    where, params = sql.filter_clause(filters, utcnow())
    rows: list[tuple[Any, ...]] = []
    if all(memory_id in keys for memory_id in ids):  # a recall's page
        rows = by_keys(conn, sql.COLUMNS, [keys[memory_id] for memory_id in ids], where, params)
        if len(rows) == len(set(ids)):
            return rows
        # A miss: filtered out, or purged and written again under a new key.
        ids = list(set(ids) - {row[1] for row in rows})
    query = f"SELECT {sql.COLUMNS} FROM memories m WHERE m.id IN ({{marks}}) AND {where}"
    return rows + in_chunks(conn, query, list(dict.fromkeys(ids)), params, convert=str)


def vectors_by_hash(
    conn: sqlite3.Connection, tenant: str, hashes: Sequence[str]
) -> dict[str, bytes]:
    """Stored vectors of the tenant's memories with these content hashes."""
    query = (
        "SELECT m.content_hash, v.vector FROM memories m JOIN vectors v ON v.seq = m.seq "
        "WHERE m.content_hash IN ({marks}) AND m.tenant = ?"
    )
    return dict(in_chunks(conn, query, list(dict.fromkeys(hashes)), [tenant], convert=str))


def history(conn: sqlite3.Connection, scope: Scope, memory_id: str) -> list[tuple[Any, ...]]:
    """Rows of every version of a memory, oldest first: past versions, then the current."""
    hwhere, hparams = sql.scope_clause(scope, "h")
    where, params = sql.scope_clause(scope)
    return conn.execute(
        f"SELECT {sql.HISTORY_COLUMNS} FROM memory_history h WHERE {hwhere} AND h.id = ? "
        f"UNION ALL SELECT {sql.HISTORY_COLUMNS} FROM memories m "
        f"WHERE {where} AND m.id = ? ORDER BY version",
        [*hparams, memory_id, *params, memory_id],
    ).fetchall()


def stats(conn: sqlite3.Connection, scope: Scope, at: int) -> dict[str, Any]:
    """Counts within the scope at time ``at`` (microseconds), and the file's size in pages.

    Each memory is counted once, by its state at ``at`` (``memex.core.visibility``):
    ``deleted`` (forgotten), ``expired``, ``superseded``, else ``memories`` (current or
    pending), which ``by_kind`` breaks down.
    """
    where, params = sql.scope_clause(scope)
    found = conn.execute(
        f"SELECT m.kind, {sql.state_sql()} AS state, count(*), "
        "coalesce(sum(length(CAST(m.content AS BLOB)) - CASE typeof(m.content) "
        f"WHEN 'blob' THEN {SEALED_OVERHEAD} ELSE 0 END), 0) FROM memories m "
        f"WHERE {where} GROUP BY 1, 2 ORDER BY 1",
        [at, at, at, *params],
    ).fetchall()
    counts, by_kind = count_states((kind, state, count) for kind, state, count, _ in found)
    hwhere, hparams = sql.scope_clause(scope, "h")
    versions = conn.execute(  # past versions, and every memory's current one
        f"SELECT (SELECT count(*) FROM memory_history h WHERE {hwhere}) "
        f"+ (SELECT count(*) FROM memories m WHERE {where})",
        [*hparams, *params],
    ).fetchone()[0]
    vectors = conn.execute(
        f"SELECT count(*) FROM vectors v JOIN memories m ON m.seq = v.seq WHERE {where}",
        params,
    ).fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return {
        **counts,
        "versions": versions,
        "by_kind": by_kind,
        "vectors": vectors,
        "size_bytes": pages * page_size,
        "content_bytes": content_bytes((kind, state, size) for kind, state, _, size in found),
    }

"""Reading a scope's memories as of one moment: one read transaction on its own connection.

An export pages through the whole scope; with one query per page, a memory superseded
between two pages would appear twice as current (the old version on an earlier page,
the new one on a later page). Here every page, the count and the past versions are read
inside one transaction, so the reader sees the store exactly as it was when the
transaction began. In WAL mode that holds up no writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from memex.core.models import Memory
from memex.errors import StoreKeyError
from memex.storage.encryption import KeyNeededError
from memex.storage.sqlite import reads, sql
from memex.storage.sqlite.connection import translate
from memex.storage.sqlite.rows import RowOpener, opened
from memex.storage.sqlite.rows import memories as stored_memories

_BATCH = 500


class SQLiteSnapshot:
    """The memories a ``where`` clause (on ``memories m``) selects, oldest first, each with
    its past versions if asked for. It owns ``conn`` and closes it."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        where: str,
        params: Sequence[Any],
        *,
        history: bool,
        opener: RowOpener,
        failure: Callable[[], BaseException | None] = lambda: None,
    ) -> None:
        """``opener`` opens sealed values (their tenant's key is loaded already);
        ``failure`` says why one opened in SQL failed, if one did."""
        self._path = path
        self._opener = opener
        self._failure = failure
        self._where, self._params = where, list(params)
        self._history = history
        self._conn: sqlite3.Connection | None = conn
        try:
            self._conn.execute("BEGIN")
            # The first read fixes the snapshot: everything below sees the store as it is now.
            self._total = int(
                self._conn.execute(
                    f"SELECT count(*) FROM memories m WHERE {where}", params
                ).fetchone()[0]
            )
        except sqlite3.Error as exc:
            self.close()
            raise translate(exc, self._path) from exc
        except BaseException:
            self.close()
            raise

    @property
    def total(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[tuple[Memory, list[Memory]]]:
        conn = self._conn
        if conn is None:
            return
        try:
            cursor = conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories m WHERE {self._where} "
                "ORDER BY m.created_at, m.seq",
                self._params,
            )
            while rows := cursor.fetchmany(_BATCH):
                memories = stored_memories(opened(rows, self._opener))
                past = self._past(conn, rows) if self._history else {}
                for memory in memories:
                    yield memory, past.get(memory.id, [])
        except sqlite3.Error as exc:
            raise (self._failure() or translate(exc, self._path)) from exc
        except KeyNeededError as exc:  # its key was destroyed since the snapshot began
            raise StoreKeyError(f"tenant {exc.tenant!r}'s data key cannot be loaded") from exc

    def _past(
        self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]
    ) -> dict[str, list[Memory]]:
        """Past versions of the rows' memories, oldest first (a scope has one tenant)."""
        tenant = rows[0][2]
        found = reads.in_chunks(
            conn,
            f"SELECT {sql.HISTORY_COLUMNS} FROM memory_history h "
            "WHERE h.id IN ({marks}) AND h.tenant = ? ORDER BY h.id, h.version",
            [r[1] for r in rows],
            [tenant],
            convert=str,
        )
        out: dict[str, list[Memory]] = {}
        for memory in stored_memories(opened(found, self._opener)):
            out.setdefault(memory.id, []).append(memory)
        return out

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            finally:
                conn.close()

    def __enter__(self) -> SQLiteSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

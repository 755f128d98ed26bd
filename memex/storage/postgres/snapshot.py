"""A scope's memories as of one moment: a REPEATABLE READ transaction on a connection of
its own, held until the snapshot is closed (writers are not held up)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.models import Memory
from memex.storage.postgres import sql
from memex.storage.postgres.connection import Database, bind, driver_errors, translate
from memex.storage.postgres.rows import memories as stored_memories

if TYPE_CHECKING:
    import psycopg

_BATCH = 500


class PostgresSnapshot:
    """The memories a ``where`` clause (on ``memories m``) selects, oldest first, each with
    its past versions if asked for."""

    def __init__(
        self,
        db: Database,
        tenant: str,
        where: str,
        params: Sequence[Any],
        *,
        history: bool,
        opened: Callable[[list[Any]], list[Any]] = lambda rows: rows,
    ) -> None:
        self._location = db.location
        self._opened = opened  # opens an encrypted tenant's sealed rows
        self._where, self._params = where, list(params)
        self._tenant = tenant
        self._history = history
        self._conn: psycopg.Connection[Any] | None = db.connect()
        try:
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            bind(self._conn, tenant)
            row = self._conn.execute(
                f"SELECT count(*) FROM memories m WHERE {where}", self._params
            ).fetchone()
            self._total = int(row[0]) if row else 0
        except BaseException as exc:
            self.close()
            if isinstance(exc, driver_errors()):
                raise translate(exc, self._location) from exc
            raise

    @property
    def total(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[tuple[Memory, list[Memory]]]:
        conn = self._conn
        if conn is None:
            return
        try:
            with conn.cursor(name="memex_snapshot") as cursor:
                cursor.execute(
                    f"SELECT {sql.COLUMNS} FROM {sql.ROWS} WHERE {self._where} "
                    "ORDER BY m.created_at, m.seq",
                    self._params,
                )
                while rows := cursor.fetchmany(_BATCH):
                    memories = stored_memories(self._opened(rows))
                    past = self._past(conn, [str(r[1]) for r in rows]) if self._history else {}
                    for memory in memories:
                        yield memory, past.get(memory.id, [])
        except driver_errors() as exc:
            raise translate(exc, self._location) from exc

    def _past(self, conn: psycopg.Connection[Any], ids: list[str]) -> dict[str, list[Memory]]:
        found = conn.execute(
            f"SELECT {sql.HISTORY_COLUMNS} FROM memory_history h "
            "WHERE h.tenant = %s AND h.id = ANY(%s) ORDER BY h.id, h.version",
            (self._tenant, ids),
        ).fetchall()
        out: dict[str, list[Memory]] = {}
        for memory in stored_memories(self._opened(found)):
            out.setdefault(memory.id, []).append(memory)
        return out

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing ends the transaction (it only read); a broken connection closes too.
            with contextlib.suppress(Exception):
                conn.close()

    def __enter__(self) -> PostgresSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""How the SQLite store runs its statements: on this thread's connection, in a write
transaction when they write, with driver errors translated, and with the data key of
each encrypted tenant whose sealed values a statement opens loaded first."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from memex.errors import ConflictError, StoreReadOnlyError, ValidationError
from memex.storage.encryption import Keyring
from memex.storage.sqlite import keys, rows
from memex.storage.sqlite.connection import (
    Connections,
    translate,
    without_waiting,
    write_transaction,
)

T = TypeVar("T")


class Access:
    """The base of ``SQLiteStore``: running reads and writes on its connections."""

    _path: Path
    _connections: Connections
    _keyring: Keyring
    _read_only: str | None

    @property
    def _busy_ms(self) -> int:
        return int(self._connections.busy_timeout * 1000)

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return keys.with_keys(self._keyring, lambda: self._run_once(fn), self._load_key)

    def _load_key(self, tenant: str) -> None:
        self._run_once(lambda c: keys.load(c, self._keyring, tenant))

    def _translate(self, exc: sqlite3.Error) -> BaseException:
        """A driver error as memex's, or what opening a sealed value failed with."""
        return self._keyring.failure() or translate(exc, str(self._path))

    def _run_once(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn())
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        except OverflowError as exc:
            raise ValidationError("a number in the query is too large for the store") from exc

    def _rows(self, query: str, params: Sequence[Any]) -> list[Any]:
        return self._run(lambda c: c.execute(query, params).fetchall())

    def _opened_rows(
        self, read: Callable[[sqlite3.Connection], Sequence[Sequence[Any]]]
    ) -> Sequence[Sequence[Any]]:
        """The memory rows ``read`` selects (``sql.COLUMNS``), their sealed values opened
        in Python (the tenant's key loaded first if it is not yet)."""
        opener = self._keyring.open_row
        return self._run(lambda c: rows.opened(read(c), opener))

    def _write(self, fn: Callable[[sqlite3.Connection], T], *, wait: bool = True) -> T:
        """Run ``fn`` in a write transaction; without ``wait``, fail at once if another
        process holds the write lock (StoreLockedError) rather than wait for it."""
        return keys.with_keys(self._keyring, lambda: self._write_once(fn, wait), self._load_key)

    def _write_once(self, fn: Callable[[sqlite3.Connection], T], wait: bool) -> T:
        if self._read_only is not None:
            raise StoreReadOnlyError.refused(str(self._path), self._read_only)
        conn = self._conn()
        waiting: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if not wait:
            waiting = without_waiting(conn, self._connections.busy_timeout)
        try:
            with waiting, write_transaction(conn, str(self._path)):
                return fn(conn)
        except sqlite3.IntegrityError as exc:
            if "memories.tenant, memories.id" in str(exc):
                raise ConflictError("a memory with that id already exists") from exc
            raise self._translate(exc) from exc
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        except OverflowError as exc:
            raise ValidationError("a number is too large for the store") from exc

"""SQLite connections: read-write or read-only, one per thread; one-writer transactions;
driver errors translated by result code."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import quote

from memex.errors import (
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreKeyError,
    StoreLockedError,
    StoreReadOnlyError,
)
from memex.files import device_full

T = TypeVar("T")

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
BUSY_CODES = (_BUSY, _LOCKED)
"""SQLite's result codes for a lock another connection holds."""
Opener = Callable[[str, str, int, str, bytes], str]
"""Opens a sealed memory field: (tenant, id, version, field, sealed value) to its text."""


def translate(exc: sqlite3.Error, path: str) -> StoreError:
    """Map a driver error to the memex error tree, with a one-line message.

    Only SQLite's own corruption codes say "corrupt": a full device or a failing one
    must never invite deleting a healthy store.
    """
    text = str(exc)
    code = _primary_code(exc)
    if code in BUSY_CODES:
        return StoreLockedError(f"store {path} is locked by another process (gave up waiting)")
    # SQLite reports a failed write as SQLITE_FULL, but a failure to grow its
    # shared-memory file as an I/O error: with (next to) no free space, that is a full disk.
    if code == _FULL or (code == _IOERR and device_full(Path(path))):
        return StoreFullError(f"no space left on the device holding store {path}")
    if code == _IOERR:
        return StoreError(f"I/O error on store {path} ({text}); check the device it is on")
    if code in (_CORRUPT, _NOTADB):
        return StoreCorruptError(f"store {path} is corrupt or not a memex store ({text})")
    if code == _READONLY:
        return StoreReadOnlyError(f"store {path} cannot be written ({text})")
    if code == _CANTOPEN:
        return StoreError(f"cannot open store {path} ({text})")
    return StoreError(f"store {path}: {text}")


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code; guessed from the text for errors the driver makes."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    lowered = str(exc).lower()
    if "locked" in lowered or "busy" in lowered:
        return _BUSY
    if "malformed" in lowered or "not a database" in lowered:
        return _CORRUPT
    return None


def lacked_space(exc: BaseException, path: Path) -> bool:
    """Whether a failed write of ``path`` (a derived index file) was for want of space."""
    if getattr(exc, "errno", None) == errno.ENOSPC or "no space left" in str(exc).lower():
        return True
    return device_full(path)


def write_failure(exc: BaseException, path: Path) -> str:
    """Why writing ``path`` (a derived index file) failed, for a warning."""
    return "no space left on the device" if lacked_space(exc, path) else str(exc)


def writable(path: Path) -> bool:
    """Whether this process may write ``path`` (False on a read-only mount, even for root)."""
    effective = os.access in os.supports_effective_ids
    return os.access(path, os.W_OK, effective_ids=effective)


def prepare(path: Path, *, read_only: bool) -> str | None:
    """Why the store at ``path`` is read-only (None: it is writable); create its folder.

    It is read-only when asked, or when this process cannot write it. SQLite writes the
    ``-wal`` and ``-shm`` files beside the store, so a folder that cannot be written
    makes it read-only unless both files already exist and can be written.
    """
    if path.is_dir():
        raise StoreError(f"store path {path} is a directory")
    if path.exists():
        return "opened read-only" if read_only else _read_only_reason(path)
    if read_only:
        raise StoreError(f"no store at {path} (a store opened read-only is not created)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {path.parent}: {exc.strerror}") from exc
    if not writable(path.parent):
        raise StoreReadOnlyError(f"cannot create store {path}: its folder is not writable")
    return None


def _read_only_reason(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    if not writable(path):
        return "its file is not writable"
    if not writable(path.parent) and not all(
        writable(Path(f"{path}{suffix}")) for suffix in ("-wal", "-shm")
    ):
        return "its folder is not writable"
    return None


def _open(target: str, busy_timeout: float, *, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        target,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
        uri=uri,
    )


def connect(
    path: Path, *, busy_timeout: float, synchronous: str, read_only: bool = False
) -> sqlite3.Connection:
    """Open a connection in autocommit mode with WAL and the settings memex relies on.

    The file is checked to be empty or a memex store before anything is changed in it.
    """
    if read_only:
        return connect_read_only(path, busy_timeout=busy_timeout)
    try:
        conn = _open(str(path), busy_timeout)
    except sqlite3.Error as exc:
        raise translate(exc, str(path)) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        check_is_memex(conn, str(path))
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"store {path} cannot use write-ahead logging (journal mode {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        _tune(conn)
        # Deleted rows and freed pages are overwritten with zeros: a purged memory's text
        # must not stay readable in the file's free space.
        conn.execute("PRAGMA secure_delete = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, str(path)) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def connect_read_only(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """Open a connection that cannot write, even where the folder cannot be written.

    ``mode=ro`` first: it reads a WAL store safely beside writers in other processes,
    but needs the ``-shm`` and ``-wal`` files to exist or to be creatable. Where they
    cannot be (a read-only folder, a full device), ``immutable=1`` reads the main file
    with no locks and no WAL at all; that is only correct when no WAL holds changes, so
    it is used only then, and it does not see what another process writes afterwards.
    """
    base = "file:" + quote(str(path.absolute()))
    try:
        return _settle(_open(base + "?mode=ro", busy_timeout, uri=True), path)
    except sqlite3.Error as exc:
        code = _primary_code(exc)
        if code not in (_CANTOPEN, _READONLY) and not (code == _IOERR and device_full(path)):
            raise translate(exc, str(path)) from exc
    wal = Path(f"{path}-wal")
    with contextlib.suppress(OSError):
        if wal.stat().st_size > 0:
            raise StoreReadOnlyError(
                f"store {path} cannot be read: its folder is read-only and {wal.name} holds "
                "changes not yet in the store file (open it once with write access)"
            )
    try:
        return _settle(_open(base + "?mode=ro&immutable=1", busy_timeout, uri=True), path)
    except sqlite3.Error as exc:
        raise translate(exc, str(path)) from exc


def _settle(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """Check and tune a read-only connection (its first read happens here)."""
    try:
        check_is_memex(conn, str(path))
        conn.execute("PRAGMA query_only = ON")
        _tune(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _tune(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA mmap_size = 268435456")


def check_is_memex(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a SQLite file that holds tables but is not a memex store (reads only)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]:
        raise StoreCorruptError(f"{path} is a SQLite database but not a memex store")


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: str) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: one writer at a time, all or nothing."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise translate(exc, path) from exc


@contextmanager
def without_waiting(conn: sqlite3.Connection, busy_timeout: float) -> Iterator[None]:
    """Make the connection fail at once, instead of waiting, on a lock another process holds."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")


def _sealed(tenant: str, memory_id: str, version: int, field: str, value: bytes) -> str:
    raise StoreKeyError(f"tenant {tenant!r}'s memories are encrypted: open them through memex")


class Connections:
    """One connection per thread to one store file (read-only or not), closed together;
    ``opener`` is what SQL calls ``memex_plain`` (it opens sealed values)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float,
        synchronous: str,
        read_only: bool,
        opener: Opener = _sealed,
    ) -> None:
        self.path = path
        self.opener = opener
        self.busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._read_only = read_only
        self._local = threading.local()
        self.holders: weakref.WeakSet[Holder] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's connection; it is closed when the thread ends or on ``close``."""
        if self.closed:
            raise StoreError(f"store {self.path} is closed")
        holder: Holder | None = getattr(self._local, "holder", None)
        if holder is None or holder.pid != os.getpid():
            conn = self.separate()
            holder = Holder(conn)
            self._local.holder = holder
            with self._lock:
                self.holders.add(holder)
        return holder.conn

    def separate(self) -> sqlite3.Connection:
        """A new connection of the same kind that the caller owns and closes: for a read
        transaction held across many steps (an export, a backup)."""
        if self.closed:
            raise StoreError(f"store {self.path} is closed")
        conn = connect(
            self.path,
            busy_timeout=self.busy_timeout,
            synchronous=self._synchronous,
            read_only=self._read_only,
        )
        conn.create_function("memex_plain", 5, self.opener, deterministic=True)
        return conn

    def close(self) -> None:
        self.closed = True
        with self._lock:
            for holder in list(self.holders):
                holder.close()
            self.holders.clear()


def open_connections(
    path: Path, busy_timeout: float, synchronous: str, read_only: str | None, opener: Opener
) -> tuple[Connections, str | None]:
    """The store's connections, with this thread's first one open, and why the store is
    read-only (``read_only``, or a full device: SQLite cannot create the shared-memory
    file a writer needs, and reading needs none)."""

    def first(read_only: bool) -> Connections:
        connections = Connections(
            path,
            busy_timeout=busy_timeout,
            synchronous=synchronous,
            read_only=read_only,
            opener=opener,
        )
        connections.get()
        return connections

    try:
        return first(read_only is not None), read_only
    except StoreFullError:
        if read_only is not None:
            raise
        return first(True), "no space left on the device"


class Holder:
    """One thread's connection; closed when the thread's locals go away."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            self.close()


SIDECARS = ("-wal", "-shm", "-journal")
DERIVED = (".ann", ".lexical")


def owned_paths(path: Path) -> list[Path]:
    """The store file, SQLite's files beside it and the folders of derived indexes."""
    return [path, *(path.with_name(path.name + s) for s in (*SIDECARS, *DERIVED))]


def wal_size(path: Path) -> int:
    """The size of the store's write-ahead log (0 if it has none)."""
    wal = Path(str(path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


class Reader(Protocol):
    """Runs a read on one of the store's connections, translating driver errors."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T], /) -> T: ...


class Writer(Protocol):
    """Runs a write transaction on the store (refused when it is read-only)."""

    def __call__(self, fn: Callable[[sqlite3.Connection], T], /, *, wait: bool = ...) -> T: ...

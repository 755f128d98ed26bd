"""Connections to a PostgreSQL store: the pool, transactions bound to a tenant, and
driver errors translated once into memex errors.

Every unit of work is one transaction that first sets ``memex.tenant`` (with
``set_config(..., true)``, so the setting ends with the transaction): row-level security
then shows it that tenant's rows only. Whole-store work (backup, reindex, upgrades) sets
``memex.all_tenants`` instead.

Reads take one round trip each (``Database.run``): the setting and the statements go
out together in pipeline mode and run in the implicit transaction that ends at the
pipeline's one Sync, with no BEGIN or COMMIT of their own. psycopg prepares a statement
on a connection once it has run a few times, so the hot ones are planned once.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from memex.errors import (
    ConfigError,
    ConflictError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
    ValidationError,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool


def redacted(url: str) -> str:
    """The URL without its password (and without a password=... query parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        netloc = f"{user}@{host}"
    query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip()


def translate(exc: Exception, location: str) -> Exception:
    """The memex error for a driver error (one line, no secrets)."""
    import psycopg
    from psycopg import errors
    from psycopg_pool import PoolTimeout

    message = _first_line(exc)
    if isinstance(exc, PoolTimeout):
        return StoreError(f"no connection to the PostgreSQL store {location} could be had")
    if isinstance(exc, errors.UniqueViolation):
        return ConflictError("a memory with that id already exists")
    if isinstance(exc, errors.LockNotAvailable | errors.DeadlockDetected):
        return StoreLockedError(f"the PostgreSQL store {location} is busy: {message}")
    if isinstance(exc, errors.SerializationFailure):
        return ConflictError(f"a concurrent write got in the way; try again ({message})")
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return StoreReadOnlyError(f"store {location} is read-only ({message}); nothing was written")
    if isinstance(exc, errors.DiskFull):
        return StoreFullError(f"the PostgreSQL server of {location} is out of space: {message}")
    if isinstance(exc, errors.NumericValueOutOfRange):
        return ValidationError("a number is too large for the store")
    if isinstance(exc, psycopg.OperationalError):
        if "password authentication failed" in message or "authentication" in message:
            return ConfigError(f"cannot log in to the PostgreSQL store {location}: {message}")
        return StoreError(f"lost or could not reach the PostgreSQL store {location}: {message}")
    return StoreError(f"PostgreSQL store {location}: {message}")


def driver_errors() -> tuple[type[Exception], ...]:
    """The exceptions ``translate`` takes."""
    import psycopg
    from psycopg_pool import PoolTimeout

    return (psycopg.Error, PoolTimeout)


def configure(conn: psycopg.Connection[Any]) -> None:
    """Make a new pooled connection speak vectors (pgvector's binary format)."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is not None:
        register_vector_info(conn, info)


class Database:
    """A pool of connections to one store, handing out tenant-bound transactions."""

    def __init__(self, url: str, *, timeout: float, read_only: bool) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self.location = redacted(url)
        self.timeout = timeout
        self.read_only = read_only
        self._pool: ConnectionPool[Any] | None = None
        self._kwargs: dict[str, Any] = {"autocommit": True}
        self._pool_class = ConnectionPool

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of its own (not pooled), which the caller closes."""
        import psycopg

        try:
            conn = psycopg.connect(self.url, connect_timeout=10, **self._kwargs)
            if self.read_only:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            raise translate(exc, self.location) from exc
        return conn

    def open_pool(self) -> None:
        """Start pooling connections (once the schema is known to be there)."""
        self._pool = self._pool_class(
            self.url,
            min_size=0,
            max_size=8,
            kwargs=self._kwargs,
            configure=self._configure,
            open=True,
            timeout=self.timeout,
            num_workers=1,
            name="memex",
        )

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        configure(conn)
        if self.read_only:
            conn.execute("SET default_transaction_read_only = on")

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @property
    def closed(self) -> bool:
        return self._pool is None

    @contextlib.contextmanager
    def transaction(
        self,
        tenant: str | None,
        *,
        all_tenants: bool = False,
        lock_timeout_ms: int | None = None,
        isolation: str | None = None,
    ) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction that sees ``tenant``'s rows (every
        tenant's with ``all_tenants``); committed when the block ends, rolled back if it
        raises. Driver errors become memex errors."""
        if self._pool is None:
            raise StoreError(f"store {self.location} is closed")
        try:
            with self._pool.connection() as conn:
                if isinstance(isolation, str):
                    conn.execute(f"BEGIN ISOLATION LEVEL {isolation}")
                    try:
                        _bind(conn, tenant, all_tenants, lock_timeout_ms)
                        yield conn
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                    return
                with conn.transaction():
                    _bind(conn, tenant, all_tenants, lock_timeout_ms)
                    yield conn
        except driver_errors() as exc:
            raise translate(exc, self.location) from exc

    def run(
        self,
        tenant: str | None,
        statements: Sequence[tuple[str, Sequence[Any]]],
        *,
        settings: Mapping[str, str] | None = None,
        all_tenants: bool = False,
    ) -> list[list[tuple[Any, ...]]]:
        """Each statement's rows, from one transaction bound to ``tenant`` (every
        tenant's rows with ``all_tenants``) and one round trip to the server.
        ``settings`` hold for the transaction only (``hnsw.ef_search``, say). Driver
        errors become memex errors."""
        if self._pool is None:
            raise StoreError(f"store {self.location} is closed")
        extra = dict(settings or {})
        bind_sql = _BIND + "".join(", set_config(%s, %s, true)" for _ in extra)
        bind_params: list[Any] = [tenant or "", "on" if all_tenants else "off"]
        for name, value in extra.items():
            bind_params.extend([name, value])
        try:
            with self._pool.connection() as conn:
                with conn.pipeline():
                    conn.execute(bind_sql, bind_params)
                    cursors = [conn.execute(text, params) for text, params in statements]
                return [cur.fetchall() if cur.description else [] for cur in cursors]
        except driver_errors() as exc:
            raise translate(exc, self.location) from exc

    def pooled(self) -> ConnectionPool[Any]:
        if self._pool is None:
            raise StoreError(f"store {self.location} is closed")
        return self._pool


_BIND = "SELECT set_config('memex.tenant', %s, true), set_config('memex.all_tenants', %s, true)"


def _bind(
    conn: psycopg.Connection[Any], tenant: str | None, all_tenants: bool, lock_ms: int | None
) -> None:
    """Set this transaction's tenant (or every tenant) and its lock wait."""
    if lock_ms is not None:
        conn.execute(f"SET LOCAL lock_timeout = {int(lock_ms)}")
    conn.execute(_BIND, (tenant or "", "on" if all_tenants else "off"))


def bind(conn: psycopg.Connection[Any], tenant: str | None, *, all_tenants: bool = False) -> None:
    """Set the tenant of the transaction ``conn`` is in (a connection of its own)."""
    _bind(conn, tenant, all_tenants, None)

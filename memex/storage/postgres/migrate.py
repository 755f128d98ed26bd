"""Numbered, append-only SQL migrations for a PostgreSQL store, applied in one transaction
under an advisory lock, so several processes opening a new store create it once."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from memex.errors import ConfigError, SchemaVersionError, StoreReadOnlyError

if TYPE_CHECKING:
    import psycopg

_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
_LOCK = 0x6D656D6578  # pg_advisory_xact_lock key: "memex"


def _files() -> list[str]:
    return sorted(name for name in os.listdir(_FOLDER) if _NAME_RE.match(name))


LATEST = len(_files())
"""The newest schema version this memex knows."""


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The store's schema version (0 for a database without a memex store)."""
    row = conn.execute("SELECT to_regclass('memex_meta') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    found = conn.execute("SELECT value FROM memex_meta WHERE key = 'schema_version'").fetchone()
    return int(found[0]) if found else 0


def _understood(conn: psycopg.Connection[Any], location: str) -> int:
    version = current_version(conn)
    if version > LATEST:
        raise SchemaVersionError(
            f"store {location} has schema version {version}; this memex understands up to "
            f"{LATEST} (upgrade memex)"
        )
    return version


def _require_vector(conn: psycopg.Connection[Any], location: str) -> None:
    """Make sure the database has pgvector, creating it if this role may."""
    from psycopg import errors

    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except (errors.InsufficientPrivilege, errors.FeatureNotSupported, errors.UndefinedFile) as exc:
        raise ConfigError(
            f"the database of {location} lacks the pgvector extension, and this role cannot "
            "create it: run CREATE EXTENSION vector there as a superuser"
        ) from exc


def upgrade(conn: psycopg.Connection[Any], location: str, *, read_only: bool) -> int:
    """Bring the schema up to date (``conn`` in autocommit mode); return its version.

    An up-to-date store is only read. A store made by a newer memex is refused.
    """
    version = _understood(conn, location)
    if version == LATEST:
        return version
    if read_only:
        if version == 0:
            raise StoreReadOnlyError(f"store {location} is empty and cannot be created read-only")
        raise StoreReadOnlyError(
            f"store {location} has schema version {version} and needs an upgrade to {LATEST}, "
            "which cannot be done read-only"
        )
    _require_vector(conn, location)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute("SELECT set_config('memex.all_tenants', 'on', true)")
        version = _understood(conn, location)  # another process may have upgraded meanwhile
        for name in _files():
            number = int(name[:4])
            if number <= version:
                continue
            with open(os.path.join(_FOLDER, name), encoding="utf-8") as fh:
                conn.execute(fh.read())
            conn.execute(
                "INSERT INTO memex_meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(number),),
            )
            version = number
    return version

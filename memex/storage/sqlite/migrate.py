"""Numbered, append-only SQL migrations applied in one transaction each."""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass

from memex.errors import SchemaVersionError, StoreReadOnlyError

_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: version N's SQL."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with this memex, in order."""
    found: list[Migration] = []
    for name in _migration_files():
        match = _NAME_RE.match(name)
        if match:
            with open(os.path.join(_FOLDER, name), encoding="utf-8") as fh:
                found.append(Migration(int(match.group(1)), name, fh.read()))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {migration.name} is out of sequence")
    return found


def _migration_files() -> list[str]:
    return sorted(os.listdir(_FOLDER))


_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
LATEST = sum(1 for name in _migration_files() if _NAME_RE.match(name))
"""The newest schema version: counted from the file names, so opening a store that is up
to date reads no migration."""


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0 for an empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def upgrade(conn: sqlite3.Connection, path: str, target: int | None = None) -> int:
    """Apply the migrations the store lacks, all in one transaction; return the version.

    An up-to-date store is only read (no write lock is taken). A store made by a newer
    memex is refused rather than misread.
    """
    goal = LATEST if target is None else target
    version = _understood(conn, path)
    if version >= goal:
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)  # another process may have upgraded meanwhile
        for migration in migrations():
            if version < migration.version <= goal:
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {migration.version}")
                version = migration.version
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version


def require_current(conn: sqlite3.Connection, path: str) -> int:
    """The schema version of a store that is read-only: it must not need any migration."""
    version = _understood(conn, path)
    if version == 0:
        raise StoreReadOnlyError(f"store {path} is empty and cannot be created read-only")
    if version < LATEST:
        raise StoreReadOnlyError(
            f"store {path} has schema version {version} and needs an upgrade to {LATEST}, "
            "which cannot be done read-only (open it once with write access)"
        )
    return version


def _understood(conn: sqlite3.Connection, path: str) -> int:
    """The schema version, refusing a store made by a newer memex rather than misreading it."""
    version = current_version(conn)
    if version > LATEST:
        raise SchemaVersionError(
            f"store {path} has schema version {version}; this memex understands up to "
            f"{LATEST} (upgrade memex)"
        )
    return version


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (trigger bodies keep their inner semicolons)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements

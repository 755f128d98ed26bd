"""The SQLite directory: tenants, users, projects and API keys, in the store's own file.

Reads and writes go through the store's connections (so a read-only store refuses
directory writes, and driver errors are translated once, by the store). Every change
takes the one write lock (``BEGIN IMMEDIATE``), checks, writes, bumps the generation
counter and appends its audit event in one transaction; a name or id that exists is a
ConflictError, an unknown tenant, user or project a NotFoundError, and nothing is written.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from memex.core.audit import AuditEvent
from memex.core.identity import ApiKey, Project, Tenant, User, parse_role
from memex.core.limits import Quotas
from memex.core.models import from_micros, to_micros
from memex.errors import ConflictError, NotFoundError
from memex.storage.sqlite.audit import append
from memex.storage.sqlite.connection import Reader, Writer

T = TypeVar("T")

_KEY_COLUMNS = (
    "id, tenant, user_id, project, role, name, hash, created_at, expires_at, revoked_at, "
    "last_used_at, replaced_by, allow"
)


class SQLiteDirectory:
    """The directory of a SQLite store (``memex.storage.directory.Directory``)."""

    def __init__(self, read: Reader, write: Writer, *, audited: bool = True) -> None:
        """``audited``: changes append their audit events (the store's ``audit`` setting)."""
        self._read = read
        self._write = write
        self._audited = audited

    def _bump(self, conn: sqlite3.Connection, audit: AuditEvent | None) -> None:
        """Raise the generation, and append the change's audit event (in its transaction;
        none in a store with the audit trail turned off)."""
        conn.execute("UPDATE directory_generation SET generation = generation + 1 WHERE id = 1")
        if audit is not None and self._audited:
            append(conn, audit)

    def generation(self) -> int:
        """A number that grows with every change to the directory, from any process."""
        return self._read(_generation)

    # -- tenants ---------------------------------------------------------------------

    def add_tenant(self, tenant: Tenant, audit: AuditEvent | None = None) -> None:
        """Add a tenant."""

        def apply(conn: sqlite3.Connection) -> None:
            if _tenant_row(conn, tenant.name) is not None:
                raise ConflictError(f"tenant {tenant.name!r} exists")
            conn.execute(
                "INSERT INTO tenants (name, created_at, allow) VALUES (?, ?, ?)",
                (tenant.name, to_micros(tenant.created_at), _json(tenant.allow)),
            )
            self._bump(conn, audit)

        self._write(apply)

    def tenant(self, name: str) -> Tenant | None:
        """The tenant named ``name``, if there is one."""
        row = self._read(lambda c: _tenant_row(c, name))
        return None if row is None else _tenant(row)

    def tenants(self) -> builtins.list[Tenant]:
        """Every tenant, by name."""
        query = "SELECT name, created_at, allow FROM tenants ORDER BY name"
        return [_tenant(row) for row in self._read(lambda c: c.execute(query).fetchall())]

    def set_tenant(self, tenant: Tenant, audit: AuditEvent | None = None) -> None:
        """Replace the stored tenant of the same name (its allowlist)."""

        def apply(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE tenants SET allow = ? WHERE name = ?", (_json(tenant.allow), tenant.name)
            ).rowcount
            if not changed:
                raise NotFoundError(f"no tenant {tenant.name!r}")
            self._bump(conn, audit)

        self._write(apply)

    # -- users and projects ------------------------------------------------------------

    def add_user(self, user: User, audit: AuditEvent | None = None) -> None:
        """Add a user to its tenant (which must exist: NotFoundError)."""
        self._add_member("users", "user", user.tenant, user.name, user.created_at, audit)

    def users(self, tenant: str) -> builtins.list[User]:
        """The tenant's users, by name."""
        return [User(t, n, at) for t, n, at in self._members("users", tenant)]

    def add_project(self, project: Project, audit: AuditEvent | None = None) -> None:
        """Add a project to its tenant (which must exist: NotFoundError)."""
        p = project
        self._add_member("projects", "project", p.tenant, p.name, p.created_at, audit)

    def projects(self, tenant: str) -> builtins.list[Project]:
        """The tenant's projects, by name."""
        return [Project(t, n, at) for t, n, at in self._members("projects", tenant)]

    def _add_member(
        self, table: str, what: str, tenant: str, name: str, at: datetime, audit: AuditEvent | None
    ) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            _require_tenant(conn, tenant)
            if _member_exists(conn, table, tenant, name):
                raise ConflictError(f"{what} {name!r} exists in tenant {tenant!r}")
            conn.execute(
                f"INSERT INTO {table} (tenant, name, created_at) VALUES (?, ?, ?)",
                (tenant, name, to_micros(at)),
            )
            self._bump(conn, audit)

        self._write(apply)

    def _members(self, table: str, tenant: str) -> builtins.list[tuple[str, str, datetime]]:
        rows = self._read(
            lambda c: c.execute(
                f"SELECT tenant, name, created_at FROM {table} WHERE tenant = ? ORDER BY name",
                (tenant,),
            ).fetchall()
        )
        return [(str(t), str(n), from_micros(int(at))) for t, n, at in rows]

    # -- keys --------------------------------------------------------------------------

    def add_key(self, key: ApiKey, audit: AuditEvent | None = None) -> None:
        """Add a key (its tenant, and its user and project if it has them, must exist)."""

        def apply(conn: sqlite3.Connection) -> None:
            _require_tenant(conn, key.tenant)
            _require_grants(conn, key)
            if conn.execute("SELECT 1 FROM api_keys WHERE id = ?", (key.id,)).fetchone():
                raise ConflictError(f"a key with id {key.id!r} exists")
            conn.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                _key_params(key),
            )
            self._bump(conn, audit)

        self._write(apply)

    def key(self, key_id: str) -> ApiKey | None:
        """The key with id ``key_id``, if there is one."""
        row = self._read(
            lambda c: c.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        )
        return None if row is None else _key(row)

    def keys(self, tenant: str | None = None) -> builtins.list[ApiKey]:
        """The keys of ``tenant`` (None: of every tenant), oldest first."""
        query = f"SELECT {_KEY_COLUMNS} FROM api_keys"
        params: tuple[str, ...] = ()
        if tenant is not None:
            query += " WHERE tenant = ?"
            params = (tenant,)
        rows = self._read(
            lambda c: c.execute(query + " ORDER BY created_at, id", params).fetchall()
        )
        return [_key(row) for row in rows]

    def set_key(self, key: ApiKey, audit: AuditEvent | None = None) -> None:
        """Replace the stored key of the same id; NotFoundError if none."""

        def apply(conn: sqlite3.Connection) -> None:
            stored = conn.execute("SELECT tenant FROM api_keys WHERE id = ?", (key.id,)).fetchone()
            if stored is None or stored[0] != key.tenant:
                raise NotFoundError(f"no key {key.id!r}")
            _require_grants(conn, key)
            params = _key_params(key)
            conn.execute(
                "UPDATE api_keys SET user_id = ?, project = ?, role = ?, name = ?, hash = ?, "
                "created_at = ?, expires_at = ?, revoked_at = ?, last_used_at = ?, "
                "replaced_by = ?, allow = ? WHERE id = ?",
                (*params[2:], key.id),
            )
            self._bump(conn, audit)

        self._write(apply)

    def touch_keys(self, used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (later times only; unknown ids are ignored).

        Never waits for the write lock (StoreLockedError at once: the caller tries again
        later) and does not bump the generation: a key's use changes no one's rights.
        """
        if not used:
            return
        params = [(to_micros(at), key_id) for key_id, at in used.items()]

        def apply(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?",
                params,
            )

        self._write(apply, wait=False)

    # -- quotas ------------------------------------------------------------------------

    def quotas(self, tenant: str) -> Quotas | None:
        """The quotas set for ``tenant``; None if none were."""
        row = self._read(
            lambda c: c.execute(
                "SELECT quotas FROM tenant_quotas WHERE tenant = ?", (tenant,)
            ).fetchone()
        )
        return None if row is None else Quotas.from_dict(json.loads(row[0]))

    def set_quotas(
        self, tenant: str, quotas: Quotas | None, audit: AuditEvent | None = None
    ) -> None:
        """Set the tenant's quotas (None: back to the defaults)."""

        def apply(conn: sqlite3.Connection) -> None:
            _require_tenant(conn, tenant)
            if quotas is None:
                conn.execute("DELETE FROM tenant_quotas WHERE tenant = ?", (tenant,))
            else:
                conn.execute(
                    "INSERT INTO tenant_quotas (tenant, quotas) VALUES (?, ?) "
                    "ON CONFLICT (tenant) DO UPDATE SET quotas = excluded.quotas",
                    (tenant, json.dumps(quotas.to_dict())),
                )
            self._bump(conn, audit)

        self._write(apply)


def _generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT generation FROM directory_generation WHERE id = 1").fetchone()
    return int(row[0]) if row is not None else 0


def _tenant_row(conn: sqlite3.Connection, name: str) -> Sequence[Any] | None:
    row: Sequence[Any] | None = conn.execute(
        "SELECT name, created_at, allow FROM tenants WHERE name = ?", (name,)
    ).fetchone()
    return row


def _require_tenant(conn: sqlite3.Connection, tenant: str) -> None:
    if _tenant_row(conn, tenant) is None:
        raise NotFoundError(f"no tenant {tenant!r}")


def _member_exists(conn: sqlite3.Connection, table: str, tenant: str, name: str) -> bool:
    query = f"SELECT 1 FROM {table} WHERE tenant = ? AND name = ?"
    return conn.execute(query, (tenant, name)).fetchone() is not None


def _require_grants(conn: sqlite3.Connection, key: ApiKey) -> None:
    """A key's user and project must exist in its tenant."""
    if key.user is not None and not _member_exists(conn, "users", key.tenant, key.user):
        raise NotFoundError(f"no user {key.user!r} in tenant {key.tenant!r}")
    if key.project is not None and not _member_exists(conn, "projects", key.tenant, key.project):
        raise NotFoundError(f"no project {key.project!r} in tenant {key.tenant!r}")


def _json(values: Sequence[str]) -> str:
    return json.dumps(list(values))


def _micros(value: datetime | None) -> int | None:
    return None if value is None else to_micros(value)


def _time(value: Any) -> datetime | None:
    return None if value is None else from_micros(int(value))


def _tenant(row: Sequence[Any]) -> Tenant:
    return Tenant(
        name=str(row[0]), created_at=from_micros(int(row[1])), allow=tuple(json.loads(row[2]))
    )


def _key_params(key: ApiKey) -> tuple[Any, ...]:
    return (
        key.id,
        key.tenant,
        key.user,
        key.project,
        key.role.value,
        key.name,
        key.hash,
        to_micros(key.created_at),
        _micros(key.expires_at),
        _micros(key.revoked_at),
        _micros(key.last_used_at),
        key.replaced_by,
        _json(key.allow),
    )


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(
        id=str(row[0]),
        tenant=str(row[1]),
        user=row[2],
        project=row[3],
        role=parse_role(row[4]),
        name=row[5],
        hash=str(row[6]),
        created_at=from_micros(int(row[7])),
        expires_at=_time(row[8]),
        revoked_at=_time(row[9]),
        last_used_at=_time(row[10]),
        replaced_by=row[11],
        allow=tuple(json.loads(row[12])),
    )

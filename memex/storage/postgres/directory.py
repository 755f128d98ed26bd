"""The directory of a PostgreSQL store: tenants, users, projects and API keys
(``memex.storage.directory.Directory``), in the store's own database.

Row-level security: a key is looked up by its id before any tenant is known, so the
directory cannot be keyed on ``memex.tenant`` as the memory tables are. Its tables
(schema 5) are forced under one policy instead: a row is visible and writable only to a
transaction that has set ``memex.directory = 'on'``, which only the statements of this
module do, and they set no tenant. So a transaction bound to a tenant, or doing
whole-store work, sees no directory row (no key hash can be read by a statement about
memories), and the directory's own transactions see no memory. Like the tenant
setting, this is a wall against bugs and hand-written queries, not against someone who
holds the role's password.

Times are bigint microseconds since the Unix epoch, as in the memory tables. Every
change raises the one number in ``directory_generation`` in its own transaction, so a
reader of ``generation`` never sees the new number before the change; recording when
keys were last used (``touch_keys``) does not raise it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from memex.core.audit import AuditEvent
from memex.core.identity import ApiKey, Member, Project, Role, Tenant, User
from memex.core.limits import Quotas
from memex.core.models import from_micros, to_micros
from memex.errors import ConflictError, NotFoundError, StoreReadOnlyError
from memex.storage.postgres.audit import append

if TYPE_CHECKING:
    import psycopg

    from memex.storage.directory import Directory
    from memex.storage.postgres.connection import Database

    Conn = psycopg.Connection[Any]

T = TypeVar("T")
M = TypeVar("M", bound=Member)

_ON = {"memex.directory": "on"}
_KEY_COLUMNS = (
    "id, tenant, role, hash, created_at, user_name, project, name, expires_at, revoked_at, "
    "last_used_at, replaced_by, allow"
)
_TENANT_SELECT = "SELECT name, created_at, allow FROM tenants"
_BUMP = "UPDATE directory_generation SET value = value + 1 WHERE id = 1"
_TENANT_EXISTS = "SELECT 1 FROM tenants WHERE name = %s FOR KEY SHARE"
_MEMBER_EXISTS = "SELECT 1 FROM {table} WHERE tenant = %s AND name = %s FOR KEY SHARE"


def _opt_micros(value: datetime | None) -> int | None:
    return None if value is None else to_micros(value)


def _opt_time(value: int | None) -> datetime | None:
    return None if value is None else from_micros(int(value))


def _tenant(row: Sequence[Any]) -> Tenant:
    return Tenant(name=str(row[0]), created_at=from_micros(int(row[1])), allow=tuple(row[2]))


def _key(row: Sequence[Any]) -> ApiKey:
    (key_id, tenant, role, hashed, created, user, project, name, expires, revoked, used,
     replaced_by, allow) = row  # fmt: skip
    return ApiKey(
        id=str(key_id),
        tenant=str(tenant),
        role=Role(str(role)),
        hash=str(hashed),
        created_at=from_micros(int(created)),
        user=user,
        project=project,
        name=name,
        expires_at=_opt_time(expires),
        revoked_at=_opt_time(revoked),
        last_used_at=_opt_time(used),
        replaced_by=replaced_by,
        allow=tuple(allow),
    )


def _key_values(key: ApiKey) -> list[Any]:
    """The key's values in ``_KEY_COLUMNS`` order."""
    return [
        key.id, key.tenant, key.role.value, key.hash, to_micros(key.created_at), key.user,
        key.project, key.name, _opt_micros(key.expires_at), _opt_micros(key.revoked_at),
        _opt_micros(key.last_used_at), key.replaced_by, list(key.allow),
    ]  # fmt: skip


def _require_tenant(conn: Conn, tenant: str) -> None:
    if conn.execute(_TENANT_EXISTS, (tenant,)).fetchone() is None:
        raise NotFoundError(f"no tenant {tenant!r}")


def _require_grants(conn: Conn, key: ApiKey) -> None:
    """A key's user and project must exist in its tenant."""
    for table, what, name in (("tenant_users", "user", key.user),
                              ("tenant_projects", "project", key.project)):  # fmt: skip
        query = _MEMBER_EXISTS.format(table=table)
        if name is not None and conn.execute(query, (key.tenant, name)).fetchone() is None:
            raise NotFoundError(f"no {what} {name!r} in tenant {key.tenant!r}")


def copy_into(conn: Conn, target: Directory) -> None:
    """Add every tenant, user, project and key that ``conn``'s transaction sees (with
    ``memex.directory`` set) to ``target``: whole-store copies (a backup) read them in
    the transaction they read memories in, so the copy is of one moment."""
    tenants = [_tenant(r) for r in conn.execute(f"{_TENANT_SELECT} ORDER BY name").fetchall()]
    for tenant in tenants:
        target.add_tenant(tenant)
    members = "SELECT tenant, name, created_at FROM {} ORDER BY tenant, name"
    for tenant_name, name, created in conn.execute(members.format("tenant_users")).fetchall():
        target.add_user(User(str(tenant_name), str(name), from_micros(int(created))))
    for tenant_name, name, created in conn.execute(members.format("tenant_projects")).fetchall():
        target.add_project(Project(str(tenant_name), str(name), from_micros(int(created))))
    query = f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
    for row in conn.execute(query).fetchall():
        target.add_key(_key(row))
    for tenant_name, quotas in conn.execute("SELECT tenant, quotas FROM tenant_quotas"):
        target.set_quotas(str(tenant_name), Quotas.from_dict(quotas))


class PostgresDirectory:
    """The directory of one PostgreSQL store (``PostgresStore.directory()``)."""

    def __init__(self, db: Database, read_only: str | None, *, audited: bool = True) -> None:
        """``audited``: changes append their audit events (the store's ``audit`` setting)."""
        self._db = db
        self._read_only = read_only
        self._audited = audited

    # -- plumbing --------------------------------------------------------------------

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement's rows, in one round trip, with the directory visible."""
        [found] = self._db.run(None, [(query, params)], settings=_ON)
        return found

    def _change(self, fn: Callable[[Conn], T], lock_timeout_ms: int | None = None) -> T:
        """Run ``fn`` in a transaction that sees the directory (refused read-only)."""
        if self._read_only is not None:
            raise StoreReadOnlyError.refused(self._db.location, self._read_only)
        with self._db.transaction(None, lock_timeout_ms=lock_timeout_ms) as conn:
            conn.execute("SELECT set_config('memex.directory', 'on', true)")
            return fn(conn)

    def _insert(
        self,
        what: str,
        insert: str,
        params: Sequence[Any],
        *,
        tenant: str | None = None,
        key: ApiKey | None = None,
        audit: AuditEvent | None = None,
    ) -> None:
        """Insert one row (of ``tenant``, or the grants of ``key``, which must exist),
        refusing a duplicate."""

        def apply(conn: Conn) -> None:
            if tenant is not None:
                _require_tenant(conn, tenant)
            if key is not None:
                _require_tenant(conn, key.tenant)
                _require_grants(conn, key)
            if conn.execute(insert + " ON CONFLICT DO NOTHING", params).rowcount != 1:
                raise ConflictError(f"{what} exists already")
            conn.execute(_BUMP)
            if audit is not None and self._audited:
                append(conn, audit)

        self._change(apply)

    def _replace(
        self,
        what: str,
        update: str,
        params: Sequence[Any],
        *,
        key: ApiKey | None = None,
        audit: AuditEvent | None = None,
    ) -> None:
        """Update one row, or raise NotFoundError if there is none."""

        def apply(conn: Conn) -> None:
            if key is not None:  # before the update, which the foreign keys would refuse
                _require_grants(conn, key)
            if conn.execute(update, params).rowcount != 1:
                raise NotFoundError(f"no {what}")
            conn.execute(_BUMP)
            if audit is not None and self._audited:
                append(conn, audit)

        self._change(apply)

    # -- the protocol ----------------------------------------------------------------

    def generation(self) -> int:
        """A number that grows with every change to the directory, from any process."""
        [(value,)] = self._rows("SELECT value FROM directory_generation WHERE id = 1")
        return int(value)

    def add_tenant(self, tenant: Tenant, audit: AuditEvent | None = None) -> None:
        """Add a tenant."""
        self._insert(
            f"tenant {tenant.name!r}",
            "INSERT INTO tenants (name, created_at, allow) VALUES (%s, %s, %s)",
            (tenant.name, to_micros(tenant.created_at), list(tenant.allow)),
            audit=audit,
        )

    def tenant(self, name: str) -> Tenant | None:
        """The tenant named ``name``, if there is one."""
        found = self._rows(f"{_TENANT_SELECT} WHERE name = %s", (name,))
        return _tenant(found[0]) if found else None

    def tenants(self) -> builtins.list[Tenant]:
        """Every tenant, by name."""
        return [_tenant(r) for r in self._rows(f"{_TENANT_SELECT} ORDER BY name")]

    def set_tenant(self, tenant: Tenant, audit: AuditEvent | None = None) -> None:
        """Replace the stored tenant's allowlist; NotFoundError if there is no such tenant."""
        self._replace(
            f"tenant {tenant.name!r}",
            "UPDATE tenants SET allow = %s WHERE name = %s",
            (list(tenant.allow), tenant.name),
            audit=audit,
        )

    def add_user(self, user: User, audit: AuditEvent | None = None) -> None:
        """Add a user to its tenant (which must exist: NotFoundError)."""
        self._add_member("tenant_users", "user", user, audit)

    def users(self, tenant: str) -> builtins.list[User]:
        """The tenant's users, by name."""
        return self._members("tenant_users", User, tenant)

    def add_project(self, project: Project, audit: AuditEvent | None = None) -> None:
        """Add a project to its tenant (which must exist: NotFoundError)."""
        self._add_member("tenant_projects", "project", project, audit)

    def projects(self, tenant: str) -> builtins.list[Project]:
        """The tenant's projects, by name."""
        return self._members("tenant_projects", Project, tenant)

    def _add_member(self, table: str, what: str, member: Member, audit: AuditEvent | None) -> None:
        self._insert(
            f"{what} {member.name!r} of tenant {member.tenant!r}",
            f"INSERT INTO {table} (tenant, name, created_at) VALUES (%s, %s, %s)",
            (member.tenant, member.name, to_micros(member.created_at)),
            tenant=member.tenant,
            audit=audit,
        )

    def _members(self, table: str, kind: type[M], tenant: str) -> builtins.list[M]:
        found = self._rows(
            f"SELECT name, created_at FROM {table} WHERE tenant = %s ORDER BY name", (tenant,)
        )
        return [kind(tenant, str(name), from_micros(int(at))) for name, at in found]

    def add_key(self, key: ApiKey, audit: AuditEvent | None = None) -> None:
        """Add a key (its tenant, and its user and project if it names them, must exist:
        NotFoundError)."""
        self._insert(
            f"key {key.id!r}",
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})",
            _key_values(key),
            key=key,
            audit=audit,
        )

    def key(self, key_id: str) -> ApiKey | None:
        """The key with id ``key_id``, if there is one."""
        found = self._rows(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = %s", (key_id,))
        return _key(found[0]) if found else None

    def keys(self, tenant: str | None = None) -> builtins.list[ApiKey]:
        """The keys of ``tenant`` (None: of every tenant), oldest first."""
        if tenant is None:
            found = self._rows(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")
        else:
            found = self._rows(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant = %s ORDER BY created_at, id",
                (tenant,),
            )
        return [_key(r) for r in found]

    def set_key(self, key: ApiKey, audit: AuditEvent | None = None) -> None:
        """Replace the stored key of the same id and tenant; NotFoundError if none."""
        values = _key_values(key)
        columns = _KEY_COLUMNS.split(", ")
        assignments = ", ".join(f"{c} = %s" for c in columns[2:])
        self._replace(
            f"key {key.id!r} in tenant {key.tenant!r}",
            f"UPDATE api_keys SET {assignments} WHERE id = %s AND tenant = %s",
            [*values[2:], key.id, key.tenant],
            key=key,
            audit=audit,
        )

    def touch_keys(self, used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (later times only; unknown ids are ignored).

        Does not raise ``generation``, and never waits long: a key another transaction
        holds makes it a StoreLockedError after 50 ms (the caller tries again later).
        """
        if not used:
            return
        # In id order, so two processes touching the same keys never wait in a circle.
        touches = [(to_micros(at), key_id) for key_id, at in sorted(used.items())]

        def apply(conn: Conn) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    "UPDATE api_keys SET last_used_at = %s WHERE id = %s "
                    "AND (last_used_at IS NULL OR last_used_at < %s)",
                    [(at, key_id, at) for at, key_id in touches],
                )

        self._change(apply, lock_timeout_ms=50)

    def quotas(self, tenant: str) -> Quotas | None:
        """The quotas set for ``tenant``; None if none were."""
        found = self._rows("SELECT quotas FROM tenant_quotas WHERE tenant = %s", (tenant,))
        return Quotas.from_dict(found[0][0]) if found else None

    def set_quotas(
        self, tenant: str, quotas: Quotas | None, audit: AuditEvent | None = None
    ) -> None:
        """Set the tenant's quotas (None: back to the defaults)."""
        from psycopg.types.json import Jsonb

        def apply(conn: Conn) -> None:
            _require_tenant(conn, tenant)
            if quotas is None:
                conn.execute("DELETE FROM tenant_quotas WHERE tenant = %s", (tenant,))
            else:
                conn.execute(
                    "INSERT INTO tenant_quotas (tenant, quotas) VALUES (%s, %s) "
                    "ON CONFLICT (tenant) DO UPDATE SET quotas = excluded.quotas",
                    (tenant, Jsonb(quotas.to_dict())),
                )
            conn.execute(_BUMP)
            if audit is not None and self._audited:
                append(conn, audit)

        self._change(apply)

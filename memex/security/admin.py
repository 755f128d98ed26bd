"""Administration of a store's directory: tenants, users, projects and API keys.

``Admin`` acts on the whole directory, as the command line does (``memex admin``, run
by whoever may open the store file). ``Admin.acting(principal)`` gives the same
operations confined to one caller's tenant and role (``TenantAdmin``), as the HTTP
server offers them, checked with ``memex.core.identity``.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from memex.actor import current_actor
from memex.core.audit import AuditEvent
from memex.core.identity import (
    Action,
    ApiKey,
    Principal,
    Project,
    Role,
    Tenant,
    User,
    check_label,
    check_name,
    parse_networks,
    parse_role,
    require,
)
from memex.core.limits import QuotaReport
from memex.core.models import parse_time, utcnow
from memex.errors import (
    ConfigError,
    ConflictError,
    MemexError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from memex.security.auth import Authenticator
from memex.security.keys import issue_key
from memex.security.quota_admin import QuotaAdmin
from memex.storage.directory import Directory

if TYPE_CHECKING:
    from memex.engine import WriteQuota
    from memex.security.encryption import Encryption
    from memex.storage.encryption import TenantKeys


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just made: its record and the whole key, which is shown this once."""

    key: ApiKey
    secret: str

    def public(self) -> dict[str, object]:
        """The key's fields and, under ``key``, the whole key (to show this once)."""
        return {**self.key.public(), "key": self.secret}


class Admin(QuotaAdmin):
    """Every administrative operation on one store's directory."""

    def __init__(
        self,
        directory: Directory,
        home_tenant: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        quota: WriteQuota | None = None,
        count: Callable[[str], tuple[int, int]] | None = None,
        keys: Callable[[], TenantKeys] | None = None,
    ) -> None:
        """``quota`` is a server's quota book (none elsewhere); ``count`` counts a tenant's
        memories and content bytes in the store."""
        self._directory = directory
        self._keys = keys
        self.home_tenant = check_name(home_tenant, "tenant")
        self._clock = clock
        self._quota = quota
        self._count = count

    @property
    def directory(self) -> Directory:
        """The directory administered."""
        return self._directory

    def encryption(self) -> Encryption:
        """The store's encrypted tenants and their keys (encryption at rest)."""
        from memex.security.encryption import Encryption

        if self._keys is None:
            raise ConfigError("this administration has no access to the store's keys")
        return Encryption(self._keys())

    @staticmethod
    def _audit(tenant: str, action: str, kind: str, name: str, detail: str = "") -> AuditEvent:
        """The audit entry of a change to ``tenant``'s part of the directory, by the
        current actor (never a key's secret or hash: its id)."""
        return AuditEvent(tenant, action, kind, current_actor(), name, detail=detail)

    # -- tenants ---------------------------------------------------------------------

    def create_tenant(self, name: str, allow: Sequence[str] = ()) -> Tenant:
        """Add a tenant (ConflictError if the name is taken)."""
        tenant = Tenant(check_name(name, "tenant"), self._clock(), parse_networks(allow))
        self._directory.add_tenant(tenant, self._audit(name, "tenant.create", "tenant", name))
        return tenant

    def tenant(self, name: str) -> Tenant:
        """The tenant named ``name`` (NotFoundError if none)."""
        found = self._directory.tenant(name)
        if found is None:
            raise NotFoundError(f"no tenant {name!r}")
        return found

    def tenants(self) -> builtins.list[Tenant]:
        """Every tenant, by name."""
        return self._directory.tenants()

    def set_tenant_allow(self, name: str, cidrs: Sequence[str]) -> Tenant:
        """Replace the networks requests for the tenant must come from (empty: anywhere)."""
        allow = parse_networks(cidrs)
        changed = Tenant(name, self.tenant(name).created_at, allow)
        detail = f"allow {', '.join(allow) or 'any'}"
        self._directory.set_tenant(
            changed, self._audit(name, "tenant.allow", "tenant", name, detail)
        )
        return changed

    # -- users and projects ------------------------------------------------------------

    def _home(self, tenant: str) -> str:
        """``tenant``; the home tenant is made on first use (its memories need none)."""
        if tenant == self.home_tenant and self._directory.tenant(tenant) is None:
            with contextlib.suppress(ConflictError):  # another process made it meanwhile
                made = self._audit(tenant, "tenant.create", "tenant", tenant)
                self._directory.add_tenant(Tenant(tenant, self._clock()), made)
        return tenant

    def create_user(self, tenant: str, name: str) -> User:
        """Add a user to a tenant (NotFoundError: no such tenant; ConflictError: taken)."""
        user = User(self._home(tenant), check_name(name, "user"), self._clock())
        self._directory.add_user(user, self._audit(tenant, "user.create", "user", name))
        return user

    def users(self, tenant: str) -> builtins.list[User]:
        """The tenant's users, by name."""
        self.tenant(tenant)
        return self._directory.users(tenant)

    def create_project(self, tenant: str, name: str) -> Project:
        """Add a project to a tenant (NotFoundError: no such tenant; ConflictError: taken)."""
        project = Project(self._home(tenant), check_name(name, "project"), self._clock())
        made = self._audit(tenant, "project.create", "project", name)
        self._directory.add_project(project, made)
        return project

    def projects(self, tenant: str) -> builtins.list[Project]:
        """The tenant's projects, by name."""
        self.tenant(tenant)
        return self._directory.projects(tenant)

    # -- keys --------------------------------------------------------------------------

    def create_key(
        self,
        tenant: str,
        role: Role | str,
        *,
        user: str | None = None,
        project: str | None = None,
        name: str | None = None,
        expires_at: datetime | str | None = None,
        allow: Sequence[str] = (),
    ) -> IssuedKey:
        """Make a key for a tenant (and one of its users and projects, if given).

        Raises:
            NotFoundError: no such tenant, or no such user or project in it.
            ValidationError: a bad role, name, network or expiry (one in the past).
        """
        now = self._clock()
        wanted = parse_role(role)
        bound_user = None if user is None else check_name(user, "user")
        bound_project = None if project is None else check_name(project, "project")
        label = None if name is None else check_label(name, "key name")
        ends = self._expiry(expires_at, now)
        networks = parse_networks(allow)
        record, secret = issue_key(
            self._home(tenant),
            wanted,
            user=bound_user,
            project=bound_project,
            name=label,
            expires_at=ends,
            allow=networks,
            now=now,
        )
        detail = f"role {wanted.value}" + (f", user {bound_user}" if bound_user else "")
        detail += f", project {bound_project}" if bound_project else ""
        made = self._audit(record.tenant, "key.create", "key", record.id, detail)
        self._directory.add_key(record, made)
        return IssuedKey(record, secret)

    def _expiry(self, value: datetime | str | None, now: datetime) -> datetime | None:
        if value is None:
            return None
        at = parse_time(value, "expires_at")
        if at <= now:
            raise ValidationError(f"expires_at {at.isoformat()} is not in the future")
        return at

    def key(self, key_id: str) -> ApiKey:
        """The key with this id (NotFoundError if none)."""
        found = self._directory.key(key_id) if isinstance(key_id, str) else None
        if found is None:
            raise NotFoundError(f"no key {key_id!r}")
        return found

    def keys(self, tenant: str | None = None) -> builtins.list[ApiKey]:
        """The keys of ``tenant`` (None: of every tenant), oldest first."""
        if tenant is not None:
            self.tenant(tenant)
        return self._directory.keys(tenant)

    def set_key_allow(self, key_id: str, cidrs: Sequence[str]) -> ApiKey:
        """Replace the networks requests with this key must come from (empty: anywhere)."""
        changed = self.key(key_id).with_changes(allow=parse_networks(cidrs))
        detail = f"allow {', '.join(changed.allow) or 'any'}"
        self._directory.set_key(
            changed, self._audit(changed.tenant, "key.allow", "key", changed.id, detail)
        )
        return changed

    def rotate_key(self, key_id: str, grace: timedelta) -> IssuedKey:
        """A new key with the same grants (tenant, user, project, role, name, allowlist,
        expiry); the old one keeps working for ``grace``, then expires.

        Raises:
            ConflictError: the key is revoked, expired or was rotated already.
        """
        if not isinstance(grace, timedelta) or grace < timedelta(0):
            raise ValidationError("the grace period must be zero or more")
        old = self.key(key_id)
        now = self._clock()
        refusal = old.refusal(now)
        if refusal is not None:
            raise ConflictError(f"key {old.id} is {refusal}: make a new one instead")
        if old.replaced_by is not None:
            raise ConflictError(f"key {old.id} was rotated already (into {old.replaced_by})")
        try:  # checked before anything is written: a failed rotation leaves no new key
            ends = now + grace
        except OverflowError:
            raise ValidationError(f"the grace period is too long: {grace}") from None
        record, secret = issue_key(
            old.tenant,
            old.role,
            user=old.user,
            project=old.project,
            name=old.name,
            expires_at=old.expires_at,
            allow=old.allow,
            now=now,
        )
        made = self._audit(old.tenant, "key.create", "key", record.id, f"rotates {old.id}")
        self._directory.add_key(record, made)
        retired = old.with_changes(
            expires_at=ends if old.expires_at is None else min(old.expires_at, ends),
            replaced_by=record.id,
        )
        try:
            rotated = self._audit(old.tenant, "key.rotate", "key", old.id, f"into {record.id}")
            self._directory.set_key(retired, rotated)
        except BaseException:
            # The old key stays as it was: the new one must not outlive a failed rotation.
            with contextlib.suppress(MemexError):
                undone = self._audit(old.tenant, "key.revoke", "key", record.id, "rotation failed")
                self._directory.set_key(record.with_changes(revoked_at=now), undone)
            raise
        return IssuedKey(record, secret)

    def revoke_key(self, key_id: str) -> ApiKey:
        """Stop a key from working, at once and for good (a revoked key stays revoked)."""
        key = self.key(key_id)
        if key.revoked_at is not None:
            return key
        revoked = key.with_changes(revoked_at=self._clock())
        self._directory.set_key(revoked, self._audit(key.tenant, "key.revoke", "key", key.id))
        return revoked

    # -- the server's first start ------------------------------------------------------

    def ensure_owner(self) -> IssuedKey | None:
        """Make the home tenant (if missing) and an owner key for it, unless it has a
        usable one; None when it has."""
        now = self._clock()
        self._home(self.home_tenant)
        owners = [
            k
            for k in self._directory.keys(self.home_tenant)
            if k.role is Role.OWNER and k.project is None and k.refusal(now) is None
        ]
        if owners:
            return None
        return self.create_key(self.home_tenant, Role.OWNER, name="owner")

    def authenticator(self, trusted_proxies: Sequence[str] = ()) -> Authenticator:
        """An authenticator for requests to this store."""
        return Authenticator(self._directory, self.home_tenant, trusted_proxies, clock=self._clock)

    def acting(self, principal: Principal) -> TenantAdmin:
        """These operations as ``principal`` may take them: in its tenant, by its role."""
        return TenantAdmin(self, principal)


@dataclass(frozen=True, slots=True)
class NewTenant:
    """A tenant just made, with its first owner key (shown this once)."""

    tenant: Tenant
    owner_key: IssuedKey

    def public(self) -> dict[str, object]:
        """The tenant and its owner key (the whole key, to show this once)."""
        return {"tenant": self.tenant.public(), "owner_key": self.owner_key.public()}


class TenantAdmin:
    """The administration one caller may do: in its own tenant, within its role.

    Another tenant's keys are not found, never forbidden. A caller bound to a user sees
    and makes only keys bound to that user, so no key it makes reaches further than its
    own; a caller never makes, changes or rotates a key above its own role.
    """

    def __init__(self, admin: Admin, principal: Principal) -> None:
        self._admin = admin
        self._principal = principal

    @property
    def principal(self) -> Principal:
        """The caller."""
        return self._principal

    def me(self) -> ApiKey:
        """The caller's own key."""
        return self._admin.key(self._principal.key_id)

    def tenant(self) -> Tenant:
        """The caller's tenant."""
        return self._admin.tenant(self._principal.tenant)

    def set_tenant_allow(self, cidrs: Sequence[str]) -> Tenant:
        """Replace the networks requests for the caller's tenant must come from."""
        require(self._principal, Action.MANAGE_TENANT)
        return self._admin.set_tenant_allow(self._principal.tenant, cidrs)

    def tenants(self) -> builtins.list[Tenant]:
        """Every tenant (owners of the home tenant only)."""
        require(self._principal, Action.MANAGE_TENANTS)
        return self._admin.tenants()

    def create_tenant(self, name: str, allow: Sequence[str] = ()) -> NewTenant:
        """A new tenant and its first owner key (owners of the home tenant only)."""
        require(self._principal, Action.MANAGE_TENANTS)
        tenant = self._admin.create_tenant(name, allow)
        return NewTenant(tenant, self._admin.create_key(tenant.name, Role.OWNER, name="owner"))

    def create_user(self, name: str) -> User:
        """Add a user to the caller's tenant, within its quota."""
        require(self._principal, Action.MANAGE_USERS)
        self._admin.check_member(self._principal.tenant, "users")
        return self._admin.create_user(self._principal.tenant, name)

    def users(self) -> builtins.list[User]:
        """The users of the caller's tenant."""
        require(self._principal, Action.MANAGE_USERS)
        return self._admin.users(self._principal.tenant)

    def create_project(self, name: str) -> Project:
        """Add a project to the caller's tenant, within its quota."""
        require(self._principal, Action.MANAGE_PROJECTS)
        self._admin.check_member(self._principal.tenant, "projects")
        return self._admin.create_project(self._principal.tenant, name)

    def quota(self, tenant: str | None = None) -> QuotaReport:
        """The caller's tenant's quotas and use; another tenant's for owners of the home
        tenant only (to others it is not found)."""
        if tenant is None or tenant == self._principal.tenant:
            return self._admin.quota(self._principal.tenant)
        self._other_tenant(tenant)
        return self._admin.quota(tenant)

    def set_quota(
        self, tenant: str | None, changes: dict[str, int | None], *, reset: bool = False
    ) -> QuotaReport:
        """Change a tenant's quotas (owners of the home tenant only: no tenant sets its own)."""
        require(self._principal, Action.MANAGE_TENANTS)
        name = tenant if tenant is not None else self._principal.tenant
        return self._admin.set_quota(name, changes, reset=reset)

    def _other_tenant(self, tenant: str) -> None:
        try:
            require(self._principal, Action.MANAGE_TENANTS)
        except PermissionDeniedError:
            raise NotFoundError(f"no tenant {tenant!r}") from None

    def projects(self) -> builtins.list[Project]:
        """The projects of the caller's tenant."""
        require(self._principal, Action.MANAGE_PROJECTS)
        return self._admin.projects(self._principal.tenant)

    def create_key(
        self,
        role: Role | str,
        *,
        user: str | None = None,
        project: str | None = None,
        name: str | None = None,
        expires_at: datetime | str | None = None,
        allow: Sequence[str] = (),
    ) -> IssuedKey:
        """Make a key in the caller's tenant, of the caller's role or below."""
        require(self._principal, Action.MANAGE_KEYS)
        wanted = parse_role(role)
        self._grantable(wanted)
        own = self._principal.user
        if own is not None and user not in (None, own):
            raise PermissionDeniedError(
                f"a key bound to user {own!r} makes keys for that user only", reason="scope"
            )
        return self._admin.create_key(
            self._principal.tenant,
            wanted,
            user=own if own is not None else user,
            project=project,
            name=name,
            expires_at=expires_at,
            allow=allow,
        )

    def key(self, key_id: str) -> ApiKey:
        """A key of the caller's tenant (another tenant's: NotFoundError)."""
        require(self._principal, Action.MANAGE_KEYS)
        try:
            found = self._admin.key(key_id)
        except NotFoundError:
            found = None
        if found is None or not self._sees(found):
            raise NotFoundError(f"no key {key_id!r}")
        return found

    def keys(self) -> builtins.list[ApiKey]:
        """The keys of the caller's tenant, oldest first."""
        require(self._principal, Action.MANAGE_KEYS)
        return [k for k in self._admin.keys(self._principal.tenant) if self._sees(k)]

    def set_key_allow(self, key_id: str, cidrs: Sequence[str]) -> ApiKey:
        """Replace the networks requests with this key must come from."""
        self._grantable(self.key(key_id).role)
        return self._admin.set_key_allow(key_id, cidrs)

    def rotate_key(self, key_id: str, grace: timedelta) -> IssuedKey:
        """A new key with the same grants; the old one works for ``grace`` more."""
        self._grantable(self.key(key_id).role)
        return self._admin.rotate_key(key_id, grace)

    def revoke_key(self, key_id: str) -> ApiKey:
        """Stop a key from working, at once."""
        self._grantable(self.key(key_id).role)
        return self._admin.revoke_key(key_id)

    def _sees(self, key: ApiKey) -> bool:
        own = self._principal.user
        return key.tenant == self._principal.tenant and (own is None or key.user == own)

    def _grantable(self, role: Role) -> None:
        if not self._principal.may_grant(role):
            raise PermissionDeniedError(
                f"a {self._principal.role.value} key may not manage {role.value} keys",
                reason="role",
            )

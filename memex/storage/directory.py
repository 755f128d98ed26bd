"""The directory: the tenants, users, projects, API keys and quotas a store knows.

Every backend keeps its directory in the same database as its memories, so a backup,
a copy or a server sees one consistent whole. ``Store.directory()`` hands it out.
The directory holds no secrets: keys are stored as hashes (see ``memex.security``).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from memex.core.audit import AuditEvent
from memex.core.identity import ApiKey, Project, Tenant, User
from memex.core.limits import Quotas


class Directory(Protocol):
    """The tenants, users, projects and keys of one store.

    An ``add_*`` of a name or id that exists raises ConflictError and changes nothing.
    Each change may carry the audit event that records it (``audit``), appended to that
    tenant's chain in the change's own transaction: both are written or neither.
    Every change bumps ``generation``, so a process that caches keys can see, with one
    cheap read, that another process revoked one.
    """

    def generation(self) -> int:
        """A number that grows with every change to the directory, from any process."""
        ...

    def add_tenant(self, tenant: Tenant, audit: AuditEvent | None = None) -> None:
        """Add a tenant."""
        ...

    def tenant(self, name: str) -> Tenant | None:
        """The tenant named ``name``, if there is one."""
        ...

    def tenants(self) -> builtins.list[Tenant]:
        """Every tenant, by name."""
        ...

    def set_tenant(self, tenant: Tenant, audit: AuditEvent | None = None) -> None:
        """Replace the stored tenant of the same name (its allowlist); NotFoundError if none."""
        ...

    def add_user(self, user: User, audit: AuditEvent | None = None) -> None:
        """Add a user to its tenant (which must exist: NotFoundError)."""
        ...

    def users(self, tenant: str) -> builtins.list[User]:
        """The tenant's users, by name."""
        ...

    def add_project(self, project: Project, audit: AuditEvent | None = None) -> None:
        """Add a project to its tenant (which must exist: NotFoundError)."""
        ...

    def projects(self, tenant: str) -> builtins.list[Project]:
        """The tenant's projects, by name."""
        ...

    def add_key(self, key: ApiKey, audit: AuditEvent | None = None) -> None:
        """Add a key (its tenant, and its user and project if it has them, must exist in
        that tenant: NotFoundError)."""
        ...

    def key(self, key_id: str) -> ApiKey | None:
        """The key with id ``key_id``, if there is one."""
        ...

    def keys(self, tenant: str | None = None) -> builtins.list[ApiKey]:
        """The keys of ``tenant`` (None: of every tenant), oldest first."""
        ...

    def set_key(self, key: ApiKey, audit: AuditEvent | None = None) -> None:
        """Replace the stored key of the same id (revocation, expiry, allowlist, rotation);
        NotFoundError if none, or if it belongs to another tenant (a key never moves)."""
        ...

    def touch_keys(self, used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (later times only; unknown ids are ignored).
        Does not bump ``generation``. May refuse at once (StoreLockedError) rather than
        wait for another writer: the caller keeps the times and tries again later."""
        ...

    def quotas(self, tenant: str) -> Quotas | None:
        """The quotas set for ``tenant``; None if none were (it has the defaults)."""
        ...

    def set_quotas(
        self, tenant: str, quotas: Quotas | None, audit: AuditEvent | None = None
    ) -> None:
        """Set the tenant's quotas (None: back to the defaults); NotFoundError if there
        is no such tenant."""
        ...

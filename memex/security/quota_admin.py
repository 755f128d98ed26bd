"""The quota part of ``Admin``: reading and setting tenants' quotas, and checking a new
project or user against them on a server."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING

from memex.actor import current_actor
from memex.core.audit import AuditEvent
from memex.core.identity import Project, Tenant, User
from memex.core.limits import DEFAULT_QUOTAS, UNLIMITED, QuotaReport, Quotas, changed_quotas
from memex.storage.directory import Directory

if TYPE_CHECKING:
    from memex.engine import WriteQuota


class QuotaAdmin:
    """Quotas, for ``Admin`` (which supplies the directory, tenants and members)."""

    _directory: Directory
    _quota: WriteQuota | None
    _count: Callable[[str], tuple[int, int]] | None
    home_tenant: str

    def tenant(self, name: str) -> Tenant:
        """The tenant named ``name`` (defined by ``Admin``)."""
        raise NotImplementedError

    def _home(self, tenant: str) -> str:
        """``tenant``, the home tenant made on first use (defined by ``Admin``)."""
        raise NotImplementedError

    def users(self, tenant: str) -> builtins.list[User]:
        """The tenant's users (defined by ``Admin``)."""
        raise NotImplementedError

    def projects(self, tenant: str) -> builtins.list[Project]:
        """The tenant's projects (defined by ``Admin``)."""
        raise NotImplementedError

    def check_member(self, tenant: str, kind: str) -> None:
        """Refuse one more project or user (``kind``) past the tenant's hard quota, on a
        server (QuotaExceededError); elsewhere there is nothing to check."""
        if self._quota is not None:
            have = self._directory.projects if kind == "projects" else self._directory.users
            self._quota.admit_member(tenant, kind, len(have(tenant)))

    # -- quotas --------------------------------------------------------------------------

    def quota(self, tenant: str) -> QuotaReport:
        """The tenant's quotas and use (NotFoundError if there is no such tenant; the
        home tenant is made on first use)."""
        self.tenant(self._home(tenant))

        def members() -> tuple[int, int]:
            return len(self.projects(tenant)), len(self.users(tenant))

        if self._quota is not None:
            return self._quota.report(tenant, members)
        stored = self._directory.quotas(tenant)
        quotas = stored if stored is not None else self._defaults(tenant)
        memories, size = self._count(tenant) if self._count is not None else (0, 0)
        projects, users = members()
        used = {"memories": memories, "storage_mb": -(-size // 1_000_000),
                "calls_per_hour": None, "projects": projects, "users": users}  # fmt: skip
        return QuotaReport(tenant, quotas, used, stored is None)

    def _defaults(self, tenant: str) -> Quotas:
        return UNLIMITED if tenant == self.home_tenant else DEFAULT_QUOTAS

    def set_quota(
        self, tenant: str, changes: dict[str, int | None], *, reset: bool = False
    ) -> QuotaReport:
        """Change the tenant's quotas (see ``core.limits.changed_quotas``); ``reset``
        starts from the defaults, and with no changes goes back to them."""
        self.tenant(self._home(tenant))
        stored = None if reset else self._directory.quotas(tenant)
        base = stored if stored is not None else self._defaults(tenant)
        quotas = changed_quotas(base, changes)
        named = ", ".join(sorted(changes)) or "defaults"
        event = AuditEvent(tenant, "quota.set", "tenant", current_actor(), tenant, detail=named)
        self._directory.set_quotas(tenant, None if reset and not changes else quotas, event)
        if self._quota is not None:
            self._quota.changed()
        return self.quota(tenant)

"""The client's administration of a tenant: its privacy operations (export, erase,
anonymise), its quotas and its audit trail, as ``Client`` and ``AsyncClient`` send them
(mixed into each; the requests and answers are ``memex.client.calls``')."""

from __future__ import annotations

import builtins
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from memex.client import calls
from memex.client.calls import Call
from memex.core.progress import Progress, Step
from memex.core.versions import KEEP

if TYPE_CHECKING:
    from memex.core.audit import AuditReport, Verification
    from memex.core.limits import QuotaReport
    from memex.core.privacy import Anonymisation, ErasureReceipt, PrivacyExport

T = TypeVar("T")


class Governance:
    """``Client``'s privacy, quota and audit methods."""

    def _send(self, call: Call[T], body: Any = None) -> T:
        raise NotImplementedError

    # -- privacy -------------------------------------------------------------------

    def export_user(self, user: str) -> PrivacyExport:
        """Everything the server holds about a user of the key's tenant, as one package."""
        return self._send(calls.export_user(user))

    def erase(
        self,
        *,
        user: str | None = None,
        project: str | None = None,
        tenant: str | None = None,
        progress: Progress | None = None,
        batch_size: int = 500,
    ) -> ErasureReceipt:
        """Erase a user's or a project's data for good, or a whole tenant's; the server
        works in batches, and ``progress`` hears of the memories erased once it is done."""
        receipt = self._send(calls.erase(user, project, tenant, batch_size))
        if progress is not None:
            erased = receipt.counts.get("memories", 0)
            progress(Step("erasing memories", erased, erased))
        return receipt

    def anonymise(self, user: str) -> Anonymisation:
        """Replace a user of the key's tenant by a pseudonym wherever the server keeps it."""
        return self._send(calls.anonymise(user))

    # -- quotas ----------------------------------------------------------------------

    def quota(self, tenant: str | None = None) -> QuotaReport:
        """The key's tenant's quotas and use (another tenant's: owners of the home tenant)."""
        return self._send(calls.quota(tenant))

    def set_quota(
        self,
        tenant: str | None = None,
        *,
        memories: int | None = KEEP,
        memories_soft: int | None = KEEP,
        storage_mb: int | None = KEEP,
        storage_mb_soft: int | None = KEEP,
        calls_per_hour: int | None = KEEP,
        calls_per_hour_soft: int | None = KEEP,
        projects: int | None = KEEP,
        projects_soft: int | None = KEEP,
        users: int | None = KEEP,
        users_soft: int | None = KEEP,
        reset: bool = False,
    ) -> QuotaReport:
        """Set a tenant's quotas (owners of the home tenant): a number sets a limit, None
        removes it, one left out is kept; ``reset`` starts from the defaults."""
        given = {
            "memories": memories,
            "memories_soft": memories_soft,
            "storage_mb": storage_mb,
            "storage_mb_soft": storage_mb_soft,
            "calls_per_hour": calls_per_hour,
            "calls_per_hour_soft": calls_per_hour_soft,
            "projects": projects,
            "projects_soft": projects_soft,
            "users": users,
            "users_soft": users_soft,
        }
        return self._send(calls.set_quota(tenant, given, reset))

    def audit_verify(self, tenant: str | None = None) -> builtins.list[Verification]:
        """Check the key's tenant's audit chain for tampering (admin and owner keys)."""
        return self._send(calls.audit_verify(tenant))

    def audit_export(
        self,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        *,
        tenant: str | None = None,
        path: str | Path | None = None,
    ) -> AuditReport:
        """The key's tenant's audit entries made in ``[since, until)``, with a summary;
        with ``path``, also written to that local file as JSON Lines."""
        report = self._send(calls.audit_export(since, until, tenant))
        if path is not None:
            from memex.files import output_file

            with output_file(path) as handle:
                for line in report.lines():
                    handle.write(line + "\n")
        return report


class AsyncGovernance:
    """``AsyncClient``'s privacy, quota and audit methods."""

    async def _send(self, call: Call[T], body: Any = None) -> T:
        raise NotImplementedError

    # -- privacy -------------------------------------------------------------------

    async def export_user(self, user: str) -> PrivacyExport:
        """Everything the server holds about a user of the key's tenant, as one package."""
        return await self._send(calls.export_user(user))

    async def erase(
        self,
        *,
        user: str | None = None,
        project: str | None = None,
        tenant: str | None = None,
        progress: Progress | None = None,
        batch_size: int = 500,
    ) -> ErasureReceipt:
        """Erase a user's or a project's data for good, or a whole tenant's; the server
        works in batches, and ``progress`` hears of the memories erased once it is done."""
        receipt = await self._send(calls.erase(user, project, tenant, batch_size))
        if progress is not None:
            erased = receipt.counts.get("memories", 0)
            progress(Step("erasing memories", erased, erased))
        return receipt

    async def anonymise(self, user: str) -> Anonymisation:
        """Replace a user of the key's tenant by a pseudonym wherever the server keeps it."""
        return await self._send(calls.anonymise(user))

    # -- quotas ----------------------------------------------------------------------

    async def quota(self, tenant: str | None = None) -> QuotaReport:
        """The key's tenant's quotas and use (another tenant's: owners of the home tenant)."""
        return await self._send(calls.quota(tenant))

    async def set_quota(
        self,
        tenant: str | None = None,
        *,
        memories: int | None = KEEP,
        memories_soft: int | None = KEEP,
        storage_mb: int | None = KEEP,
        storage_mb_soft: int | None = KEEP,
        calls_per_hour: int | None = KEEP,
        calls_per_hour_soft: int | None = KEEP,
        projects: int | None = KEEP,
        projects_soft: int | None = KEEP,
        users: int | None = KEEP,
        users_soft: int | None = KEEP,
        reset: bool = False,
    ) -> QuotaReport:
        """Set a tenant's quotas (owners of the home tenant): a number sets a limit, None
        removes it, one left out is kept; ``reset`` starts from the defaults."""
        given = {
            "memories": memories,
            "memories_soft": memories_soft,
            "storage_mb": storage_mb,
            "storage_mb_soft": storage_mb_soft,
            "calls_per_hour": calls_per_hour,
            "calls_per_hour_soft": calls_per_hour_soft,
            "projects": projects,
            "projects_soft": projects_soft,
            "users": users,
            "users_soft": users_soft,
        }
        return await self._send(calls.set_quota(tenant, given, reset))

    async def audit_verify(self, tenant: str | None = None) -> builtins.list[Verification]:
        """Check the key's tenant's audit chain for tampering (admin and owner keys)."""
        return await self._send(calls.audit_verify(tenant))

    async def audit_export(
        self,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        *,
        tenant: str | None = None,
        path: str | Path | None = None,
    ) -> AuditReport:
        """The key's tenant's audit entries made in ``[since, until)``, with a summary;
        with ``path``, also written to that local file as JSON Lines."""
        report = await self._send(calls.audit_export(since, until, tenant))
        if path is not None:
            from memex.files import output_file

            with output_file(path) as handle:
                for line in report.lines():
                    handle.write(line + "\n")
        return report

"""The audit trail's operations (mixed into ``Memex``): verify a tenant's chain, export
a compliance report, and record what no write carries (a refused request, a warning).

The root handle (the command line on a store) reaches every chain, the store-wide one
(``STORE_CHAIN``) included; a scoped handle (a server's caller) only its own tenant's.
Entries that go with a change are made where the change is written (``Handle._audit``
and the directory's administration) and committed with it.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from pathlib import Path

from memex.core.audit import AuditEvent, AuditReport, Verification, verify
from memex.core.models import parse_time
from memex.errors import ScopeError, ValidationError
from memex.files import output_file
from memex.handle import Handle


class AuditMixin(Handle):
    """``audit_verify``, ``audit_export`` and ``record_audit``."""

    _root: bool

    def _chains(self, tenant: str | None) -> builtins.list[str]:
        """The chains a call reaches: the one named, or every one (root handle)."""
        own = str(self._scope.tenant)
        if tenant is not None and not isinstance(tenant, str):
            raise ValidationError("tenant must be a string")
        if not self._root:
            if tenant not in (None, own):
                raise ScopeError(f"scope tenant is fixed to {own!r}; got {tenant!r}")
            return [own]
        if tenant is not None:
            return [tenant]
        return [head.tenant for head in self._engine.store.audit().heads()]

    def audit_verify(self, tenant: str | None = None) -> builtins.list[Verification]:
        """Check audit chains for tampering: the tenant's (None: the handle's own, or from
        the root handle every chain in the store), each read in one transaction and
        checked against its head. A result that is not ``ok`` names the first entry
        found wrong and how (edited, deleted, inserted, reordered, truncated)."""
        log = self._engine.store.audit()
        found = []
        for name in self._chains(tenant):
            trail = log.trail(name)
            found.append(verify(trail.entries, trail.head))
        return found

    def audit_export(
        self,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        *,
        tenant: str | None = None,
        path: str | Path | None = None,
    ) -> AuditReport:
        """The audit entries made in ``[since, until)`` (naive times: UTC), oldest first
        per chain, with a summary by action and outcome (a compliance report); chains
        as ``audit_verify`` picks them. With ``path``, the report is also written there
        as JSON Lines (``AuditReport.lines``), replacing the file only once complete."""
        start = None if since is None else parse_time(since, "since")
        end = None if until is None else parse_time(until, "until")
        if start is not None and end is not None and start > end:
            raise ValidationError("since must not be later than until")
        log = self._engine.store.audit()
        names = self._chains(tenant)
        trails = [log.trail(name, start, end) for name in names]
        report = AuditReport(
            tenants=tuple(names),
            since=start,
            until=end,
            entries=tuple(e for t in trails for e in t.entries),
            heads=tuple(t.head for t in trails if t.head is not None),
        )
        if path is not None:
            with output_file(path, owned=self._engine.store.info().files) as handle:
                for line in report.lines():
                    handle.write(line + "\n")
        return report

    def record_audit(self, event: AuditEvent) -> None:
        """Append ``event`` to its chain in a transaction of its own: what changes nothing
        else (a refused request, a limit's warning). A scoped handle records only in its
        own tenant's chain; the root handle in any (``STORE_CHAIN`` for refusals that
        belong to no tenant)."""
        if not isinstance(event, AuditEvent):
            raise ValidationError("record_audit takes an AuditEvent")
        if not self._root and event.tenant != self._scope.tenant:
            raise ScopeError(f"scope tenant is fixed to {self._scope.tenant!r}")
        self._check_writable()
        self._engine.store.audit().append(event)

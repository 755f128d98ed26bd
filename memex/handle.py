"""What the parts ``Memex`` is mixed from share: its engine and scope, and the checks
every part calls (``Memex`` defines the first two)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from memex.actor import current_actor
from memex.core.audit import AuditEvent
from memex.core.models import Memory, Scope

if TYPE_CHECKING:
    from memex.engine import Engine


class Handle:
    """The base of ``Memex``'s parts: the engine and scope of one handle."""

    _engine: Engine
    _scope: Scope

    def _get_visible(self, memory_id: str, now: datetime | None = None) -> Memory:
        """The memory as ``get`` finds it, else NotFoundError (defined by ``Memex``)."""
        raise NotImplementedError

    def _check_writable(self) -> None:
        """Raise StoreReadOnlyError for a store that takes no writes (defined by ``Memex``)."""
        raise NotImplementedError

    def _audit(
        self, action: str, resource_id: str = "", *, count: int = 1, detail: str = ""
    ) -> AuditEvent:
        """The audit entry of a change to this handle's memories, by the current actor
        (``memex.actor``): what and which, never content."""
        tenant = str(self._scope.tenant)
        actor = current_actor()
        return AuditEvent(tenant, action, "memory", actor, resource_id, count=count, detail=detail)

    @contextlib.contextmanager
    def _counted(self, memories: int, content_bytes: int) -> Iterator[None]:
        """Hold a write against the tenant's quotas (a server's; none elsewhere): one
        that would pass a hard limit is refused before any work, one that fails is
        uncounted. Only growth is counted: a write that frees room frees it at the next
        count."""
        quota = self._engine.quota
        if quota is None or (memories <= 0 and content_bytes <= 0):
            yield
            return
        tenant = str(self._scope.tenant)
        memories, content_bytes = max(memories, 0), max(content_bytes, 0)
        quota.admit(tenant, memories, content_bytes)
        try:
            yield
        except BaseException:
            quota.release(tenant, memories, content_bytes)
            raise

    def _tenant(self) -> Scope:
        """The handle's whole tenant: ids are unique within it, supersedes link within it."""
        return Scope(tenant=self._scope.tenant)

"""Forgetting and purging memories, and undoing supersedes (mixed into ``Memex``).

Removing a memory that superseded others gives them back the validity they had before
(the rule is ``core.supersede.restored_validity``), in the same transaction: a wrong
supersede never hides a fact for good.
"""

from __future__ import annotations

import builtins
from datetime import datetime

from memex.core.audit import AuditEvent
from memex.core.ids import stored_id
from memex.core.models import Memory, Scope, utcnow
from memex.core.query import Filters
from memex.core.supersede import restored_validity
from memex.core.versions import deleted, revalidated
from memex.errors import NotFoundError, ValidationError
from memex.handle import Handle
from memex.storage.base import WriteBatch

_Update = tuple[Memory, None, int]
_CHAIN_LIMIT = 64
"""Successors followed at most, so a cycle in imported links cannot loop."""
_PAGE = 1000


class RemovalMixin(Handle):
    """``forget``, ``purge`` and ``unsupersede`` for a scoped handle."""

    def forget(self, memory_id: str) -> Memory:
        """Soft-delete a memory: no read but ``history`` returns it, at any ``as_of``;
        a forgotten or expired memory is not found, as by ``get``.

        The memories it superseded are valid again (or, if it was superseded in turn,
        superseded by what replaced it), each as a new version.
        """
        self._check_writable()
        now = utcnow()
        # Checked at the deleted_at written, which is thus before any expires_at: what
        # tells a forget from a recorded expiry (memex.core.visibility.is_forgotten).
        old = self._get_visible(memory_id, now)
        new = deleted(old, now)
        restored = self._restored(old, now)
        detail = f"restores {len(restored)}" if restored else ""
        self._write(
            [(new, None, old.version), *restored],
            self._audit("memory.forget", new.id, detail=detail),
        )
        return new

    def purge(self, memory_id: str) -> str:
        """Delete a memory (in any state), its whole history and its vector, for good;
        return its id as stored.

        The memories it superseded get their validity back, as ``forget`` gives it,
        in the same transaction. Every saved session context that showed it is dropped,
        and no copy of its text is left in the store's files (see docs/storage.md).
        """
        self._check_writable()
        engine = self._engine
        target = engine.find(self._scope, stored_id(memory_id), include_deleted=True)
        if target is None:
            raise NotFoundError(f"no memory {memory_id}")
        restored = self._restored(target, utcnow())
        audit = self._audit("memory.purge", target.id)
        batch = WriteBatch(
            updates=list(restored), purges=[(target.id, target.version)], audit=audit
        )
        engine.store.write(self._tenant(), batch, engine.embedding.current_model())
        engine.access.drop_showing(str(self._scope.tenant), target.id)
        engine.drop_caches()
        return target.id

    def unsupersede(self, memory_id: str) -> Memory:
        """Undo a wrong supersede: the memory is valid again, with no end (or the end it
        had of its own before), and can be recalled and superseded again.

        The memory that superseded it stays as it is, no longer marked as replacing it.

        Raises:
            ValidationError: the memory is not superseded.
            NotFoundError: no such memory, or it is forgotten or expired (as by ``get``).
        """
        self._check_writable()
        now = utcnow()
        old = self._get_visible(memory_id, now)
        if old.superseded_by is None:
            raise ValidationError(f"memory {old.id} is not superseded")
        versions = self._engine.store.history(self._tenant(), old.id)
        new = revalidated(old, restored_validity(versions, ()), now)
        self._write([(new, None, old.version)], self._audit("memory.unsupersede", new.id))
        return new

    def _write(
        self, updates: builtins.list[_Update], audit: AuditEvent, scope: Scope | None = None
    ) -> None:
        """Write new versions (no new vectors) in one transaction, within ``scope``: by
        default the whole tenant, since restored memories may lie outside this handle's
        scope (a supersede links memories of one tenant, and undoing it is part of
        removing the one that did)."""
        if not updates:
            return
        engine = self._engine
        batch = WriteBatch(updates=list(updates), audit=audit)
        engine.store.write(scope or self._tenant(), batch, engine.embedding.current_model())

    def _restored(self, removed: Memory, now: datetime) -> builtins.list[_Update]:
        """New versions of the memories ``removed`` superseded, as if it never had."""
        store = self._engine.store
        tenant = self._tenant()
        filters = Filters(
            scope=tenant, include_deleted=True, include_superseded=True, superseded_by=removed.id
        )
        replaced: builtins.list[Memory] = []
        cursor: str | None = ""
        while cursor is not None:
            page, cursor = store.list(filters, "asc", _PAGE, cursor or None)
            replaced.extend(page)
        if not replaced:
            return []
        successors = self._successors(removed)
        updates: builtins.list[_Update] = []
        for memory in replaced:
            validity = restored_validity(store.history(tenant, memory.id), successors)
            updates.append((revalidated(memory, validity, now), None, memory.version))
        return updates

    def _successors(self, removed: Memory) -> builtins.list[Memory]:
        """What replaced ``removed``, then what replaced that, and so on."""
        engine, tenant = self._engine, self._tenant()
        chain: builtins.list[Memory] = []
        seen = {removed.id}
        next_id = removed.superseded_by
        while next_id is not None and next_id not in seen and len(chain) < _CHAIN_LIMIT:
            found = engine.find(tenant, next_id, include_deleted=True)
            if found is None:
                break
            chain.append(found)
            seen.add(next_id)
            next_id = found.superseded_by
        return chain

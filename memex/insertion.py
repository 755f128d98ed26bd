"""Storing new memories, with the supersedes they make (mixed into ``Memex``).

``remember``, ``supersede`` and ``import_lines`` all end here: a batch is validated,
the memories it supersedes get their next versions (the rule is
``core.versions.superseded``), the contents are embedded and everything is written in
one transaction, all or nothing.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from memex.core.audit import AuditEvent
from memex.core.build import build_memory
from memex.core.models import Memory, Scope, utcnow
from memex.core.progress import Progress
from memex.core.query import Filters
from memex.core.versions import superseded
from memex.errors import ValidationError
from memex.handle import Handle
from memex.storage.base import WriteBatch


class InsertionMixin(Handle):
    """``remember_many`` and the insert path every new memory takes."""

    @property
    def _chooses_ids(self) -> bool:
        """Whether this handle may give memories ids of its choosing.

        Ids are unique per tenant, so only a handle on the whole tenant may: a narrower
        one would learn from a refused id that it exists elsewhere in the tenant.
        """
        return self._scope == Scope(tenant=self._scope.tenant)

    def remember_many(
        self, items: Iterable[Mapping[str, Any]], *, progress: Progress | None = None
    ) -> builtins.list[Memory]:
        """Store many memories in one transaction: all of them, or none on any error.

        A batch that leaves the search indexes far behind builds them too, reporting it.
        """
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise ValidationError("remember_many takes an iterable of mappings, one per memory")
        now = utcnow()
        memories: builtins.list[Memory] = []
        supersede: builtins.list[tuple[int, str]] = []
        explicit: builtins.list[str] = []
        for position, item in enumerate(items):
            if isinstance(item, Mapping) and item.get("id") and not self._chooses_ids:
                narrowed = ", ".join(f"{k}={v}" for k, v in self._scope.items() if k != "tenant")
                raise ValidationError(
                    f"item {position}: only a handle on a whole tenant may choose memory ids, "
                    f"not one scoped to {narrowed}"
                )
            memory, old_id = build_memory(
                item,
                within=self._scope,
                now=now,
                max_content_bytes=self._engine.settings.max_content_bytes,
                position=position,
            )
            memories.append(memory)
            if old_id:
                supersede.append((position, old_id))
            if item.get("id"):
                explicit.append(memory.id)
        action = "memory.supersede" if supersede else "memory.remember"
        return self._insert(memories, supersede, progress, explicit, action=action)

    def _insert(
        self,
        memories: builtins.list[Memory],
        supersede: builtins.list[tuple[int, str]],
        progress: Progress | None,
        explicit_ids: Sequence[str] = (),
        history: Sequence[Memory] = (),
        *,
        action: str,
    ) -> builtins.list[Memory]:
        """Write ``memories`` (and past versions of them, ``history``) in one transaction,
        with one audit entry (``action``) for the whole batch.

        ``supersede`` pairs a memory's position with the id of the memory it supersedes;
        ``explicit_ids`` are the ids the caller chose, which must be new to the tenant.
        """
        self._check_writable()
        if not memories:
            return []
        ids = [m.id for m in memories]
        if len(set(ids)) != len(ids):
            raise ValidationError("the batch holds the same id twice")
        engine = self._engine
        tenant = self._tenant()  # ids are unique within a tenant
        anything = Filters(scope=tenant, include_deleted=True, include_superseded=True)
        for memory_id in engine.store.fetch(anything, explicit_ids):
            raise ValidationError(f"a memory with id {memory_id} already exists")
        batch = WriteBatch()
        now = utcnow()
        targets = [old_id for _, old_id in supersede]
        if len(set(targets)) != len(targets):
            raise ValidationError("the batch supersedes the same memory twice")
        for position, old_id in supersede:
            old = self._get_visible(old_id, now)
            new = superseded(old, memories[position], now, named=old_id)
            batch.updates.append((new, None, old.version))
        quota, tenant_name = engine.quota, str(self._scope.tenant)
        size = 0 if quota is None else sum(len(m.content.encode()) for m in memories)
        if quota is not None:  # before any work: a batch over a hard quota writes nothing
            quota.admit(tenant_name, len(memories), size)
        try:
            vectors = engine.embedding.embed_contents(
                self._scope, [m.content for m in memories], progress
            )
            batch.inserts = list(zip(memories, vectors, strict=True))
            batch.history = list(history)
            batch.audit = self._batch_audit(action, memories, [old for _, old in supersede])
            engine.store.write(self._scope, batch, engine.embedding.model_for(vectors))
        except BaseException:
            if quota is not None:
                quota.release(tenant_name, len(memories), size)
            raise
        engine.catch_up_indexes(self._scope.tenant, progress)
        return memories

    def _batch_audit(
        self, action: str, memories: Sequence[Memory], superseded_ids: Sequence[str]
    ) -> AuditEvent:
        """One entry for a batch: the memory's id, or for more the first and last id and
        how many (an entry per memory would cost an import more than its rows)."""
        detail = f"supersedes {', '.join(superseded_ids)}"[:256] if superseded_ids else ""
        if len(memories) == 1:
            return self._audit(action, memories[0].id, detail=detail)
        span = f"ids {memories[0].id} .. {memories[-1].id}"
        return self._audit(action, count=len(memories), detail=f"{span}; {detail}".rstrip("; "))

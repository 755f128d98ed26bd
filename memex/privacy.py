"""Exporting, erasing and anonymising a user's data, and erasing a project or a whole
tenant (mixed into ``Memex``; docs/security.md, "Privacy").

An erasure goes in bounded batches (``batch_size`` memories a transaction), reporting
progress, and can be run again after an interruption: what the first run erased stays
erased, and the second finishes the rest, scrubbing what deletes left in the store's
files. Its receipt counts what the run removed, from the store's own answers.
"""

from __future__ import annotations

import builtins
import secrets
from typing import TYPE_CHECKING, Any

from memex.actor import current_actor
from memex.core.audit import STORE_CHAIN, AuditEvent
from memex.core.models import Memory, utcnow
from memex.core.privacy import (
    Anonymisation,
    ErasureReceipt,
    PrivacyExport,
    Selector,
    added,
    ids_digest,
    session_names,
)
from memex.core.progress import Progress, Tally
from memex.core.query import Filters
from memex.core.validate import validate_count
from memex.errors import ConfigError, NotFoundError, ScopeError
from memex.removal import RemovalMixin

if TYPE_CHECKING:
    from memex.engine import Engine

BATCH = 500
"""Memories erased per transaction by default: a batch holds the write lock for a
fraction of a second, so other writers wait little."""


def audit_entries(
    engine: Engine, selector: Selector, ids: builtins.list[str]
) -> builtins.list[dict[str, Any]]:
    """The entries of the tenant's audit chain that name the user or its memories: by
    a memory's id, by the user as the actor, or by the user as what was changed."""
    wanted = set(ids)
    user = selector.user
    return [
        entry.to_dict()
        for entry in engine.store.audit().trail(selector.tenant).entries
        if entry.resource_id in wanted
        or (user is not None and entry.user == user)
        or (user is not None and entry.resource_type == "user" and entry.resource_id == user)
    ]


def destroy_tenant_key(engine: Engine, tenant: str) -> int:
    """Destroy the tenant's data key (crypto-shredding) once the whole tenant is erased:
    whatever of it stays sealed anywhere (free pages, backups) can never be read again.
    How many keys were destroyed (0: the tenant was stored plain, or the backend does
    not encrypt)."""
    try:
        keys = engine.store.tenant_keys()
    except ConfigError:  # a backend without encryption at rest
        return 0
    return int(keys.destroy(tenant))


class PrivacyMixin(RemovalMixin):
    """``export_user``, ``erase`` and ``anonymise`` for a handle."""

    _root: bool

    def _selector(
        self, *, user: str | None = None, project: str | None = None, tenant: str | None = None
    ) -> Selector:
        """What the call covers, within this handle's reach.

        A whole tenant is erased from the root handle only (a store-wide operation); a
        user or project must lie within the handle's scope: a handle bound to user V
        finds no user U, and a handle bound to a project covers no user.
        """
        if tenant is not None and (user is not None or project is not None):
            raise ScopeError("name a user or a project of this handle's tenant, or a tenant")
        if tenant is not None:
            if not self._root:
                raise ScopeError("erasing a tenant covers the whole store; use the root handle")
            return Selector.of(tenant)
        if user is None and project is None:
            raise ScopeError("name a user, a project or a tenant")
        selector = Selector.of(str(self._scope.tenant), user=user, project=project)
        wanted = dict(selector.scope.items())
        for name, value in self._scope.items():
            if name == "tenant":
                continue
            if name not in wanted:
                raise ScopeError(f"this handle is bound to {name} {value!r}; it covers no other")
            if wanted[name] != value:
                raise NotFoundError(f"no {selector.kind} {wanted[name]!r}")
        return selector

    def _found(self, selector: Selector) -> None:
        store = self._engine.store.privacy()
        if not store.known(selector):
            if store.scrub_pending():  # an earlier run was stopped after its last batch
                store.scrub()
            name = selector.user or selector.project or selector.tenant
            raise NotFoundError(f"no {selector.kind} {name!r}")

    def export_user(self, user: str) -> PrivacyExport:
        """Everything the store holds about a user of this handle's tenant: each of its
        memories (forgotten ones too) with every past version, and the audit entries
        that name them, as one package with a manifest (``PrivacyExport.to_dict``)."""
        selector = self._selector(user=user)
        self._found(selector)
        snapshot = self._engine.store.snapshot(selector.scope, include_deleted=True, history=True)
        try:
            memories = tuple((memory, tuple(past)) for memory, past in snapshot)
        finally:
            snapshot.close()
        audit = audit_entries(self._engine, selector, [m.id for m, _ in memories])
        return PrivacyExport(selector, utcnow(), memories, tuple(audit))

    def erase(
        self,
        *,
        user: str | None = None,
        project: str | None = None,
        tenant: str | None = None,
        progress: Progress | None = None,
        batch_size: int = BATCH,
    ) -> ErasureReceipt:
        """Erase for good a user's or a project's data in this handle's tenant, or (root
        handle only) a whole tenant: memories in any state with every version, vectors,
        search index entries, saved session contexts, cached copies, and the directory
        entries and keys of the user, the project or the tenant.

        Runs in batches of ``batch_size`` memories a transaction; run it again after an
        interruption to finish. Memories outside the selection that an erased memory
        superseded get their validity back, as ``purge`` gives it.
        """
        self._check_writable()
        validate_count(batch_size, "batch_size", 1, 10_000)
        selector = self._selector(user=user, project=project, tenant=tenant)
        self._found(selector)
        engine = self._engine
        store = engine.store.privacy()
        started = utcnow()
        tally = Tally(progress, "erasing memories", store.count(selector))
        erased: builtins.list[str] = []
        counts: dict[str, int] = {}
        listing = Filters(scope=selector.scope, include_deleted=True, include_superseded=True)
        while True:
            page, _ = engine.store.list(listing, "asc", batch_size, None)
            if not page:
                break
            if selector.kind != "tenant":
                self._restore_outside(selector, page)
            done = store.erase_batch(selector, [m.id for m in page])
            erased.extend(done.ids)
            counts = added(counts, done.counts)
            tally.advance(len(done.ids))
        counts = added(counts, store.erase_rest(selector).counts)
        if selector.kind == "tenant":  # its memories first: deleting a sealed row needs the key
            counts["data_keys"] = destroy_tenant_key(engine, selector.tenant)
        notes = store.scrub()
        self._forget_cached(selector, set(erased))
        receipt = ErasureReceipt(selector, started, utcnow(), counts, ids_digest(erased), notes)
        self._record(selector, "privacy.erase", f"ids_sha256={receipt.ids_sha256}", counts)
        return receipt

    def _restore_outside(self, selector: Selector, page: builtins.list[Memory]) -> None:
        """Give back their validity to memories outside the selection that memories of
        ``page`` superseded (before those go)."""
        now = utcnow()
        inside = dict(selector.scope.items())
        updates = []
        store = self._engine.store.privacy()
        superseding = store.superseding(selector.tenant, [m.id for m in page])
        for memory in (m for m in page if m.id in superseding):
            for update in self._restored(memory, now):
                fields = dict(update[0].scope.items())
                if any(fields.get(k) != v for k, v in inside.items()):
                    updates.append(update)
        self._write(updates, self._audit("memory.restore", count=len(updates)))

    def _forget_cached(self, selector: Selector, ids: set[str]) -> None:
        """Drop what this process keeps of the erased data: query vectors, context
        sections, session snapshots waiting to be written."""
        engine = self._engine
        name, value = ("user", selector.user) if selector.user else ("project", selector.project)

        def shows(session: str, shown: tuple[str, ...]) -> bool:
            if selector.kind == "tenant" or not ids.isdisjoint(shown):
                return True
            return value is not None and session_names(session, name, value)

        engine.access.drop_sessions(selector.tenant, shows)
        engine.drop_caches()

    def anonymise(self, user: str) -> Anonymisation:
        """Replace a user of this handle's tenant by a new pseudonym (``anon-`` and 16
        random hex digits) wherever the store keeps its name: its memories' scope (every
        version), saved session keys, its keys and directory entry. Counts by kind and
        memory stay as they were; text inside memories is not rewritten."""
        self._check_writable()
        selector = self._selector(user=user)
        self._found(selector)
        engine = self._engine
        store = engine.store.privacy()
        pseudonym = f"anon-{secrets.token_hex(8)}"
        counts = store.anonymise(selector, pseudonym)
        store.scrub()
        self._forget_cached(selector, set())
        self._record(selector, "privacy.anonymise", "", counts)
        return Anonymisation(selector, pseudonym, utcnow(), counts)

    def _record(self, selector: Selector, action: str, detail: str, counts: dict[str, int]) -> None:
        """Enter the operation in the audit trail of the tenant (the store-wide chain for a
        tenant erased, whose own chain is its history): which kind of thing, never the
        name erased or replaced, and how many memories."""
        chain = STORE_CHAIN if selector.kind == "tenant" else selector.tenant
        event = AuditEvent(
            chain,
            action,
            selector.kind,
            current_actor(),
            count=counts.get("memories", 0),
            detail=detail,
        )
        self._engine.store.audit().append(event)

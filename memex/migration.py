"""Copying a whole store into another, of either backend (``Memex.migrate``).

Every tenant's memories are read from one snapshot each, with their past versions, and
written into the target as they are (ids, versions, every time, access statistics,
supersede links), in batches of one transaction each, with the vectors the source
stored (never embedded again: the target records the source's vector model). The
directory goes first: tenants, users, projects and API keys with their hashes and
times, so keys issued on the source work on the target; then the audit chains, entry
for entry (a target whose chain of a tenant is not a beginning of the source's is
refused before anything is written, unless ``force``: then it is kept, and notes the
source chain it did not copy). Saved session contexts and
change counters are bookkeeping a store starts without; they are not copied, as a
backup does not copy them.

A run that stops part-way leaves whole batches behind; running it again skips each
memory the target holds identically (same digest: ``core.migration``) and copies the
rest. A target holding anything else is refused before anything is written, unless
``force``: then what differs is purged first and the target ends as a copy of the
source. The directory likewise: entries the target holds otherwise, or that only it
holds, are refused unless ``force``, which replaces the tenants' allowlists and the keys
the source holds otherwise, and keeps the target's own entries (no directory call
removes one); an entry no call can change (a user, a tenant's creation time) is refused
even then. Last, both stores are read again and compared tenant by tenant: counts, one
hash over every memory with its history and one over the stored vectors; and every
entry of the source's directory must be in the target's as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from memex.actor import current_actor
from memex.core.audit import AuditEvent, AuditHead, AuditTrail
from memex.core.locations import is_database_url
from memex.core.migration import (
    EMPTY,
    DirectoryContent,
    DirectoryPlan,
    MigrationReport,
    Side,
    TenantCheck,
    combined,
    directory_check,
    directory_plan,
    memory_digest,
    plan,
    vectors_digest,
)
from memex.core.models import Memory, Scope, utcnow
from memex.core.progress import Progress, Tally
from memex.core.validate import validate_count
from memex.errors import ConfigError, ConflictError, MemexError, StoreError, StoreReadOnlyError
from memex.settings import Settings, located
from memex.storage.base import Store, StoredVectors, WriteBatch
from memex.storage.open import open_store, resolve_path

Held = dict[str, tuple[str, int]]
"""A tenant's memories in a store: id -> (digest, current version)."""
_PURGES = 500  # memories purged per transaction (with force)
_VECTORS = 500  # content hashes per read of stored vectors


class MigrationMixin:
    """``Memex.migrate``: a whole store copied into another."""

    @classmethod
    def migrate(
        cls,
        source: str | Path,
        target: str | Path,
        settings: Settings | None = None,
        *,
        force: bool = False,
        batch_size: int = 500,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> MigrationReport:
        """Copy every tenant of the store at ``source`` into the store at ``target`` (a
        path, ``sqlite:///`` or ``postgresql://`` URL; created if new), then verify it.

        The source is opened read-only and never written. Memories the target already
        holds identically are skipped, so a run that stopped part-way can simply be run
        again. A target that holds other memories, or other versions of these, is
        refused (ConflictError) unless ``force``, which replaces them: the target ends
        as a copy of the source. The report says, per tenant, whether the two match;
        check ``report.ok``.
        """
        validate_count(batch_size, "batch_size", 1, 10_000)
        source_at, source_settings = located(source, settings, {**overrides, "read_only": True})
        target_at, target_settings = located(target, settings, overrides)
        if not is_database_url(source_at) and not resolve_path(source_at).is_file():
            raise StoreError(f"no store at {resolve_path(source_at)} to migrate from")
        with _opened(source_at, source_settings) as src, _opened(target_at, target_settings) as dst:
            return copy_store(src, dst, force=force, batch_size=batch_size, progress=progress)


@contextlib.contextmanager
def _opened(location: str | Path, settings: Settings) -> Iterator[Store]:
    store = open_store(location, settings)
    try:
        yield store
    finally:
        store.close()


def copy_store(
    source: Store,
    target: Store,
    *,
    force: bool = False,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every tenant of ``source`` into ``target`` and verify it (see the module)."""
    src, dst = source.info(), target.info()
    if _same(src.location, dst.location):
        raise ConfigError(f"the source and the target are the same store ({src.location})")
    if dst.read_only is not None:
        raise StoreReadOnlyError.refused(dst.location, dst.read_only)
    model = src.vectors
    if model is not None and dst.vectors is not None and dst.vectors != model:
        raise ConfigError(
            f"the target's vectors come from {dst.vectors.model} ({dst.vectors.dimensions} "
            f"dimensions), the source's from {model.model} ({model.dimensions}); a migration "
            "copies vectors as they are: reindex one store to the other's model first"
        )
    directory = _check_directory(source, target, force)
    tenants = source.tenants()
    have, replaced = _check_target(source, target, tenants, force, progress)
    chains, forked = _check_audit(source, target, force)
    _copy_directory(target, directory)
    _copy_quotas(source, target)
    for chain in chains:
        target.audit().copy(chain)
    for chain in forked:  # forced: the target's own chain stays, and says so
        head = chain.head or AuditHead(chain.tenant)
        detail = f"source chain not copied, head {head.seq} {head.hash}"
        event = AuditEvent(chain.tenant, "audit.migrate", "store", current_actor(), detail=detail)
        target.audit().append(event)
    copied = skipped = 0
    if model is not None:
        total = sum(_count(source, t) for t in tenants)
        tally = Tally(progress, "copying", total)
        for tenant in tenants:
            done = _copy_tenant(source, target, tenant, model, have.get(tenant, {}), batch_size)
            for copied_now, skipped_now in done:
                copied += copied_now
                skipped += skipped_now
                tally.advance(copied_now + skipped_now)
    with contextlib.suppress(MemexError):  # derived indexes: a first search builds them too
        target.build_indexes(None, progress)
    checks = _verify(source, target, model, progress)
    copied_directory = directory_check(_directory(source), _directory(target))
    return MigrationReport(
        src.location, dst.location, copied, skipped, replaced, checks, copied_directory
    )


def _same(a: str, b: str) -> bool:
    """Whether two store locations name one store (files by path, servers by URL)."""
    if is_database_url(a) or is_database_url(b):
        return a == b
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _count(store: Store, tenant: str) -> int:
    """How many memories (forgotten ones too) the tenant holds."""
    stats = store.stats(Scope(tenant=tenant), utcnow())
    return stats.memories + stats.deleted + stats.superseded + stats.expired


def _check_target(
    source: Store, target: Store, tenants: Sequence[str], force: bool, progress: Progress | None
) -> tuple[dict[str, Held], int]:
    """What the target holds that the source holds too, per tenant, and how many other
    memories it held: refused, or with ``force`` purged first."""
    held_tenants = target.tenants()
    if not held_tenants:
        return {}, 0
    tally = Tally(progress, "checking the target", sum(_count(target, t) for t in held_tenants))
    held = {t: _digests(target, t, None, tally) for t in held_tenants}
    stale: dict[str, list[tuple[str, int]]] = {}
    for tenant, memories in held.items():
        wanted = _digests(source, tenant, set(memories), None) if tenant in tenants else {}
        for memory_id, (digest, version) in memories.items():
            found = wanted.get(memory_id)
            if found is None or plan(found[0], digest) != "skip":
                stale.setdefault(tenant, []).append((memory_id, version))
    count = sum(len(ids) for ids in stale.values())
    if stale and not force:
        tenant, ids = next(iter(stale.items()))
        raise ConflictError(
            f"the target holds {count} memories that the source does not hold as they are "
            f"(first: {ids[0][0]} of tenant {tenant}); pass --force (force=True) to replace "
            "them, so that the target becomes a copy of the source"
        )
    model = target.info().vectors
    for tenant, ids in stale.items():
        assert model is not None  # a store holding memories has their model
        for start in range(0, len(ids), _PURGES):
            chunk = ids[start : start + _PURGES]
            target.write(Scope(tenant=tenant), WriteBatch(purges=chunk), model)
        for memory_id, _ in ids:
            del held[tenant][memory_id]
    return held, count


def _directory(store: Store) -> DirectoryContent:
    """The store's whole directory."""
    found = store.directory()
    tenants = found.tenants()
    return DirectoryContent(
        tuple(tenants),
        tuple(u for t in tenants for u in found.users(t.name)),
        tuple(p for t in tenants for p in found.projects(t.name)),
        tuple(found.keys(None)),
    )


def _check_directory(source: Store, target: Store, force: bool) -> DirectoryPlan:
    """What to add to and replace in the target's directory; refused (before anything
    is written) when the target holds entries otherwise or of its own, unless ``force``,
    and always when an entry differs in a way no directory call can change."""
    found = directory_plan(_directory(source), _directory(target))
    if found.fixed:
        raise ConflictError(
            f"the target's directory holds {found.fixed[0]} otherwise than the source, and a "
            "migration cannot change that; migrate into a store whose directory holds "
            "nothing of the source's"
        )
    other = found.differing + found.extra
    if other and not force:
        raise ConflictError(
            f"the target's directory holds {len(other)} entries that the source does not hold "
            f"as they are (first: {other[0]}); pass --force (force=True) to replace them "
            "(entries only the target holds are kept)"
        )
    return found


def _check_audit(
    source: Store, target: Store, force: bool
) -> tuple[list[AuditTrail], list[AuditTrail]]:
    """The source's audit chains the target's begin (to copy), and those the target's
    went otherwise from: refused unless ``force``, which keeps the target's chain (an
    entry is never removed) and notes in it the source chain it did not copy."""
    chains = [source.audit().trail(head.tenant) for head in source.audit().heads()]
    copied: list[AuditTrail] = []
    forked: list[AuditTrail] = []
    for chain in chains:
        there = target.audit().trail(chain.tenant).head or AuditHead(chain.tenant)
        ok = there.seq == 0 or any(
            (e.seq, e.hash) == (there.seq, there.hash) for e in chain.entries
        )
        (copied if ok else forked).append(chain)
    if forked and not force:
        raise ConfigError(
            f"the target's audit chain of {forked[0].tenant!r} is not a part of the "
            "source's; force it to keep the target's chain as it is (memex migrate --force)"
        )
    return copied, forked


def _copy_directory(target: Store, found: DirectoryPlan) -> None:
    """Add and replace what ``found`` says: tenants first, then what belongs to them."""
    directory = target.directory()
    add = found.add
    for tenant in add.tenants:
        directory.add_tenant(tenant)
    for user in add.users:
        directory.add_user(user)
    for project in add.projects:
        directory.add_project(project)
    for tenant in found.replace.tenants:
        directory.set_tenant(tenant)
    for key in add.keys:
        directory.add_key(key)
    for key in found.replace.keys:  # after the users and projects it may name
        directory.set_key(key)


def _copy_quotas(source: Store, target: Store) -> None:
    """Set in the target the quotas set for the source's tenants."""
    given, taken = source.directory(), target.directory()
    for tenant in given.tenants():
        quotas = given.quotas(tenant.name)
        if quotas is not None and taken.quotas(tenant.name) != quotas:
            taken.set_quotas(tenant.name, quotas)


def _digests(store: Store, tenant: str, only: set[str] | None, tally: Tally | None) -> Held:
    """The digest and version of each of the tenant's memories (of those in ``only``)."""
    snapshot = store.snapshot(Scope(tenant=tenant), include_deleted=True, history=True)
    found: Held = {}
    try:
        for memory, past in snapshot:
            if only is None or memory.id in only:
                found[memory.id] = (memory_digest(memory, past), memory.version)
            if tally is not None:
                tally.advance(1)
    finally:
        snapshot.close()
    return found


def _copy_tenant(
    source: Store, target: Store, tenant: str, model: StoredVectors, have: Held, size: int
) -> Iterator[tuple[int, int]]:
    """Copy one tenant in batches; yield (copied, skipped) after each batch."""
    scope = Scope(tenant=tenant)
    snapshot = source.snapshot(scope, include_deleted=True, history=True)
    try:
        batch: list[tuple[Memory, list[Memory]]] = []
        skipped = 0
        for memory, past in snapshot:
            there = have.get(memory.id)
            action = plan(memory_digest(memory, past), there[0]) if there else "copy"
            if action == "differs":  # the source changed since the target was checked
                raise ConflictError(
                    f"memory {memory.id} of tenant {tenant} changed in the source during the "
                    "migration; run it again with --force (force=True)"
                )
            if action == "skip":
                skipped += 1
            else:
                batch.append((memory, past))
            if len(batch) + skipped >= size:
                _write(source, target, scope, model, batch)
                yield len(batch), skipped
                batch, skipped = [], 0
        _write(source, target, scope, model, batch)
        yield len(batch), skipped
    finally:
        snapshot.close()


def _write(
    source: Store,
    target: Store,
    scope: Scope,
    model: StoredVectors,
    batch: Sequence[tuple[Memory, list[Memory]]],
) -> None:
    """Write memories with their past versions and their stored vectors, in one transaction."""
    if not batch:
        return
    vectors = source.cached_vectors(scope, model.model, [m.content_hash for m, _ in batch])
    missing = [m.id for m, _ in batch if m.content_hash not in vectors]
    if missing:
        raise StoreError(
            f"memory {missing[0]} of tenant {scope.tenant} has no stored vector in the source; "
            "run memex reindex on it first"
        )
    inserts = [(m, vectors[m.content_hash]) for m, _ in batch]
    history = [p for _, past in batch for p in past]
    target.write(scope, WriteBatch(inserts=inserts, history=history), model)


def _verify(
    source: Store, target: Store, model: StoredVectors | None, progress: Progress | None
) -> tuple[TenantCheck, ...]:
    """Both stores' content, tenant by tenant (every tenant either holds)."""
    tenants = sorted({*source.tenants(), *target.tenants()})
    total = sum(_count(s, t) for t in tenants for s in (source, target))
    tally = Tally(progress, "verifying", total)
    return tuple(
        TenantCheck(t, _side(source, t, model, tally), _side(target, t, model, tally))
        for t in tenants
    )


def _side(store: Store, tenant: str, model: StoredVectors | None, tally: Tally) -> Side:
    """What ``store`` holds of ``tenant``: counts and hashes (vectors of ``model``)."""
    scope = Scope(tenant=tenant)
    snapshot = store.snapshot(scope, include_deleted=True, history=True)
    digests: dict[str, str] = {}
    hashes: set[str] = set()
    versions = 0
    try:
        for memory, past in snapshot:
            digests[memory.id] = memory_digest(memory, past)
            hashes.add(memory.content_hash)
            versions += 1 + len(past)
            tally.advance(1)
    finally:
        snapshot.close()
    if not digests:
        return EMPTY
    ordered = sorted(hashes)
    vectors: list[tuple[str, bytes]] = []
    for start in range(0, len(ordered), _VECTORS):
        chunk = ordered[start : start + _VECTORS]
        found = store.cached_vectors(scope, model.model, chunk) if model else {}
        vectors.extend((h, v.astype("<f4").tobytes()) for h, v in found.items())
    return Side(len(digests), versions, combined(digests), vectors_digest(vectors))

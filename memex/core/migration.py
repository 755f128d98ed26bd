"""A migration's decisions and its report: pure functions and values, no I/O.

A migration copies every tenant of one store into another. Each memory is compared by
its digest: the SHA-256 of its export record with every past version (``to_line``),
which holds every field and every time. What the target already holds decides what is
done with each memory (``plan``); the verification compares, per tenant, the counts and
one hash over every memory's digest and one over the stored vectors (``TenantCheck``).

The directory (tenants, users, projects, API keys with their hashes) is copied too, so
keys keep working after a move. Its entries are compared whole, by identity (a tenant's
name, a user's or project's tenant and name, a key's id): what the target lacks is
added, what it holds identically is skipped, what it holds otherwise is a conflict
(``directory_plan``); the verification asks that every entry of the source be in the
target as it is (``DirectoryCheck``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from memex.core.identity import ApiKey, Project, Tenant, User
from memex.core.models import Memory
from memex.core.records import to_line

Action = Literal["copy", "skip", "differs"]


def memory_digest(memory: Memory, past: Sequence[Memory]) -> str:
    """The digest of a memory with its past versions: equal for equal exports."""
    return hashlib.sha256(to_line(memory, past).encode()).hexdigest()


def plan(source: str, target: str | None) -> Action:
    """What to do with a memory whose digest is ``source`` when the target holds one of
    the same id with digest ``target`` (None: none): copy it, skip it (already copied
    identically), or stop (the target holds something else under its id)."""
    if target is None:
        return "copy"
    return "skip" if target == source else "differs"


def combined(digests: Mapping[str, str]) -> str:
    """One hash over every memory's digest (id -> digest), whatever their order."""
    total = hashlib.sha256()
    for memory_id in sorted(digests):
        total.update(f"{memory_id}\0{digests[memory_id]}\n".encode())
    return total.hexdigest()


def vectors_digest(vectors: Iterable[tuple[str, bytes]]) -> str:
    """One hash over stored vectors (content hash -> float32 bytes), whatever their order."""
    total = hashlib.sha256()
    for content, data in sorted(vectors):
        total.update(content.encode() + b"\0" + hashlib.sha256(data).digest())
    return total.hexdigest()


@dataclass(frozen=True, slots=True)
class Side:
    """One store's content of one tenant: counts, and hashes over memories and vectors."""

    memories: int = 0
    versions: int = 0
    content_hash: str = ""
    vectors_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "memories": self.memories,
            "versions": self.versions,
            "content_hash": self.content_hash,
            "vectors_hash": self.vectors_hash,
        }


EMPTY = Side(content_hash=combined({}), vectors_hash=vectors_digest([]))
"""What a store holds of a tenant it has no memory of."""


@dataclass(frozen=True, slots=True)
class TenantCheck:
    """One tenant as the source and the target hold it after a migration."""

    tenant: str
    source: Side
    target: Side

    @property
    def ok(self) -> bool:
        """Whether the target holds exactly what the source does."""
        return self.source == self.target

    def problem(self) -> str | None:
        """What differs, in a few words (None when nothing does)."""
        s, t = self.source, self.target
        if s.memories != t.memories:
            return f"{s.memories} memories in the source, {t.memories} in the target"
        if s.versions != t.versions:
            return f"{s.versions} versions in the source, {t.versions} in the target"
        if s.content_hash != t.content_hash:
            return "the memories' contents differ"
        if s.vectors_hash != t.vectors_hash:
            return "the stored vectors differ"
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "tenant": self.tenant,
            "ok": self.ok,
            "problem": self.problem(),
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
        }


# -- the directory ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryContent:
    """A store's whole directory, as the Directory protocol lists it."""

    tenants: tuple[Tenant, ...] = ()
    users: tuple[User, ...] = ()
    projects: tuple[Project, ...] = ()
    keys: tuple[ApiKey, ...] = ()

    def entries(self) -> dict[tuple[str, ...], Tenant | User | Project | ApiKey]:
        """Every entry by its identity (what names it within the store)."""
        out: dict[tuple[str, ...], Tenant | User | Project | ApiKey] = {}
        out.update((("tenant", t.name), t) for t in self.tenants)
        out.update((("user", u.tenant, u.name), u) for u in self.users)
        out.update((("project", p.tenant, p.name), p) for p in self.projects)
        out.update((("key", k.id), k) for k in self.keys)
        return out


def describe(identity: tuple[str, ...]) -> str:
    """An entry's identity in words (never anything secret: a key by its id)."""
    kind, *names = identity
    if kind in ("user", "project"):
        return f"{kind} {names[1]!r} of tenant {names[0]!r}"
    return f"{kind} {names[0]!r}"


@dataclass(frozen=True, slots=True)
class DirectoryPlan:
    """What to do to make a target's directory hold a source's."""

    add: DirectoryContent
    """Entries the target lacks, in the order they can be added (tenants first)."""
    replace: DirectoryContent
    """Tenants and keys the target holds otherwise, which ``set_tenant``/``set_key`` replace."""
    skipped: int
    """Entries the target holds as they are."""
    differing: tuple[str, ...]
    """Entries the target holds otherwise (the replaceable ones and the rest)."""
    fixed: tuple[str, ...]
    """Entries the target holds otherwise that no directory call can change: a tenant's
    creation time, a user or project, a key's tenant."""
    extra: tuple[str, ...]
    """Entries only the target holds (a directory keeps what it was given)."""

    @property
    def missing(self) -> int:
        """How many entries of the source the target does not hold as they are."""
        content = self.add
        added = len(content.tenants) + len(content.users) + len(content.projects)
        return added + len(content.keys) + len(self.differing)


def directory_plan(source: DirectoryContent, target: DirectoryContent) -> DirectoryPlan:
    """What a migration does with the directory (see the module)."""
    held = target.entries()
    wanted = source.entries()
    adds: dict[str, list[Any]] = {"tenant": [], "user": [], "project": [], "key": []}
    replace: dict[str, list[Any]] = {"tenant": [], "key": []}
    differing: list[str] = []
    fixed: list[str] = []
    skipped = 0
    for identity, entry in wanted.items():
        there = held.get(identity)
        if there is None:
            adds[identity[0]].append(entry)
        elif there == entry:
            skipped += 1
        else:
            differing.append(describe(identity))
            if _replaceable(entry, there):
                replace[identity[0]].append(entry)
            else:
                fixed.append(describe(identity))
    extra = [describe(identity) for identity in held if identity not in wanted]
    add = DirectoryContent(
        tuple(adds["tenant"]), tuple(adds["user"]), tuple(adds["project"]), tuple(adds["key"])
    )
    replacing = DirectoryContent(tenants=tuple(replace["tenant"]), keys=tuple(replace["key"]))
    return DirectoryPlan(add, replacing, skipped, tuple(differing), tuple(fixed), tuple(extra))


def _replaceable(entry: object, there: object) -> bool:
    """Whether the directory's ``set_*`` can turn ``there`` into ``entry``."""
    if isinstance(entry, Tenant) and isinstance(there, Tenant):
        return entry.created_at == there.created_at  # set_tenant changes the allowlist only
    if isinstance(entry, ApiKey) and isinstance(there, ApiKey):
        return entry.tenant == there.tenant  # a key never moves to another tenant
    return False


@dataclass(frozen=True, slots=True)
class DirectoryCheck:
    """The directory of the source and of the target after a migration."""

    source: int = 0
    """Entries (tenants, users, projects, keys) of the source."""
    target: int = 0
    """Entries of the target."""
    missing: int = 0
    """Entries of the source that the target does not hold as they are."""
    extra: int = 0
    """Entries only the target holds (kept: a migration adds and replaces, never removes)."""

    @property
    def ok(self) -> bool:
        """Whether the target holds every entry of the source as it is."""
        return self.missing == 0

    def problem(self) -> str | None:
        """What differs, in a few words (None when nothing does)."""
        if self.ok:
            return None
        return f"{self.missing} of the source's {self.source} entries are not in the target"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "ok": self.ok,
            "problem": self.problem(),
            "source": self.source,
            "target": self.target,
            "missing": self.missing,
            "extra": self.extra,
        }


def directory_check(source: DirectoryContent, target: DirectoryContent) -> DirectoryCheck:
    """Compare two directories after a migration."""
    found = directory_plan(source, target)
    return DirectoryCheck(
        len(source.entries()), len(target.entries()), found.missing, len(found.extra)
    )


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a migration did and what its verification found, tenant by tenant."""

    source: str
    target: str
    copied: int
    """Memories written into the target (each with its past versions and vector)."""
    skipped: int
    """Memories the target held already, identical (an earlier, interrupted run's)."""
    replaced: int
    """Memories of the target that differed from the source and were purged (``force``)."""
    tenants: tuple[TenantCheck, ...]
    directory: DirectoryCheck = field(default_factory=DirectoryCheck)

    @property
    def ok(self) -> bool:
        """Whether every tenant of both stores matches, and the target holds the source's
        directory."""
        return all(t.ok for t in self.tenants) and self.directory.ok

    def mismatches(self) -> list[str]:
        """One line per tenant that does not match (and one for the directory)."""
        lines = [f"tenant {t.tenant}: {t.problem()}" for t in self.tenants if not t.ok]
        if not self.directory.ok:
            lines.append(f"directory: {self.directory.problem()}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "copied": self.copied,
            "skipped": self.skipped,
            "replaced": self.replaced,
            "tenants": [t.to_dict() for t in self.tenants],
            "directory": self.directory.to_dict(),
        }

"""A migration's decisions and its report: pure functions and values, no I/O.

A migration copies every tenant of one store into another. Each memory is compared by
its digest: the SHA-256 of its export record with every past version (``to_line``),
which holds every field and every time. What the target already holds decides what is
done with each memory (``plan``); the verification compares, per tenant, the counts and
one hash over every memory's digest and one over the stored vectors (``TenantCheck``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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

    @property
    def ok(self) -> bool:
        """Whether every tenant of both stores matches."""
        return all(t.ok for t in self.tenants)

    def mismatches(self) -> list[str]:
        """One line per tenant that does not match."""
        return [f"tenant {t.tenant}: {t.problem()}" for t in self.tenants if not t.ok]

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
        }

"""What a key of a shared store may see and do, written out independently of memex:
the model the isolation property test checks every answer of the HTTP API against.

The truth of the store is read through the server's root handle (never through HTTP);
the model adds what the store cannot say: who each piece of content was written for,
which secrets were issued, and what each role may do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from memex import Memex
from memex.core.models import Memory

ROLES = ("read_only", "read_write", "admin", "owner")
RANK = {role: rank for rank, role in enumerate(ROLES)}

# What each role may do within its tenant, as docs/http.md and the role matrix say:
# written here again so that a change to memex's own table shows up as a failure.
MAY = {
    "read": {"read_only", "read_write", "admin", "owner"},
    "write": {"read_write", "admin", "owner"},
    "purge": {"admin", "owner"},
    "manage": {"admin", "owner"},  # users, projects and keys; never with a project
    "tenant": {"owner"},  # the tenant's own settings; never with a project
}
PROJECT_BOUND = {"read", "write", "purge"}

Owner = tuple[str, str | None, str | None]
"""Whom a memory belongs to: (tenant, user, project)."""


@dataclass
class Key:
    """An issued key as the model knows it."""

    id: str
    secret: str
    tenant: str
    role: str
    user: str | None
    project: str | None
    home: bool
    dead: bool = False
    rotated: bool = False

    def sees(self, owner: Owner) -> bool:
        """Whether a memory of ``owner`` lies within this key's grants."""
        tenant, user, project = owner
        return (
            tenant == self.tenant and self.user in (None, user) and self.project in (None, project)
        )

    def sees_key(self, other: Key) -> bool:
        """Whether this key may find ``other`` through the key routes."""
        return other.tenant == self.tenant and self.user in (None, other.user)

    def may(self, action: str) -> bool:
        """Whether this key's role allows ``action`` (see MAY)."""
        if action == "tenants":
            return self.home and self.role == "owner" and self.project is None
        if self.project is not None and action not in PROJECT_BOUND:
            return False
        return self.role in MAY[action]

    def narrows(self, scope: dict[str, str] | None) -> bool:
        """Whether a request's ``scope`` stays within this key's user and project."""
        scope = scope or {}
        return all(
            mine is None or scope.get(name) in (None, mine)
            for name, mine in (("user", self.user), ("project", self.project))
        )


def owner_of(tenant: str, memory: Memory) -> Owner:
    """Whom ``memory`` (of ``tenant``) belongs to."""
    return (tenant, memory.scope.user, memory.scope.project)


def state_of(memory: Memory) -> str:
    """``forgotten``, ``superseded`` or ``live``: the bucket stats counts it in."""
    if memory.deleted_at is not None:
        return "forgotten"
    if memory.superseded_by is not None:
        return "superseded"
    return "live"


def fingerprint(memory: Memory) -> tuple[Any, ...]:
    """What a write changes of a memory (not its access statistics, which reads change)."""
    return (
        memory.version,
        memory.content,
        memory.kind,
        memory.scope,
        memory.tags,
        memory.deleted_at,
        memory.superseded_by,
        memory.valid_until,
    )


Truth = dict[tuple[str, str], Memory]
"""Every memory of the store that is not purged, by (tenant, id)."""


@dataclass
class World:
    """Tenants, their users and projects, keys, and whom each content was written for."""

    root: Memex
    home: str
    tenants: list[str] = field(default_factory=list)
    users: dict[str, set[str]] = field(default_factory=dict)
    projects: dict[str, set[str]] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list)
    owners: dict[str, Owner] = field(default_factory=dict)
    """Marker word in a content → whom it was written for."""
    made: dict[str, None] = field(default_factory=dict)
    """Every memory id made, in the order made: what tests draw ids from, so that a
    replayed run draws the same memories (ids themselves differ from run to run)."""
    purged: set[str] = field(default_factory=set)
    """Ids purged (in whichever tenant), which no answer may name again."""
    counter: int = 0

    def marker(self) -> str:
        """A word no other content holds, so that any answer holding it can be traced."""
        self.counter += 1
        return f"zqmark{self.counter}z"

    def truth(self) -> Truth:
        """Every memory that is not purged, read through the root handle."""
        out: Truth = {}
        for tenant in self.tenants:
            page = self.root.scoped(tenant=tenant).list(
                include_deleted=True, include_superseded=True, limit=10_000
            )
            for memory in page.items:
                out[(tenant, memory.id)] = memory
        return out

    def visible(self, key: Key, truth: Truth) -> dict[str, Memory]:
        """The memories ``key`` may reach, by id."""
        return {
            memory_id: memory
            for (tenant, memory_id), memory in truth.items()
            if key.sees(owner_of(tenant, memory))
        }

    def directory(self) -> dict[str, tuple[Any, ...]]:
        """Each tenant's part of the directory, as writes change it (not last uses)."""
        admin = self.root.admin
        out: dict[str, tuple[Any, ...]] = {}
        for tenant in admin.tenants():
            keys = tuple(
                (
                    k.id,
                    k.role,
                    k.user,
                    k.project,
                    k.revoked_at,
                    k.expires_at,
                    k.replaced_by,
                    k.allow,
                )
                for k in admin.keys(tenant.name)
            )
            users = tuple(u.name for u in admin.users(tenant.name))
            projects = tuple(p.name for p in admin.projects(tenant.name))
            out[tenant.name] = (tenant.allow, users, projects, keys)
        return out

    def forbidden(
        self, key: Key, truth: Truth, *, issued: Collection[str] = (), history: bool = False
    ) -> set[str]:
        """Every word no answer to ``key`` may hold: other tenants' names, content, memory
        ids and key ids out of its grants, purged ids, every key's hash, and every secret
        but those the answer itself issues.

        A memory's ``history`` keeps the ids of what superseded it, purged or not: a
        purge erases the memory, not the record that something once replaced another."""
        visible = self.visible(key, truth)
        words = {name for name in self.tenants if name != key.tenant}
        words |= {word for word, owner in self.owners.items() if not key.sees(owner)}
        words |= {memory_id for (_, memory_id) in truth if memory_id not in visible}
        if not history:
            words |= self.purged - set(visible)
        for other in self.keys:
            words.add(hashlib.sha256(other.secret.encode()).hexdigest())
            if other.secret not in issued:
                words.add(other.secret)
            if not key.sees_key(other):
                words.add(other.id)
        return words

    def key_by_id(self, key_id: str) -> Key | None:
        """The model's key with this id."""
        return next((k for k in self.keys if k.id == key_id), None)

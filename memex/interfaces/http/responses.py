"""The answers of the HTTP API, as the OpenAPI document describes them.

Routes send the JSON of memex's own values (``Memory.to_dict()`` and the like) without
passing them through these models: they are the schema, not a second serialisation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a one-line message."""

    code: str = Field(description="stable: see the table in docs/http.md")
    message: str
    quota: str | None = Field(
        default=None, description="quota_exceeded only: the quota the tenant is at"
    )


class ErrorOut(BaseModel):
    """Every error's body."""

    error: ErrorDetail


class ScopeOut(BaseModel):
    """Where a memory belongs."""

    tenant: str | None = None
    project: str | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None


class MemoryOut(BaseModel):
    """A memory, at one version (``Memory.to_dict()``)."""

    id: str
    content: str
    kind: str
    scope: ScopeOut
    tags: list[str]
    metadata: dict[str, Any]
    importance: float
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_accessed_at: datetime | None
    access_count: int
    source: str | None
    content_hash: str
    version: int
    valid_from: datetime
    valid_until: datetime | None
    superseded_by: str | None
    deleted_at: datetime | None


class MemoriesOut(BaseModel):
    """The memories a batch stored, in its order."""

    memories: list[MemoryOut]


class PageOut(BaseModel):
    """A page of a listing; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[MemoryOut]
    next_cursor: str | None


class ItemsOut(BaseModel):
    """Memories, oldest first."""

    items: list[MemoryOut]


class VersionsOut(BaseModel):
    """Every version of a memory, oldest first."""

    versions: list[MemoryOut]


class PurgedOut(BaseModel):
    """The id of the memory erased, with its history."""

    purged: str


class HitOut(BaseModel):
    """A recalled memory, its fused score (higher is better) and how it was reached."""

    memory: MemoryOut
    score: float
    lexical_rank: int | None
    vector_rank: int | None
    explain: dict[str, float]


class HitsOut(BaseModel):
    """A recall's memories, best first."""

    hits: list[HitOut]


class SectionOut(BaseModel):
    """One section of a context."""

    name: str
    title: str
    stable: bool
    tokens: int
    allowance: int
    cached: bool
    skipped: str | None
    text: str
    memories: list[MemoryOut]


class EntryOut(BaseModel):
    """Why a memory is in a context, or is not."""

    id: str
    section: str
    included: bool
    reason: str
    tokens: int
    cut: bool
    content_chars: int
    shown_chars: int | None
    score: float
    why: dict[str, float]


class ContextOut(BaseModel):
    """An assembled context (``Context.to_dict()``)."""

    text: str
    tokens: int
    budget_tokens: int
    format: str
    breakpoints: list[int]
    prefix_hash: str
    prefix_tokens_reused: int | None
    sections: list[SectionOut]
    manifest: list[EntryOut]
    stats: dict[str, Any]


class StatsOut(BaseModel):
    """Counts and sizes within the key's scope (``Stats.to_dict()``; ``path`` is empty)."""

    memories: int
    deleted: int
    superseded: int
    expired: int
    versions: int
    by_kind: dict[str, int]
    embedder: str | None
    dimensions: int | None
    vectors: int
    schema_version: int
    size_bytes: int
    path: str
    read_only: str | None


class ImportedOut(BaseModel):
    """What an import stored, in the file's order."""

    imported: int
    ids: list[str]
    memories: list[MemoryOut]


# -- administration ----------------------------------------------------------------------


class KeyOut(BaseModel):
    """An API key: never its secret or its hash."""

    id: str
    prefix: str
    tenant: str
    user: str | None
    project: str | None
    role: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    replaced_by: str | None
    allow: list[str]


class IssuedKeyOut(KeyOut):
    """A new key, with its secret: shown this once."""

    key: str = Field(description="the secret: send it as `Authorization: Bearer <key>`")


class KeysOut(BaseModel):
    """The tenant's keys."""

    keys: list[KeyOut]


class MeOut(BaseModel):
    """The calling key (null when the server runs without authentication)."""

    key: KeyOut | None
    tenant: str
    role: str
    user: str | None
    project: str | None


class TenantOut(BaseModel):
    """A tenant."""

    name: str
    created_at: datetime
    allow: list[str]


class TenantsOut(BaseModel):
    """Every tenant of the store."""

    tenants: list[TenantOut]


class OwnerKeyOut(BaseModel):
    """A new tenant's owner key."""

    id: str
    key: str


class NewTenantOut(BaseModel):
    """A new tenant and its owner key, shown this once."""

    tenant: TenantOut
    owner_key: OwnerKeyOut


class UserOut(BaseModel):
    """A user of the tenant."""

    tenant: str
    name: str
    created_at: datetime


class UsersOut(BaseModel):
    """The tenant's users."""

    users: list[UserOut]


class ProjectOut(BaseModel):
    """A project of the tenant."""

    tenant: str
    name: str
    created_at: datetime


class ProjectsOut(BaseModel):
    """The tenant's projects."""

    projects: list[ProjectOut]


class HealthOut(BaseModel):
    """The process is alive."""

    status: str


class ReadyOut(BaseModel):
    """The store answers and its schema is current."""

    status: str
    schema_version: int


class QuotaOut(BaseModel):
    """One quota: its limits (null: none) and what the tenant uses of it (null: unknown)."""

    hard: int | None
    soft: int | None
    used: int | None


class QuotasOut(BaseModel):
    """A tenant's quotas, by name, and whether they are the defaults."""

    tenant: str
    defaults: bool
    quotas: dict[str, QuotaOut] = Field(
        description="memories, storage_mb, calls_per_hour, projects, users"
    )


class AuditHeadOut(BaseModel):
    """Where an audit chain ends: its last entry's number and hash."""

    tenant: str
    seq: int
    hash: str


class ProblemOut(BaseModel):
    """A tampered entry: its number, and what was done (edited, deleted, inserted,
    reordered, truncated, head)."""

    seq: int
    kind: str


class VerificationOut(BaseModel):
    """What verifying an audit chain found."""

    tenant: str
    ok: bool
    entries: int
    head: AuditHeadOut | None
    problems: list[ProblemOut]


class AuditEntryOut(BaseModel):
    """One audit entry: who did what to which resource, how it ended, and its links."""

    tenant: str
    seq: int
    at: datetime
    key_id: str
    user: str | None
    action: str
    resource_type: str
    resource_id: str
    outcome: str
    client: str | None
    user_agent: str | None
    count: int
    detail: str
    prev_hash: str
    hash: str


class AuditReportOut(BaseModel):
    """A compliance report: entries made in a window, a summary and the chain's head."""

    tenants: list[str]
    since: datetime | None
    until: datetime | None
    heads: list[AuditHeadOut]
    summary: dict[str, Any]
    entries: list[AuditEntryOut]

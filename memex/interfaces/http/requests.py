"""The bodies the HTTP API takes: pydantic models that refuse unknown fields.

The types are the JSON types memex expects, and no more: ranges, formats and limits
are checked by ``Memex`` itself, so a refused value reads the same over HTTP as in the
local API. Times are strings (ISO 8601) for the same reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

TIME = "ISO 8601; UTC unless it names an offset"


def _time(text: str) -> Any:
    return Field(None, description=f"{text} ({TIME})", json_schema_extra={"format": "date-time"})


def _choice(default: str, choices: tuple[str, ...], text: str) -> Any:
    return Field(default, description=text, json_schema_extra={"enum": list(choices)})


class Body(BaseModel):
    """A request body: JSON types only (no coercion from strings), no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def given(self) -> dict[str, Any]:
        """The fields the request set, as memex takes them (a scope as a plain dict)."""
        out = self.model_dump(exclude_unset=True)
        if isinstance(out.get("scope"), dict):
            out["scope"] = {k: v for k, v in out["scope"].items() if v is not None}
        return out


class ScopeIn(Body):
    """A scope within the key's tenant: it may only narrow what the key allows."""

    project: str | None = None
    user: str | None = None
    agent: str | None = None
    session: str | None = None


Tags = Annotated[list[str] | None, Field(None, description="labels to filter and group by")]
Metadata = Annotated[dict[str, Any] | None, Field(None, description="a JSON object")]


class MemoryFields(Body):
    """What ``remember`` and ``supersede`` share."""

    content: str = Field(description="the memory's text")
    tags: Tags = None
    metadata: Metadata = None
    scope: ScopeIn | None = None
    created_at: str | None = _time("when it happened (default: now)")
    expires_at: str | None = _time("when it stops being recalled")
    ttl: float | None = Field(None, description="expire after this many seconds")
    source: str | None = Field(None, description="where it came from")
    valid_from: str | None = _time("when it became true (default: created_at)")


class RememberIn(MemoryFields):
    """A new memory: the arguments of ``Memex.remember``."""

    kind: str = Field("note", description="fact, decision, preference, note, ... (note)")
    importance: float = Field(0.5, description="0 to 1 (0.5)")
    supersedes: str | None = Field(None, description="the id of a memory this one replaces")


class BatchIn(Body):
    """Many new memories, stored all or none."""

    items: list[RememberIn]


class SupersedeIn(MemoryFields):
    """What replaces a memory; kind, tags, metadata, scope and importance carry over
    unless given."""

    kind: str | None = Field(None, description="default: the old memory's")
    importance: float | None = Field(None, description="default: the old memory's")


class UpdateIn(Body):
    """Changes to a memory: absent fields are kept, ``expires_at`` or ``source`` null clears."""

    content: str | None = None
    kind: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    importance: float | None = None
    expires_at: str | None = _time("the new expiry; null clears it")
    source: str | None = Field(None, description="the new source; null clears it")


class WeightsIn(Body):
    """How recall mixes its two legs and the boosts (``FusionWeights``)."""

    vector_weight: float = 0.4
    importance_weight: float = 0.0
    recency_weight: float = 0.0
    recency_half_life_days: float = 30.0


class RecallIn(Body):
    """A recall: the arguments of ``Memex.recall``."""

    query: str
    k: int = Field(10, description="how many memories (1 to 1,000)")
    scope: ScopeIn | None = None
    kinds: list[str] | None = None
    tags: list[str] | None = None
    metadata: Metadata = None
    since: str | None = _time("created at or after")
    until: str | None = _time("created before")
    as_of: str | None = _time("what was valid then (default: now)")
    mode: str = _choice("hybrid", ("hybrid", "lexical", "vector"), "which legs to search")
    query_vector: list[float] | None = Field(None, description="search with this vector")
    weights: WeightsIn | None = None


class ContextIn(Body):
    """A context assembly: the arguments of ``Memex.context``."""

    query: str = ""
    budget_tokens: int = Field(4000, description="the token budget (1 to 1,000,000)")
    scope: ScopeIn | None = None
    strategy: str = _choice(
        "balanced",
        ("balanced", "relevance_first", "priority_first", "time_based", "adaptive"),
        "how sections share the budget",
    )
    sections: list[str] | None = None
    shares: dict[str, float] | None = None
    session: str | None = Field(None, description="a conversation's id, to report reuse")
    format: str = _choice("markdown", ("markdown", "xml"), "how the text is laid out")
    time_limit_ms: float | None = None


# -- administration ----------------------------------------------------------------------


Allow = Annotated[list[str], Field(description="CIDR networks; empty: from anywhere")]


class TenantIn(Body):
    """A new tenant."""

    name: str
    allow: Allow = []


class AllowIn(Body):
    """A new client-address allowlist."""

    allow: Allow


class NameIn(Body):
    """A new user or project."""

    name: str


class KeyIn(Body):
    """A new API key."""

    role: str = Field(
        description="what the key may do",
        json_schema_extra={"enum": ["read_only", "read_write", "admin", "owner"]},
    )
    user: str | None = None
    project: str | None = None
    name: str | None = None
    expires_at: str | None = _time("when the key stops working")
    allow: Allow = []


DEFAULT_GRACE = 3600.0
"""How long a rotated key keeps working by default, in seconds."""


class RotateIn(Body):
    """A key rotation."""

    grace_seconds: float = Field(DEFAULT_GRACE, description="how long the old key keeps working")


_Limit = Annotated[int | None, Field(None, ge=0, description="a number; null: no limit")]


class QuotaIn(Body):
    """Changes to a tenant's quotas: a field left out is kept, null removes the limit."""

    memories: _Limit
    memories_soft: _Limit
    storage_mb: _Limit
    storage_mb_soft: _Limit
    calls_per_hour: _Limit
    calls_per_hour_soft: _Limit
    projects: _Limit
    projects_soft: _Limit
    users: _Limit
    users_soft: _Limit
    reset: bool = Field(False, description="start from the defaults")

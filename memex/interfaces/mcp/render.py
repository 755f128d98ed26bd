"""Memex values as tool results sized for a model: compact JSON-ready dicts, every
list and text bounded, and what was left out counted.

A model pays for every token of a tool's answer, so a search answers with snippets
(the whole memory is one ``get`` away) and nothing here can grow to megabytes,
whatever the store holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memex.core.assembled import Context
    from memex.core.models import Hit, Memory, Stats

SNIPPET_CHARS = 240
"""Characters of a memory's text a search or listing shows."""
INDEX_SNIPPET_CHARS = 100
"""Characters shown per memory in a context's index."""
CONTENT_CHARS = 32_000
"""Characters of one memory's text ``get`` shows at most (about 8,000 tokens)."""
TEXT_CHARS = 128_000
"""Characters of an assembled context's text shown at most."""


def when(value: datetime | None) -> str | None:
    """A time to the second, in UTC, as ``2025-05-01T09:30:00Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, cut at a word boundary to ``limit`` characters (``…`` marks a cut)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut + "…"


def brief(memory: Memory, limit: int = SNIPPET_CHARS) -> dict[str, Any]:
    """A memory as a search or listing shows it: id, kind, when, tags and a snippet."""
    out: dict[str, Any] = {
        "id": memory.id,
        "kind": memory.kind,
        "when": when(memory.created_at),
        "snippet": snippet(memory.content, limit),
    }
    if memory.tags:
        out["tags"] = list(memory.tags)
    return out


def hits(found: Sequence[Hit]) -> dict[str, Any]:
    """A recall's hits, best first: each memory's brief and its score."""
    return {
        "count": len(found),
        "hits": [{**brief(h.memory), "score": round(h.score, 4)} for h in found],
    }


def whole(memory: Memory, limit: int = CONTENT_CHARS) -> dict[str, Any]:
    """Everything a memory holds (fields that are empty are left out), its text cut
    to ``limit`` characters with the cut counted."""
    content = memory.content
    out: dict[str, Any] = {"id": memory.id, "content": content[:limit]}
    if len(content) > limit:
        out["content_truncated"] = {"shown_chars": limit, "total_chars": len(content)}
    out.update(
        kind=memory.kind,
        tags=list(memory.tags),
        importance=memory.importance,
        created=when(memory.created_at),
        updated=when(memory.updated_at),
        version=memory.version,
        state=memory.state(),
    )
    optional = {
        "metadata": memory.metadata or None,
        "source": memory.source,
        "expires": when(memory.expires_at),
        "valid_until": when(memory.valid_until),
        "superseded_by": memory.superseded_by,
        "forgotten": when(memory.deleted_at),
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    scope = {k: v for k, v in memory.scope.as_dict().items() if k != "tenant"}
    if scope:
        out["scope"] = scope
    return out


def written(memory: Memory, verb: str) -> dict[str, Any]:
    """What a write answers: the memory's id and version."""
    out: dict[str, Any] = {verb: memory.id, "version": memory.version}
    if memory.superseded_by is None and verb == "remembered":
        out["kind"] = memory.kind
    return out


def versions(memory_id: str, found: Sequence[Memory], limit: int) -> dict[str, Any]:
    """A memory's history: its newest ``limit`` versions, oldest of them first, each
    with its state and a snippet; how many older ones were left out."""
    shown = list(found[-limit:])
    out: dict[str, Any] = {"id": memory_id, "versions_total": len(found)}
    if len(found) > len(shown):
        out["older_versions_not_shown"] = len(found) - len(shown)
    out["versions"] = [
        {
            "version": m.version,
            "updated": when(m.updated_at),
            "state": m.state(),
            "kind": m.kind,
            "snippet": snippet(m.content),
        }
        for m in shown
    ]
    return out


def page(items: Iterable[Memory], next_cursor: str | None) -> dict[str, Any]:
    """One page of a listing, and the cursor of the next."""
    listed = [brief(m) for m in items]
    out: dict[str, Any] = {"count": len(listed), "items": listed}
    if next_cursor:
        out["next_cursor"] = next_cursor
    return out


def context_index(context: Context) -> dict[str, Any]:
    """An assembled context as a compact index: per section, the memories it chose
    (id, kind, when and a short snippet); ``get`` fetches any of them whole."""
    sections = []
    for section in context.sections:
        if not section.memories:
            continue
        sections.append(
            {
                "section": section.title,
                "memories": [brief(m, INDEX_SNIPPET_CHARS) for m in section.memories],
            }
        )
    return {
        "budget_tokens": context.budget_tokens,
        "context_tokens": context.tokens,
        "memories": sum(len(s["memories"]) for s in sections),
        "sections": sections,
    }


def context_text(context: Context) -> dict[str, Any]:
    """An assembled context's text (within its budget), and the ids it shows."""
    text = context.text[:TEXT_CHARS]
    out: dict[str, Any] = {
        "budget_tokens": context.budget_tokens,
        "context_tokens": context.tokens,
        "ids": [m.id for s in context.sections for m in s.memories],
        "text": text,
    }
    if len(context.text) > len(text):
        out["text_truncated"] = {"shown_chars": len(text), "total_chars": len(context.text)}
    return out


def stats(found: Stats) -> str:
    """A store's counts, as a few lines of text (never its location)."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(found.by_kind.items()))
    lines = [
        f"memories: {found.memories}" + (f" ({kinds})" if kinds else ""),
        f"superseded: {found.superseded}, expired: {found.expired}, forgotten: {found.deleted}",
        f"versions: {found.versions}, embedder: {found.embedder}",
    ]
    return "\n".join(lines)

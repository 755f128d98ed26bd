"""The MCP tools: each parses its arguments, calls one method of the caller's handle
(a ``Memex`` or a ``memex.Client``: only the API both have) and renders the answer
for a model (``render``).

The handle comes from the server's ``Resolver`` for each call, with the action the
tool takes (read or write): over HTTP it is the calling key's, and a tool has no
argument that names a tenant, user or project.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from memex.core.identity import Action
from memex.errors import ValidationError
from memex.interfaces.mcp import render

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from memex.client.sync import Client
    from memex.service import Memex

    Handle: TypeAlias = Memex | Client

Resolver = Callable[[Any, Action], "Handle"]
"""The handle a call may use: given the call's HTTP request (None on stdio) and its action."""

MemoryId = Annotated[str, Field(description="A memory's id, as recall, list or remember gave it.")]
Tags = Annotated[list[str] | None, Field(description="Tags, e.g. ['project-x', 'preference'].")]
Kinds = Annotated[
    list[str] | None,
    Field(description="Only memories of these kinds (fact, decision, preference, note, ...)."),
]
Time = Annotated[
    str | None, Field(description="An ISO 8601 time, e.g. 2025-05-01 or 2025-05-01T09:30:00Z.")
]

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def result(data: Mapping[str, Any], text: str | None = None) -> CallToolResult:
    """A tool's answer: ``data`` as JSON text for the model, and as structured content."""
    body = text if text is not None else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(
        content=[TextContent(type="text", text=body)], structured_content=dict(data)
    )


def request_of(ctx: Context | None) -> Any:
    """The HTTP request that carried a call (None on stdio or in process)."""
    if ctx is None:
        return None
    try:
        return ctx.request_context.request
    except ValueError:  # no request context: called in process, outside a session
        return None


def add_tools(server: MCPServer[Any], resolve: Resolver, scope: Mapping[str, str]) -> None:
    """Register every memory tool on ``server``; ``scope`` narrows writes and searches."""
    within = dict(scope) or None

    def handle(ctx: Context | None, action: Action) -> Handle:
        return resolve(request_of(ctx), action)

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, open_world_hint=False
        )
    )
    def remember(
        content: Annotated[
            str, Field(description="The memory: one self-contained fact, decision or note.")
        ],
        ctx: Context,
        kind: Annotated[
            str, Field(description="fact, decision, preference, event, note, ... (note).")
        ] = "note",
        tags: Tags = None,
        importance: Annotated[
            float, Field(ge=0, le=1, description="0 to 1: how much it matters (0.5).")
        ] = 0.5,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Small JSON object of extra fields.")
        ] = None,
        supersedes: Annotated[
            str | None,
            Field(description="Id of a memory this one replaces (it stays in history)."),
        ] = None,
        ttl_seconds: Annotated[
            float | None, Field(gt=0, description="Forget it after this many seconds.")
        ] = None,
    ) -> CallToolResult:
        """Store a memory that should outlast this conversation: a fact about the user or
        project, a decision and its reason, a preference, a lesson learned. Write one
        self-contained statement per memory (it is read later without this
        conversation). To correct an earlier memory, pass its id as `supersedes`.
        Returns the new memory's id."""
        memory = handle(ctx, Action.WRITE).remember(
            content,
            kind=kind,
            tags=tags,
            importance=importance,
            metadata=metadata,
            supersedes=supersedes,
            ttl=ttl_seconds,
            scope=within,
        )
        return result(render.written(memory, "remembered"))

    @server.tool(annotations=_READ)
    def recall(
        query: Annotated[str, Field(description="What to look for, in plain words.")],
        ctx: Context,
        k: Annotated[int, Field(strict=True, ge=1, le=50, description="How many (8).")] = 8,
        kinds: Kinds = None,
        tags: Annotated[
            list[str] | None, Field(description="Only memories with all these tags.")
        ] = None,
        since: Time = None,
        until: Time = None,
    ) -> CallToolResult:
        """Search memory for what matches a query (full-text and semantic), best first.
        Each hit has the memory's id, score, kind, when it was written and a snippet;
        call `get` with an id for the whole memory. Use it before answering anything
        that may depend on earlier sessions: the user's preferences, past decisions,
        project facts."""
        hits = handle(ctx, Action.READ).recall(
            query, k, kinds=kinds, tags=tags, since=since, until=until, scope=within
        )
        return result(render.hits(hits))

    @server.tool(annotations=_READ)
    def get(id: MemoryId, ctx: Context) -> CallToolResult:
        """Fetch one memory whole, by id: its full text, kind, tags, metadata, times,
        version and state (current, superseded, pending)."""
        return result(render.whole(handle(ctx, Action.READ).get(id)))

    @server.tool(annotations=_READ)
    def context(
        ctx: Context,
        query: Annotated[
            str, Field(description="What the task at hand is about ('' for no query).")
        ] = "",
        budget_tokens: Annotated[
            int,
            Field(strict=True, ge=100, le=32_000, description="Token budget (2000)."),
        ] = 2000,
        detail: Annotated[
            Literal["index", "full"],
            Field(description="index: ids and short snippets (default); full: the text."),
        ] = "index",
    ) -> CallToolResult:
        """Assemble what memory holds for the task at hand within a token budget: the
        user's profile and preferences, project facts, recent events and the memories
        that match the query. By default returns a compact index (id, kind, when, a
        short snippet per memory): fetch the ones you need with `get`. Pass
        detail='full' for the assembled text itself, ready to read."""
        assembled = handle(ctx, Action.READ).context(
            query, budget_tokens, scope=within, format="markdown"
        )
        if detail == "full":
            data = render.context_text(assembled)
            return result(data, text=data["text"] or "(memory holds nothing for this)")
        return result(render.context_index(assembled))

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        )
    )
    def update(
        id: MemoryId,
        ctx: Context,
        content: Annotated[str | None, Field(description="New text.")] = None,
        kind: Annotated[str | None, Field(description="New kind.")] = None,
        tags: Annotated[list[str] | None, Field(description="New tags (replace all).")] = None,
        importance: Annotated[
            float | None, Field(ge=0, le=1, description="New importance.")
        ] = None,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="New metadata (replaces it).")
        ] = None,
    ) -> CallToolResult:
        """Change a memory in place (fix a typo, retag it). The old version stays in its
        history. To record that a fact changed, prefer `remember` with `supersedes`."""
        if all(v is None for v in (content, kind, tags, importance, metadata)):
            raise ValidationError("give at least one of content, kind, tags, importance, metadata")
        memory = handle(ctx, Action.WRITE).update(
            id, content=content, kind=kind, tags=tags, importance=importance, metadata=metadata
        )
        return result(render.written(memory, "updated"))

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=False,
        )
    )
    def forget(id: MemoryId, ctx: Context) -> CallToolResult:
        """Forget a memory that is wrong or no longer wanted: searches stop returning it
        (its history keeps it). Memories it had superseded become current again."""
        memory = handle(ctx, Action.WRITE).forget(id)
        return result(render.written(memory, "forgotten"))

    @server.tool(annotations=_READ)
    def history(
        id: MemoryId,
        ctx: Context,
        limit: Annotated[
            int, Field(strict=True, ge=1, le=100, description="Newest versions shown (20).")
        ] = 20,
    ) -> CallToolResult:
        """Every version of a memory, oldest first: how it changed, when, and whether it
        was superseded or forgotten."""
        found = handle(ctx, Action.READ).history(id)
        return result(render.versions(id, found, limit))

    @server.tool(name="list", annotations=_READ)
    def list_(
        ctx: Context,
        limit: Annotated[int, Field(strict=True, ge=1, le=100, description="Page size (20).")] = 20,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page.")
        ] = None,
        order: Annotated[
            Literal["desc", "asc"], Field(description="desc: newest first (default).")
        ] = "desc",
        kinds: Kinds = None,
        tags: Annotated[
            list[str] | None, Field(description="Only memories with all these tags.")
        ] = None,
        since: Time = None,
        until: Time = None,
    ) -> CallToolResult:
        """Browse memories by time, a page at a time (newest first by default), each with
        its id, kind, when and a snippet. Pass next_cursor back for the next page."""
        found = handle(ctx, Action.READ).list(
            limit=limit,
            cursor=cursor,
            order=order,
            kinds=kinds,
            tags=tags,
            since=since,
            until=until,
            scope=within,
        )
        return result(render.page(found.items, found.next_cursor))


CALLER = "memex.caller"
"""The ASGI scope key where the HTTP server puts a request's (principal, handle)."""


def from_request(request: Any, action: Action) -> Handle:
    """The handle of the key that sent ``request``, which must allow ``action``: the
    resolver of a server reached over HTTP (its scope from the key, never an argument)."""
    from memex.core.identity import require
    from memex.errors import AuthenticationError, MemexError, PermissionDeniedError

    caller = getattr(request, "scope", {}).get(CALLER) if request is not None else None
    if caller is None:
        raise AuthenticationError("this call carries no API key", reason="missing")
    principal, handle = caller
    try:
        require(principal, action)
    except PermissionDeniedError as exc:  # a refusal: entered in the key's audit chain
        from memex.actor import current_actor
        from memex.core.audit import DENIED, AuditEvent

        detail = f"permission_denied:{exc.reason}"
        event = AuditEvent(
            principal.tenant, action.value, "tool", current_actor(), "mcp", DENIED, detail=detail
        )
        with contextlib.suppress(MemexError):  # a busy store does not change the answer
            handle.record_audit(event)
        raise
    return handle  # type: ignore[no-any-return]

"""The MCP server: memex's tools, the ``memex://memory/{id}`` resource and the
everyday prompts, over a handle per call (``tools.Resolver``).

``serve_handle`` serves one handle (a ``Memex`` or a ``memex.Client``: stdio, tests);
``build_server`` serves whatever handle a resolver gives each call (HTTP, where the
request's key decides). A bad argument, an unknown id or a failing store is a tool
error with a one-line message, never a protocol error or a dropped session.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    GetPromptResult,
    InputRequiredResult,
    SetLevelRequestParams,
)
from pydantic import AnyUrl
from pydantic import ValidationError as ArgumentError

from memex.core.identity import Action
from memex.errors import (
    MemexError,
    StoreError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
    ValidationError,
)
from memex.interfaces.mcp import logs, render
from memex.interfaces.mcp.tools import Resolver, add_tools, request_of

if TYPE_CHECKING:
    from memex.interfaces.mcp.tools import Handle

log = logging.getLogger("memex.mcp")

NAME = "memex"
INSTRUCTIONS = (
    "memex is your long-term memory across conversations. Before answering anything "
    "that may depend on earlier work (the user's preferences, past decisions, project "
    "facts), call `recall` or `context`; both answer with ids and short snippets, and "
    "`get` fetches a memory whole. When you learn something worth keeping, call "
    "`remember` with one self-contained statement; to correct a memory, `remember` the "
    "new fact with `supersedes` set to the old id, or `forget` it."
)
EXPORT_CHARS = 100_000
"""Characters the export prompt holds at most, whatever the store holds."""

_PRIVATE = {
    StoreLockedError: "the store was busy past its timeout; try again",
    StoreReadOnlyError: "the store is read-only; nothing was written",
    StoreFullError: "no space is left for the store",
}


def one_line(text: str, limit: int = 500) -> str:
    """``text`` folded onto one line and cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line[:limit] or "failed"


def describe(error: ArgumentError) -> str:
    """An argument that does not fit a tool's schema, in words (never its value)."""
    errors = error.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "arguments"
    if first.get("type") == "missing":
        text = f"{where} is required"
    else:
        message = str(first.get("msg", "is not valid"))
        text = f"{where}: {message[:1].lower()}{message[1:]}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return text


def message_of(exc: BaseException, private: bool) -> str:
    """The one-line message a failed call answers with. ``private`` (a shared server):
    the store's own failures get fixed messages, since theirs may name its files."""
    if isinstance(exc, ArgumentError):
        return describe(exc)
    if isinstance(exc, MemexError):
        if private and isinstance(exc, StoreError):
            fixed = next((m for kind, m in _PRIVATE.items() if isinstance(exc, kind)), None)
            return fixed or "the store cannot be reached or read"
        return one_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    log.error("internal error in an MCP call: %s", type(exc).__name__)
    return "internal error; the server's log names its type"


class MemexServer(MCPServer[Any]):
    """MCPServer whose tool failures are one-line tool errors, and whose calls send
    memex's log messages to a client that asked for them (``logs``)."""

    private = False

    def accept_log_level(self) -> None:
        """Serve ``logging/setLevel`` (and so declare the logging capability). Registered
        on the low-level server, which MCPServer builds without that handler."""
        lowlevel = self._lowlevel_server
        lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, logs.set_level)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Call a tool; any failure is a ToolError (an ``isError`` result) in one line."""
        try:
            async with logs.forwarded(context, self.private):
                return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            text = message_of(cause, self.private) if cause is not None else one_line(str(exc))
            raise ToolError(f"{name}: {text}") from None

    async def get_prompt(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        context: Context[Any, Any] | None = None,
    ) -> GetPromptResult | InputRequiredResult:
        """Render a prompt; any failure is an invalid-params error in one line."""
        try:
            async with logs.forwarded(context, self.private):
                return await super().get_prompt(name, arguments, context)
        except MCPError:
            raise
        except ValueError as exc:
            cause: BaseException = exc
            while cause.__cause__ is not None:  # the SDK wraps the prompt's error twice
                cause = cause.__cause__
            text = one_line(str(exc)) if cause is exc else message_of(cause, self.private)
            raise MCPError(code=INVALID_PARAMS, message=f"{name}: {text}") from None

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """Read a resource (``memex://memory/{id}``)."""
        async with logs.forwarded(context, self.private):
            return await super().read_resource(uri, context)


def build_server(
    resolve: Resolver, *, scope: Mapping[str, str] | None = None, private: bool = False
) -> MemexServer:
    """An MCP server whose every call uses the handle ``resolve`` gives it.

    ``scope`` narrows what it writes and searches (stdio's --project, --user, --agent);
    ``private`` hides the store's own failure messages (a server others reach).
    """
    from memex import __version__

    server = MemexServer(
        NAME,
        title="memex",
        description="Persistent memory for AI agents.",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    server.private = private
    server.accept_log_level()
    add_tools(server, resolve, scope or {})
    _add_resources(server, resolve, private)
    _add_prompts(server, resolve, scope or {})
    return server


def serve_handle(handle: Handle, *, scope: Mapping[str, str] | None = None) -> MemexServer:
    """An MCP server over one handle (a ``Memex`` or a ``memex.Client``)."""
    return build_server(lambda _request, _action: handle, scope=scope)


def _add_resources(server: MemexServer, resolve: Resolver, private: bool) -> None:
    @server.resource(
        "memex://memory/{id}",
        name="memory",
        title="A memory",
        description="One memory, whole, as JSON (as the get tool answers).",
        mime_type="application/json",
    )
    def memory(id: str, ctx: Context) -> str:
        try:
            found = resolve(request_of(ctx), Action.READ).get(id)
        except Exception as exc:
            raise ResourceError(message_of(exc, private)) from None
        return json.dumps(render.whole(found), ensure_ascii=False)


def _add_prompts(server: MemexServer, resolve: Resolver, scope: Mapping[str, str]) -> None:
    within = dict(scope) or None

    def reader(ctx: Context) -> Handle:
        return resolve(request_of(ctx), Action.READ)

    @server.prompt(name="stats", title="Memory statistics")
    def stats(ctx: Context) -> str:
        """How many memories the store holds, by kind and state."""
        found = reader(ctx).stats()
        return f"My memory store's statistics:\n\n{render.stats(found)}\n\nSummarise them briefly."

    @server.prompt(name="recent", title="Recent memories")
    def recent(ctx: Context, count: str = "10") -> str:
        """The most recent memories (count: how many, 1 to 100; 10)."""
        n = _count(count, 100)
        page = reader(ctx).list(limit=n, scope=within)
        lines = "\n".join(_line(item) for item in render.page(page.items, None)["items"])
        return (
            f"My {len(page.items)} most recent memories, newest first:\n\n{lines or '(none)'}\n\n"
            "Summarise what I have been working on."
        )

    @server.prompt(name="search", title="Search memory")
    def search(query: str, ctx: Context) -> str:
        """The memories that best match a query."""
        hits = reader(ctx).recall(query, 10, scope=within)
        lines = "\n".join(_line(hit) for hit in render.hits(hits)["hits"])
        return (
            f"Memories matching {query!r}, best first:\n\n{lines or '(none)'}\n\n"
            "Answer from them; the get tool fetches any of them whole."
        )

    @server.prompt(name="export", title="Export memories")
    def export(ctx: Context, limit: str = "200") -> str:
        """Memories as JSON Lines, oldest first (limit: how many, 1 to 1000; 200)."""
        n = _count(limit, 1000)
        lines: list[str] = []
        size = 0
        more = False
        records = reader(ctx).export_lines()
        try:
            for record in records:
                if len(lines) == n or size + len(record) > EXPORT_CHARS:
                    more = True
                    break
                lines.append(record)
                size += len(record) + 1
        finally:  # a stream from a server is closed rather than read to its end
            close = getattr(records, "close", None)
            if close is not None:
                close()
        note = (
            f"\n\n({len(lines)} shown; more are not: `memex export` writes them all)"
            if more
            else ""
        )
        return "My memories as JSON Lines:\n\n" + "\n".join(lines) + note


def _count(text: str, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValidationError(f"expected a whole number from 1 to {high}, not {text!r}") from None
    if not 1 <= value <= high:
        raise ValidationError(f"expected a whole number from 1 to {high}, not {value}")
    return value


def _line(item: Mapping[str, Any]) -> str:
    score = f" score {item['score']}" if "score" in item else ""
    return f"- [{item['id']}] {item['when']} {item['kind']}{score}: {item['snippet']}"

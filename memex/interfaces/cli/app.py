"""The ``memex`` command: parse arguments, call one Memex method, render the result.

Exit codes: 0 success, 1 not found, 2 bad input, 3 store or environment problem.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from memex import __version__
from memex.errors import MemexError, NotFoundError, ValidationError
from memex.interfaces.cli import render
from memex.interfaces.cli.progress import progress_bar
from memex.service import Memex

app = typer.Typer(
    name="memex",
    help="Persistent memory for AI agents and developer tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        envvar="MEMEX_STORE",
        help="Store file (or directory). Default: $MEMEX_HOME/memex.db or the user data dir.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Tenant to work in.")]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Scope: project.")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Scope: user.")]
AgentOpt = Annotated[str | None, typer.Option("--agent", help="Scope: agent.")]
SessionOpt = Annotated[str | None, typer.Option("--session", help="Scope: session.")]
KindsOpt = Annotated[list[str] | None, typer.Option("--kind", help="Only this kind (repeatable).")]
TagsOpt = Annotated[
    list[str] | None, typer.Option("--tag", "-t", help="Only memories with this tag (repeatable).")
]
MetaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--meta", help="Metadata KEY=VALUE (repeatable; VALUE parsed as JSON if it can be)."
    ),
]


def exit_code(exc: MemexError) -> int:
    """The exit code for an error: the one place errors become exit codes."""
    if isinstance(exc, NotFoundError):
        return 1
    if isinstance(exc, ValidationError):
        return 2
    return 3


def fail(message: str, code: int) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


@contextmanager
def session(store: str | None, tenant: str | None = None, **options: Any) -> Iterator[Memex]:
    """Open the store, yield the handle for the tenant, turn memex errors into exit codes."""
    try:
        with Memex.open(store, tenant=tenant, **options) as mx:
            yield mx
    except MemexError as exc:
        raise fail(
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exit_code(exc)
        ) from None
    except OSError as exc:
        raise fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), 3) from None


def scope_of(
    project: str | None, user: str | None, agent: str | None, session_: str | None
) -> dict[str, str]:
    """The scope fields given on the command line."""
    fields = {"project": project, "user": user, "agent": agent, "session": session_}
    return {k: v for k, v in fields.items() if v is not None}


def parse_meta(pairs: list[str] | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs as a dict; values that parse as JSON keep their type."""
    if not pairs:
        return None
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise fail(f"--meta takes KEY=VALUE, not {pair!r}", 2)
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError:
            result[key] = raw
    return result


def emit(data: Any) -> None:
    """Print JSON to stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=None) + "\n")


def version_callback(value: bool) -> None:
    if value:
        out.print(f"memex {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=version_callback, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """Persistent memory for AI agents and developer tools."""


@app.command()
def remember(
    content: Annotated[str, typer.Argument(help="The memory's text; - reads standard input.")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="fact, decision, note, ...")] = "note",
    tag: TagsOpt = None,
    meta: MetaOpt = None,
    importance: Annotated[float, typer.Option(help="0 to 1.")] = 0.5,
    ttl: Annotated[float | None, typer.Option(help="Expire after this many seconds.")] = None,
    expires_at: Annotated[str | None, typer.Option(help="Expire at this ISO time.")] = None,
    created_at: Annotated[str | None, typer.Option(help="When it happened (ISO time).")] = None,
    source: Annotated[str | None, typer.Option(help="Where it came from.")] = None,
    supersedes: Annotated[str | None, typer.Option(help="Id of a memory this replaces.")] = None,
    project: ProjectOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session_: SessionOpt = None,
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a memory."""
    text = sys.stdin.read() if content == "-" else content
    with session(store, tenant) as mx:
        memory = mx.remember(
            text,
            kind=kind,
            tags=tag,
            metadata=parse_meta(meta),
            scope=scope_of(project, user, agent, session_),
            importance=importance,
            ttl=ttl,
            expires_at=expires_at,
            created_at=created_at,
            source=source,
            supersedes=supersedes,
        )
    if as_json:
        emit(memory.to_dict())
    else:
        out.print(f"remembered {memory.id}")


@app.command()
def recall(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", "--limit", help="How many results.")] = 10,
    kind: KindsOpt = None,
    tag: TagsOpt = None,
    meta: MetaOpt = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO time).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO time).")] = None,
    as_of: Annotated[str | None, typer.Option(help="What was valid at this time.")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or vector.")] = "hybrid",
    project: ProjectOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session_: SessionOpt = None,
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the memories that best match a query."""
    with session(store, tenant) as mx:
        hits = mx.recall(
            query,
            k,
            kinds=kind,
            tags=tag,
            metadata=parse_meta(meta),
            since=since,
            until=until,
            as_of=as_of,
            mode=mode,  # type: ignore[arg-type]
            scope=scope_of(project, user, agent, session_),
        )
    if as_json:
        emit([h.to_dict() for h in hits])
    else:
        render.hits(out, hits)


@app.command()
def get(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one memory."""
    with session(store, tenant) as mx:
        memory = mx.get(memory_id)
    if as_json:
        emit(memory.to_dict())
    else:
        render.memory(out, memory)


@app.command("list")
def list_(
    kind: KindsOpt = None,
    tag: TagsOpt = None,
    meta: MetaOpt = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO time).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO time).")] = None,
    order: Annotated[str, typer.Option(help="desc (newest first) or asc.")] = "desc",
    limit: Annotated[int, typer.Option(help="Page size.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Cursor of the next page.")] = None,
    include_deleted: Annotated[bool, typer.Option("--all", help="Include forgotten.")] = False,
    project: ProjectOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session_: SessionOpt = None,
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List memories by time, a page at a time."""
    with session(store, tenant) as mx:
        page = mx.list(
            scope=scope_of(project, user, agent, session_),
            kinds=kind,
            tags=tag,
            metadata=parse_meta(meta),
            since=since,
            until=until,
            order=order,  # type: ignore[arg-type]
            limit=limit,
            cursor=cursor,
            include_deleted=include_deleted,
        )
    if as_json:
        emit({"items": [m.to_dict() for m in page.items], "next_cursor": page.next_cursor})
    else:
        render.memories(out, page.items)
        if page.next_cursor:
            out.print(f"next page: --cursor {page.next_cursor}")


@app.command()
def update(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    content: Annotated[str | None, typer.Option(help="New text.")] = None,
    kind: Annotated[str | None, typer.Option(help="New kind.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Replace tags (repeatable).")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option("--meta", help="Replace metadata with KEY=VALUE pairs.")
    ] = None,
    importance: Annotated[float | None, typer.Option(help="New importance.")] = None,
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a memory (the previous version stays in its history)."""
    with session(store, tenant) as mx:
        memory = mx.update(
            memory_id,
            content=content,
            kind=kind,
            tags=tag,
            metadata=parse_meta(meta),
            importance=importance,
        )
    if as_json:
        emit(memory.to_dict())
    else:
        out.print(f"updated {memory.id} to version {memory.version}")


@app.command()
def forget(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    purge: Annotated[bool, typer.Option(help="Delete it and its history for good.")] = False,
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Forget a memory (soft delete; --purge removes it and its history)."""
    with session(store, tenant) as mx:
        if purge:
            mx.purge(memory_id)
            result: dict[str, Any] = {"id": memory_id, "purged": True}
        else:
            memory = mx.forget(memory_id)
            result = {"id": memory.id, "purged": False, "version": memory.version}
    if as_json:
        emit(result)
    else:
        out.print(f"{'purged' if purge else 'forgot'} {memory_id}")


@app.command()
def history(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show every version of a memory."""
    with session(store, tenant) as mx:
        versions = mx.history(memory_id)
    if as_json:
        emit([m.to_dict() for m in versions])
    else:
        render.versions(out, versions)


@app.command()
def stats(tenant: TenantOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show counts and sizes of the store."""
    with session(store, tenant) as mx:
        result = mx.stats()
    if as_json:
        emit(result.to_dict())
    else:
        render.stats(out, result)


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(metavar="FILE.jsonl", help="JSON Lines; - for stdin.")],
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import memories from JSON Lines, all or nothing."""
    try:
        # Records end at "\n" only: JSON strings may hold U+2028 and other line breaks.
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        lines = text.split("\n")
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror or exc}", 2) from None
    except UnicodeDecodeError:
        raise fail(f"{file} is not UTF-8 text", 2) from None
    with session(store, tenant) as mx, progress_bar(err) as report:
        imported = mx.import_lines(lines, progress=report)
    if as_json:
        emit({"imported": len(imported)})
    else:
        out.print(f"imported {len(imported)} memories")


@app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    include_deleted: Annotated[bool, typer.Option("--all", help="Include forgotten.")] = False,
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export memories as JSON Lines (superseded versions included)."""
    from memex.core.progress import Step
    from memex.core.records import to_line

    with session(store, tenant) as mx:
        total = mx.stats()
        expected = total.memories + total.superseded + total.expired
        if include_deleted:
            expected += total.deleted
        count = 0
        target = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            with progress_bar(err, show=output is not None) as report:
                for memory in mx.iter_all(include_deleted=include_deleted):
                    target.write(to_line(memory) + "\n")
                    count += 1
                    report(Step("exporting", count, expected))
        finally:
            if output:
                target.close()
    if output:
        if as_json:
            emit({"exported": count, "output": str(output)})
        else:
            out.print(f"exported {count} memories to {output}")


@app.command()
def reindex(
    embedder: Annotated[
        str | None, typer.Option(help="Switch to this embedder: wordllama, minilm or openai.")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-embed every memory (to switch embedding models, or repair vectors)."""
    # Opened with the store's own model, whatever is configured: switching is the point.
    with session(store, None, embedder="auto") as mx:
        with progress_bar(err) as report:
            count = mx.reindex(embedder, progress=report)
        name = mx.embedder.name
    if as_json:
        emit({"reindexed": count, "embedder": name})
    else:
        out.print(f"reindexed {count} memories with {name}")


@app.command()
def expire(tenant: TenantOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Forget every memory whose expiry time has passed."""
    with session(store, tenant) as mx:
        count = mx.expire()
    if as_json:
        emit({"expired": count})
    else:
        out.print(f"expired {count} memories")


@app.command()
def context(
    query: Annotated[str, typer.Argument(help="What the next model call is about.")] = "",
    budget: Annotated[int, typer.Option("--budget", "-b", help="Token budget.")] = 4000,
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown, xml or json.")] = "markdown",
    context_session: Annotated[
        str | None,
        typer.Option("--session", help="Conversation id: report what repeats its last context."),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(help="balanced, relevance_first, priority_first, time_based or adaptive."),
    ] = "balanced",
    section: Annotated[
        list[str] | None, typer.Option("--section", help="Only these sections (repeatable).")
    ] = None,
    time_limit_ms: Annotated[
        float | None, typer.Option(help="Stop loading sections after this many ms.")
    ] = None,
    project: ProjectOpt = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    tenant: TenantOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Assemble the context for a model call within a token budget."""
    if fmt not in ("markdown", "xml", "json"):
        raise fail("--format must be markdown, xml or json", 2)
    with session(store, tenant) as mx:
        result = mx.context(
            query,
            budget,
            scope=scope_of(project, user, agent, None),
            strategy=strategy,
            sections=section,
            session=context_session,
            format="xml" if fmt == "xml" else "markdown",
            time_limit_ms=time_limit_ms,
        )
    if as_json or fmt == "json":
        emit(result.to_dict())
        return
    sys.stdout.write(result.text)
    reused = result.prefix_tokens_reused
    note = f"{result.tokens}/{budget} tokens"
    if reused is not None:
        note += f", {reused} repeat the session's previous context"
    err.print(note, markup=False)


@app.command()
def quickstart(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Store a few example memories and recall them (a first look at memex)."""
    from memex.interfaces.cli.demo import run_demo

    with session(store, None) as mx:
        results = run_demo(mx)
    if as_json:
        emit([{"query": q, "hits": [h.to_dict() for h in hits]} for q, hits in results])
        return
    out.print(f"store: {mx.location}")
    for query, hits in results:
        out.print(f"\n[bold]recall[/bold] {query!r}")
        render.hits(out, hits)


def main() -> None:
    """Entry point of the ``memex`` command."""
    app()

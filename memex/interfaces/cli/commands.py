"""What each ``memex`` command does: parse its input, call one Memex method, render.

Nothing here is imported before a command runs, and each command imports only what
it needs, so ``memex --version`` and ``memex get`` start in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from memex.errors import ConfigError, ValidationError
from memex.interfaces.cli import render
from memex.interfaces.cli.admin import run as admin
from memex.interfaces.cli.audit import run as audit
from memex.interfaces.cli.copies import backup, migrate, restore
from memex.interfaces.cli.invocation import Cli
from memex.interfaces.cli.mcp import mcp
from memex.interfaces.cli.privacy import run as privacy
from memex.interfaces.cli.serve import serve

if TYPE_CHECKING:
    pass


@contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Show memex's warnings on standard error, one line each, while a command runs."""
    import threading

    from memex import log

    mine = threading.get_ident()
    previous = log.sink

    def show(message: str) -> bool:
        if threading.get_ident() != mine:  # a background thread's, maybe of another store
            return False
        sys.stderr.write(f"warning: {render.one_line(message)}\n")
        return True

    log.sink = show
    try:
        yield
    finally:
        log.sink = previous


def scope(args: argparse.Namespace) -> dict[str, str]:
    """The scope fields given on the command line."""
    fields = {name: getattr(args, name, None) for name in ("project", "user", "agent", "session")}
    return {k: v for k, v in fields.items() if v is not None}


def metadata(pairs: list[str] | None) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs as a dict; a value that parses as JSON keeps its type."""
    if not pairs:
        return None
    from memex.core.validate import parse_meta_value

    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--meta takes KEY=VALUE, not {pair!r}")
        result[key] = parse_meta_value(raw)
    return result


def read_input(name: str) -> str:
    """The text of a file, or of standard input for ``-``, which must be UTF-8."""
    from memex.core.validate import decode_text

    if name == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(name, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ValidationError(f"cannot read {name}: {exc.strerror or exc}") from exc
    return decode_text(data, "standard input" if name == "-" else name)


# -- commands ---------------------------------------------------------------------------


def remember(cli: Cli) -> None:
    a = cli.args
    text = read_input("-") if a.content == "-" else a.content
    with cli.memories() as mx:
        memory = mx.remember(
            text,
            kind=a.kind,
            tags=a.tags,
            metadata=metadata(a.meta),
            scope=scope(a),
            importance=a.importance,
            ttl=a.ttl,
            expires_at=a.expires_at,
            created_at=a.created_at,
            source=a.source,
            supersedes=a.supersedes,
        )
    if cli.as_json:
        cli.emit(memory.to_dict())
    else:
        cli.say(f"remembered {memory.id}")


def recall(cli: Cli) -> None:
    a = cli.args
    with cli.memories() as mx:
        hits = mx.recall(
            a.query,
            a.k,
            kinds=a.kinds,
            tags=a.tags,
            metadata=metadata(a.meta),
            since=a.since,
            until=a.until,
            as_of=a.as_of,
            mode=a.mode,
            scope=scope(a),
        )
    if cli.as_json:
        cli.emit([h.to_dict() for h in hits])
    else:
        render.hits(cli.out, hits)


def get(cli: Cli) -> None:
    with cli.memories() as mx:
        memory = mx.get(cli.args.id)
    if cli.as_json:
        cli.emit(memory.to_dict())
    else:
        render.memory(cli.out, memory)


def list_(cli: Cli) -> None:
    a = cli.args
    with cli.memories() as mx:
        page = mx.list(
            scope=scope(a),
            kinds=a.kinds,
            tags=a.tags,
            metadata=metadata(a.meta),
            since=a.since,
            until=a.until,
            order=a.order,
            limit=a.limit,
            cursor=a.cursor,
            include_deleted=a.include_deleted,
        )
    if cli.as_json:
        cli.emit({"items": [m.to_dict() for m in page.items], "next_cursor": page.next_cursor})
        return
    render.memories(cli.out, page.items)
    if page.next_cursor:
        cli.say(f"next page: --cursor {page.next_cursor}")


def update(cli: Cli) -> None:
    a = cli.args
    changes: dict[str, Any] = {}
    if a.source is not None:
        changes["source"] = a.source
    if a.expires_at is not None:
        changes["expires_at"] = a.expires_at
    with cli.memories() as mx:
        memory = mx.update(
            a.id,
            content=a.content,
            kind=a.kind,
            tags=a.tags,
            metadata=metadata(a.meta),
            importance=a.importance,
            **changes,
        )
    if cli.as_json:
        cli.emit(memory.to_dict())
    else:
        cli.say(f"updated {memory.id} to version {memory.version}")


def forget(cli: Cli) -> None:
    a = cli.args
    with cli.memories() as mx:
        if a.purge:
            result: dict[str, Any] = {"id": mx.purge(a.id), "purged": True}
        else:
            memory = mx.forget(a.id)
            result = {"id": memory.id, "purged": False, "version": memory.version}
    if cli.as_json:
        cli.emit(result)
    else:
        cli.say(f"{'purged' if a.purge else 'forgot'} {result['id']}")


def history(cli: Cli) -> None:
    with cli.memories() as mx:
        versions = mx.history(cli.args.id)
    if cli.as_json:
        cli.emit([m.to_dict() for m in versions])
    else:
        render.versions(cli.out, versions)


def stats(cli: Cli) -> None:
    with cli.memories() as mx:
        result = mx.stats()
    if cli.as_json:
        cli.emit(result.to_dict())
        return
    render.stats(cli.out, result)
    if result.read_only is not None:
        cli.say(f"read-only ({result.read_only})")


def import_(cli: Cli) -> None:
    from memex.interfaces.cli.progress import progress_bar

    # Records end at "\n" only: JSON strings may hold U+2028 and other line breaks.
    lines = read_input(cli.args.file).split("\n")
    with cli.memories() as mx, progress_bar(cli.err) as report:
        imported = mx.import_lines(lines, progress=report)
    if cli.as_json:
        cli.emit({"imported": len(imported)})
    else:
        cli.say(f"imported {len(imported)} memories")


def export(cli: Cli) -> None:
    from memex.interfaces.cli.progress import progress_bar

    a = cli.args
    options = {"include_deleted": a.everything, "history": a.everything}
    to_file = a.output not in (None, "-")
    with cli.memories() as mx, progress_bar(cli.err, show=to_file) as report:
        if not to_file:
            for line in mx.export_lines(**options):
                cli.out.write(line + "\n")
            return
        count = mx.export(a.output, **options, progress=report)
    if cli.as_json:
        cli.emit({"exported": count, "output": a.output})
    else:
        cli.say(f"exported {count} memories to {a.output}")


def unsupersede(cli: Cli) -> None:
    with cli.store() as mx:
        memory = mx.unsupersede(cli.args.id)
    if cli.as_json:
        cli.emit(memory.to_dict())
    elif memory.valid_until is not None:
        cli.say(f"{memory.id} is current again, until {render.when(memory.valid_until)}")
    else:
        cli.say(f"{memory.id} is current again")


def reindex(cli: Cli) -> None:
    from memex.interfaces.cli.progress import progress_bar

    cli.whole_store("reindex covers")
    # Opened with the store's own model, whatever is configured: switching is the point.
    with cli.store(embedder="auto", tenant=None) as mx, progress_bar(cli.err) as report:
        count = mx.reindex(cli.args.embedder, progress=report)
        name = mx.embedder.name
    if cli.as_json:
        cli.emit({"reindexed": count, "embedder": name})
    else:
        cli.say(f"reindexed {count} memories with {name}")


def expire(cli: Cli) -> None:
    with cli.store() as mx:
        count = mx.expire()
    if cli.as_json:
        cli.emit({"expired": count})
    else:
        cli.say(f"expired {count} memories")


def context(cli: Cli) -> None:
    a = cli.args
    with cli.memories() as mx:
        result = mx.context(
            a.query,
            a.budget,
            scope=scope(a),
            strategy=a.strategy,
            sections=a.sections,
            session=a.conversation,
            format="xml" if a.fmt == "xml" else "markdown",
            time_limit_ms=a.time_limit_ms,
        )
    if cli.as_json or a.fmt == "json":
        cli.emit(result.to_dict())
        return
    # Piped, the text is exactly what a model would get; on a terminal, stored control
    # sequences are shown as escapes instead of being obeyed.
    cli.out.write(render.escape_controls(result.text) if cli.out.isatty() else result.text)
    note = f"{result.tokens}/{a.budget} tokens"
    if result.prefix_tokens_reused is not None:
        note += f", {result.prefix_tokens_reused} repeat the session's previous context"
    snapshot = result.stats.get("session_snapshot")
    if snapshot == "read-only":
        note += "; the store is read-only, so this context is not saved for the session"
    elif snapshot == "pending":
        note += "; the store could not take it now (busy or full): saved for the session later"
    cli.err.write(render.one_line(note) + "\n")


def quickstart(cli: Cli) -> None:
    from memex.interfaces.cli.demo import run_demo

    with cli.store(tenant=None) as mx:
        results = run_demo(mx)
        location = mx.location
    if cli.as_json:
        cli.emit([{"query": q, "hits": [h.to_dict() for h in hits]} for q, hits in results])
        return
    cli.say(f"store: {location}")
    for query, hits in results:
        cli.out.write("\n")
        cli.say(f"recall {query!r}")
        render.hits(cli.out, hits)


def index(cli: Cli) -> None:
    from memex.interfaces.cli.progress import progress_bar

    started = time.perf_counter()
    with cli.store() as mx, progress_bar(cli.err) as report:
        mx.build_indexes(progress=report)
    seconds = time.perf_counter() - started
    if cli.as_json:
        cli.emit({"indexed": True, "seconds": round(seconds, 3)})
    else:
        cli.say(f"search indexes up to date ({seconds:.1f} s)")


def warm_(cli: Cli) -> None:
    from memex.interfaces.cli import warm

    action = cli.args.action
    if action == "start":
        why = warm.start()
        if why is not None:
            raise ConfigError(f"cannot start the warm process: {why}")
        deadline = time.monotonic() + 30
        while not (state := warm.control("status"))["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        if not state["running"]:
            raise ConfigError("the warm process did not start within 30 s")
    else:
        state = warm.control(action)
    if cli.as_json:
        cli.emit(state)
    elif state["running"]:
        cli.say(f"warm process {state['pid']} serving on {state['socket']}")
        if state.get("stores"):
            cli.say("stores open: " + ", ".join(state["stores"]))
    elif action == "stop" and "pid" in state:
        cli.say(f"warm process {state['pid']} stopped")
    else:
        cli.say("no warm process")


def tui(cli: Cli) -> None:
    try:
        from memex.interfaces.tui.app import run
        from memex.interfaces.tui.widgets import Selection
    except ImportError as exc:
        raise ConfigError(
            f"memex tui needs the tui extra ({exc.name} is missing): pip install 'memex[tui]'"
        ) from None
    a = cli.args
    selection = Selection(
        scope=scope(a), kinds=tuple(a.kinds or ()), tags=tuple(a.tags or ()),
        since=a.since, until=a.until,
    )  # fmt: skip
    with cli.memories() as mx:
        run(mx, selection)


COMMANDS: dict[str, Callable[[Cli], None]] = {
    "remember": remember,
    "recall": recall,
    "get": get,
    "list": list_,
    "update": update,
    "forget": forget,
    "history": history,
    "stats": stats,
    "import": import_,
    "export": export,
    "backup": backup,
    "restore": restore,
    "migrate": migrate,
    "unsupersede": unsupersede,
    "reindex": reindex,
    "expire": expire,
    "context": context,
    "quickstart": quickstart,
    "index": index,
    "warm": warm_,
    "serve": serve,
    "mcp": mcp,
    "admin": admin,
    "privacy": privacy,
    "tui": tui,
    "audit": audit,
}

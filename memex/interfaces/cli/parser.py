"""The ``memex`` command line: every command, argument and option, on argparse.

Global options (``--store``, ``--tenant``, ``--json``) work before the command, as in
``memex --store team.db list``, and after it. A usage error is one ``error: ...`` line
on standard error and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from memex.interfaces.cli.render import one_line

MODES = ("hybrid", "lexical", "vector")
FORMATS = ("markdown", "xml", "json")
STRATEGIES = ("balanced", "relevance_first", "priority_first", "time_based", "adaptive")
EMBEDDERS = ("wordllama", "minilm", "openai")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
UTC_NOTE = " (ISO 8601; UTC unless it names an offset)"


class UsageError(Exception):
    """A command line that does not parse: its one-line message."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised, not printed with the whole usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(one_line(message))


def _globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes; below the top, an absent one keeps the top's."""
    unset = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--store",
        "-s",
        metavar="PATH",
        default=unset,
        help="store file, directory, sqlite:/// URL or postgresql:// URL "
        "(default: $MEMEX_STORE, else $MEMEX_HOME/memex.db, else the user data directory)",
    )
    parser.add_argument("--tenant", default=unset, help="tenant to work in")
    parser.add_argument(
        "--read-only",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="open the store for reading only (also $MEMEX_READ_ONLY=1)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON for scripts",
    )


def _scope(parser: argparse.ArgumentParser, *, session: bool = True) -> None:
    parser.add_argument("--project", help="scope: project")
    parser.add_argument("--user", help="scope: user")
    parser.add_argument("--agent", help="scope: agent")
    if session:
        parser.add_argument("--session", help="scope: session")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", action="append", dest="kinds", help="only this kind (repeat)")
    parser.add_argument("--tag", "-t", action="append", dest="tags", help="only with this tag")
    parser.add_argument("--meta", action="append", help="metadata KEY=VALUE (repeat)")
    parser.add_argument("--since", help="created at or after this time" + UTC_NOTE)
    parser.add_argument("--until", help="created before this time" + UTC_NOTE)


COMMANDS = (
    "remember",
    "recall",
    "get",
    "list",
    "update",
    "forget",
    "history",
    "stats",
    "import",
    "export",
    "backup",
    "restore",
    "migrate",
    "unsupersede",
    "reindex",
    "expire",
    "context",
    "quickstart",
    "index",
    "warm",
    "serve",
    "mcp",
    "admin",
    "privacy",
    "tui",
    "audit",
)
"""Every command, in the order ``memex --help`` lists them."""


class _Unused:
    """Stands in for the parser of a command not being run: its options are not built."""

    def add_argument(self, *args: object, **kwargs: object) -> None:
        return None


def build(only: str | None = None) -> Parser:
    """The parser of the whole command line; with ``only``, of that command alone (a
    command line runs one command, and building every command's parser takes a good
    share of a quick command's time)."""
    from memex import __version__

    top = Parser(
        prog="memex",
        description="Persistent memory for AI agents and developer tools.",
        epilog="Exit status: 0 ok, 1 not found, 2 bad input, 3 store or environment problem.",
    )
    top.add_argument("--version", action="version", version=f"memex {__version__}")
    _globals(top, top=True)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, text: str) -> Any:
        if only is not None and name != only:
            return _Unused()
        sub = commands.add_parser(name, help=text, description=text)
        _globals(sub, top=False)
        return sub

    p = command("remember", "Store a memory.")
    p.add_argument("content", help="the memory's text; - reads standard input")
    p.add_argument("--kind", "-k", default="note", help="fact, decision, note, ... (note)")
    p.add_argument("--tag", "-t", action="append", dest="tags", help="a tag (repeat)")
    p.add_argument("--meta", action="append", help="metadata KEY=VALUE (repeat; JSON values)")
    p.add_argument("--importance", type=float, default=0.5, help="0 to 1 (0.5)")
    p.add_argument("--ttl", type=float, help="expire after this many seconds")
    p.add_argument("--expires-at", help="expire at this time" + UTC_NOTE)
    p.add_argument("--created-at", help="when it happened" + UTC_NOTE)
    p.add_argument("--source", help="where it came from")
    p.add_argument("--supersedes", metavar="ID", help="a memory this one replaces")
    _scope(p)

    p = command("recall", "Find the memories that best match a query.")
    p.add_argument("query", help="what to look for")
    p.add_argument("-k", "--limit", type=int, default=10, dest="k", help="how many (10)")
    _filters(p)
    p.add_argument("--as-of", help="what was valid at this time" + UTC_NOTE)
    p.add_argument("--mode", choices=MODES, default="hybrid", help="hybrid, lexical or vector")
    _scope(p)

    p = command("get", "Show one memory.")
    p.add_argument("id", metavar="ID")

    p = command("list", "List memories by time, a page at a time.")
    _filters(p)
    p.add_argument("--order", choices=("desc", "asc"), default="desc", help="desc or asc")
    p.add_argument("--limit", type=int, default=20, help="page size (20)")
    p.add_argument("--cursor", help="the next_cursor of the previous page")
    p.add_argument(
        "--all", action="store_true", dest="include_deleted", help="with forgotten and expired"
    )
    _scope(p)

    p = command("update", "Change a memory (the previous version stays in its history).")
    p.add_argument("id", metavar="ID")
    p.add_argument("--content", help="new text")
    p.add_argument("--kind", help="new kind")
    p.add_argument("--tag", "-t", action="append", dest="tags", help="replace the tags")
    p.add_argument("--meta", action="append", help="replace the metadata with KEY=VALUE pairs")
    p.add_argument("--importance", type=float, help="new importance")
    p.add_argument("--source", help="new source")
    p.add_argument("--expires-at", help="new expiry time" + UTC_NOTE)

    p = command("forget", "Forget a memory (soft delete; --purge removes it for good).")
    p.add_argument("id", metavar="ID")
    p.add_argument("--purge", action="store_true", help="delete it and its history for good")

    p = command("history", "Show every version of a memory.")
    p.add_argument("id", metavar="ID")

    command("stats", "Show counts and sizes of the store.")

    p = command("import", "Import memories from JSON Lines, all or nothing.")
    p.add_argument("file", metavar="FILE.jsonl", help="JSON Lines; - reads standard input")

    p = command("export", "Export memories as JSON Lines.")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--all",
        action="store_true",
        dest="everything",
        help="a full backup of the tenant: forgotten memories and every past version",
    )

    p = command("backup", "Copy the whole store, consistently, while others write.")
    p.add_argument("path", metavar="PATH", help="the backup file to write")

    p = command("restore", "Replace the store by a backup made with memex backup.")
    p.add_argument("backup", metavar="BACKUP", help="the backup file to read")
    p.add_argument("--force", action="store_true", help="replace a store that holds memories")

    p = command("migrate", "Copy a whole store into another (SQLite or PostgreSQL), verified.")
    p.add_argument("source", metavar="SRC", help="the store to copy (path or URL; read only)")
    p.add_argument("target", metavar="DST", help="the store to copy into (created if new)")
    p.add_argument(
        "--force", action="store_true", help="replace what DST holds that SRC does not hold"
    )
    p.add_argument("--batch-size", type=int, default=500, help="memories per transaction (500)")

    p = command("unsupersede", "Undo a wrong supersede: the memory is valid again.")
    p.add_argument("id", metavar="ID")

    p = command("reindex", "Re-embed every memory (to switch models, or repair vectors).")
    p.add_argument("--embedder", choices=EMBEDDERS, help="switch to this embedder")

    command("expire", "Forget every memory whose expiry time has passed.")

    p = command("context", "Assemble the context for a model call within a token budget.")
    p.add_argument("query", nargs="?", default="", help="what the next model call is about")
    p.add_argument("--budget", "-b", type=int, default=4000, help="token budget (4000)")
    p.add_argument("--format", "-f", choices=FORMATS, default="markdown", dest="fmt")
    p.add_argument("--session", dest="conversation", help="conversation id")
    p.add_argument("--strategy", choices=STRATEGIES, default="balanced")
    p.add_argument("--section", action="append", dest="sections", help="only these sections")
    p.add_argument("--time-limit-ms", type=float, help="stop loading sections after this")
    _scope(p, session=False)

    command("quickstart", "Store a few example memories and recall them.")

    command("index", "Bring the search indexes up to date now, with progress.")

    p = command("warm", "Show, start or stop the warm process that keeps stores open.")
    p.add_argument("action", choices=("status", "start", "stop"), nargs="?", default="status")

    p = command("serve", "Serve the store over HTTP (needs the server extra).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8787, help="port (8787; 0 picks a free one)")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        dest="trusted_proxies",
        metavar="CIDR",
        help="a proxy whose X-Forwarded-For is believed (repeat)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key")
    p.add_argument(
        "--max-body", type=int, default=16 * 1024 * 1024, metavar="BYTES", help="(16 MiB)"
    )
    p.add_argument(
        "--no-auth", action="store_true", help="no keys: anyone is the owner (loopback only)"
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="server processes sharing the port (1)"
    )
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="(info)")
    p.add_argument("--key-rate", default="50/s", metavar="RATE", help="each key's (50/s)")
    p.add_argument("--key-burst", type=int, default=100, metavar="N", help="(100)")
    p.add_argument("--tenant-rate", default="200/s", metavar="RATE", help="each tenant's (200/s)")
    p.add_argument("--tenant-burst", type=int, default=400, metavar="N", help="(400)")
    p.add_argument("--no-limits", action="store_true", help="no rate limits")
    p.add_argument("--no-quotas", action="store_true", help="tenants' quotas not enforced")
    p.add_argument("--redis", metavar="URL", help="share the limits through this Redis")
    p.add_argument("--redis-prefix", default="memex", metavar="TEXT", help="(memex)")

    p.add_argument(
        "--mcp-allowed-host",
        action="append",
        dest="mcp_allowed_hosts",
        metavar="HOST",
        help="a Host header /mcp accepts, besides loopback and the address served (repeat)",
    )

    p = command("mcp", "Serve the store to an AI agent over MCP on stdio (needs the mcp extra).")
    for name in ("project", "user", "agent"):
        p.add_argument(
            f"--{name}",
            default=os.environ.get(f"MEMEX_{name.upper()}") or None,
            help=f"scope: {name} (default: $MEMEX_{name.upper()})",
        )

    p = command(
        "admin", "Manage tenants, users, projects, API keys and quotas, on the store itself."
    )
    if not isinstance(p, _Unused):
        from memex.interfaces.cli.admin import add_parsers

        add_parsers(p, lambda sub: _globals(sub, top=False))

    p = command("privacy", "Export, erase or anonymise a user; erase a project or a tenant.")
    if not isinstance(p, _Unused):
        from memex.interfaces.cli.privacy import add_parsers as privacy_parsers

        privacy_parsers(p, lambda sub: _globals(sub, top=False))

    p = command("tui", "Inspect memories in a terminal UI (needs the tui extra).")
    p.add_argument("--kind", action="append", dest="kinds", help="only this kind (repeat)")
    p.add_argument("--tag", "-t", action="append", dest="tags", help="only with this tag")
    p.add_argument("--since", help="created at or after this time" + UTC_NOTE)
    p.add_argument("--until", help="created before this time" + UTC_NOTE)
    _scope(p)
    p = command("audit", "Verify the store's audit trail and export compliance reports.")
    if not isinstance(p, _Unused):
        from memex.interfaces.cli.audit import add_parsers as audit_parsers

        audit_parsers(p, lambda sub: _globals(sub, top=False))
    return top


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` (default: the process's arguments)."""
    from memex.interfaces.cli.warm import command_of

    given = sys.argv[1:] if argv is None else list(argv)
    name = command_of(given)
    parser = build(name if name in COMMANDS else None)
    args = parser.parse_args(given)
    if args.command is None:  # a bare `memex`: show what it can do
        parser.print_help(sys.stdout)
        raise SystemExit(2)
    return args

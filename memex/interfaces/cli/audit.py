"""``memex audit``: verify a store's audit chains and export compliance reports, directly
on the store (whoever may open the store file reads every tenant's chain)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from memex.errors import StoreCorruptError
from memex.interfaces.cli import render
from memex.interfaces.cli.invocation import Cli


def add_parsers(audit: argparse.ArgumentParser, options: Callable[[Any], None]) -> None:
    """The ``memex audit`` subcommands; ``options`` adds the global options to a parser."""
    actions = audit.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    text = "Check audit chains for tampering (--tenant: one chain; else every chain)."
    p = actions.add_parser("verify", help=text, description=text)
    options(p)
    text = "Write a compliance report: the entries as JSON Lines, then a summary."
    p = actions.add_parser("export", help=text, description=text)
    options(p)
    p.add_argument("--since", metavar="TIME", help="entries made at or after (ISO 8601)")
    p.add_argument("--until", metavar="TIME", help="entries made before (ISO 8601)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report there (- : stdout)")


def run(cli: Cli) -> None:
    """Run one ``memex audit`` command."""
    cli.local_only()
    with cli.store(tenant=None) as mx:
        if cli.args.audit_action == "verify":
            _verify(cli, mx.audit_verify(cli.args.tenant))
        else:
            _export(cli, mx)


def _verify(cli: Cli, found: list[Any]) -> None:
    if cli.as_json:
        cli.emit({"ok": all(v.ok for v in found), "chains": [v.to_dict() for v in found]})
    elif not found:
        cli.say("no audit entries")
    for verification in found if not cli.as_json else ():
        head = verification.head
        where = f"{verification.entries} entries" + (f", head {head.seq}" if head else "")
        if verification.ok:
            cli.say(f"{verification.tenant}: intact ({where})")
        else:
            problems = "; ".join(p.describe() for p in verification.problems)
            cli.say(f"{verification.tenant}: TAMPERED ({where}): {problems}")
    broken = [v for v in found if not v.ok]
    if broken:
        first = broken[0]
        more = len(first.problems) - 1 + sum(len(v.problems) for v in broken[1:])
        raise StoreCorruptError(
            f"the audit chain of {first.tenant!r} was tampered with: "
            f"{first.problems[0].describe()}" + (f" (and {more} more)" if more else "")
        )


def _export(cli: Cli, mx: Any) -> None:
    a = cli.args
    to_file = a.output not in (None, "-")
    report = mx.audit_export(a.since, a.until, tenant=a.tenant, path=a.output if to_file else None)
    if not to_file:
        for line in report.lines():
            cli.out.write(line + "\n")
        return
    summary = report.summary
    if cli.as_json:
        cli.emit({"output": a.output, "summary": summary})
        return
    cli.say(f"wrote {summary['entries']} audit entries to {a.output}")
    rows = [[name, str(n)] for name, n in summary["by_action_outcome"].items()]
    if rows:
        render.table(cli.out, ["action/outcome", "entries"], rows, flexible=0)

"""``memex privacy``: export, erase and anonymise a user; erase a project or a tenant.

They work on the store itself, or on a memex server (``--store https://...``) through
``memex.Client``, where the API key decides the tenant and its role what may be done.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from memex.errors import ValidationError
from memex.interfaces.cli import render
from memex.interfaces.cli.invocation import Cli

if TYPE_CHECKING:
    from memex.client.sync import Client
    from memex.service import Memex


def add_parsers(privacy: argparse.ArgumentParser, options: Callable[[Any], None]) -> None:
    """The ``memex privacy`` subcommands; ``options`` adds the global options to a parser."""
    actions = privacy.add_subparsers(dest="privacy_action", metavar="ACTION", required=True)

    def action(name: str, text: str) -> Any:
        sub = actions.add_parser(name, help=text, description=text)
        options(sub)
        return sub

    p = action("export", "Print everything the store holds about a user, as one JSON package.")
    p.add_argument("--user", required=True, help="the user (of --tenant)")
    p = action(
        "erase",
        "Erase for good a user's or a project's data (of --tenant), or a whole tenant "
        "(--tenant alone); prints the receipt.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--user", help="erase this user of the tenant")
    which.add_argument("--project", help="erase this project of the tenant")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--batch-size", type=int, default=500, metavar="N", help="memories a transaction (500)"
    )
    p = action("anonymise", "Replace a user's name by a pseudonym wherever the store keeps it.")
    p.add_argument("--user", required=True, help="the user (of --tenant)")


@contextmanager
def _target(cli: Cli, *, whole_tenant: bool = False) -> Iterator[Memex | Client]:
    """The store or server the command works on. A tenant to erase is named by
    ``--tenant``, which on a server is the thing erased, not the caller's tenant."""
    if whole_tenant and cli.on_server():
        from memex.client.sync import Client

        with Client(str(cli.location)) as client:
            yield client
        return
    with cli.memories() as mx:
        yield mx


def run(cli: Cli) -> None:
    """Run one ``memex privacy`` command."""
    {"export": _export, "erase": _erase, "anonymise": _anonymise}[cli.args.privacy_action](cli)


def _export(cli: Cli) -> None:
    with _target(cli) as mx:
        package = mx.export_user(cli.args.user)
    cli.emit(package.to_dict())  # the package is JSON, with or without --json


def _erase(cli: Cli) -> None:
    from memex.interfaces.cli.progress import progress_bar

    a = cli.args
    whole_tenant = a.user is None and a.project is None
    if whole_tenant and a.tenant is None:
        raise ValidationError("name what to erase: --user, --project or --tenant")
    what = (
        f"tenant {a.tenant!r} (its memories, users, projects and keys)"
        if whole_tenant
        else f"{'user' if a.user else 'project'} {a.user or a.project!r}"
        + (f" of tenant {a.tenant!r}" if a.tenant else "")
    )
    if not a.yes:
        _confirm(cli, what)
    with _target(cli, whole_tenant=whole_tenant) as mx, progress_bar(cli.err) as report:
        receipt = mx.erase(
            user=a.user,
            project=a.project,
            tenant=a.tenant if whole_tenant else None,
            progress=report,
            batch_size=a.batch_size,
        )
    if cli.as_json:
        cli.emit(receipt.to_dict())
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in receipt.to_dict()["counts"].items() if n)
    cli.say(f"erased {receipt.selector.describe()}: {counts or 'nothing left'}")
    cli.say(f"sha256 of the erased ids: {receipt.ids_sha256}")
    for note in receipt.notes:
        cli.err.write(f"note: {render.one_line(note)}\n")


def _confirm(cli: Cli, what: str) -> None:
    """Ask on a terminal; refuse anywhere else (a script says --yes)."""
    stdin = sys.stdin
    if not (stdin.isatty() and cli.err.isatty()):
        raise ValidationError("erase asks for confirmation on a terminal; pass --yes to erase")
    cli.err.write(render.one_line(f"Erase {what} for good? This cannot be undone. [y/N] "))
    cli.err.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise ValidationError("not erased: not confirmed")


def _anonymise(cli: Cli) -> None:
    with _target(cli) as mx:
        done = mx.anonymise(cli.args.user)
    if cli.as_json:
        cli.emit(done.to_dict())
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in done.to_dict()["counts"].items() if n)
    cli.say(f"user {cli.args.user} is now {done.pseudonym}: {counts or 'nothing renamed'}")

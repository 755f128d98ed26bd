"""The commands that copy whole stores: backup, restore and migrate."""

from __future__ import annotations

from memex.interfaces.cli import render
from memex.interfaces.cli.invocation import Cli


def backup(cli: Cli) -> None:
    from memex.interfaces.cli.progress import progress_bar

    cli.whole_store("a backup copies")
    with cli.store(tenant=None) as mx, progress_bar(cli.err) as report:
        info = mx.backup(cli.args.path, progress=report)
    if cli.as_json:
        cli.emit(info.to_dict())
    else:
        size = info.size_bytes / 1_048_576
        cli.say(f"backed up {info.memories} memories ({size:.1f} MiB) to {info.path}")


def restore(cli: Cli) -> None:
    from memex.interfaces.cli.progress import progress_bar
    from memex.service import Memex

    a = cli.args
    cli.local_only()
    cli.whole_store("a restore replaces")
    read_only = True if a.read_only else None
    with progress_bar(cli.err) as report:
        count = Memex.restore(
            a.backup, cli.location, force=a.force, progress=report, read_only=read_only
        )
    if cli.as_json:
        cli.emit({"restored": count, "backup": a.backup})
    else:
        cli.say(f"restored {count} memories from {a.backup}")


def migrate(cli: Cli) -> None:
    from memex.errors import StoreError
    from memex.interfaces.cli.progress import progress_bar
    from memex.service import Memex

    a = cli.args
    cli.whole_store("a migration copies")
    with progress_bar(cli.err) as report:
        done = Memex.migrate(
            a.source, a.target, force=a.force, batch_size=a.batch_size, progress=report
        )
    if cli.as_json:
        cli.emit(done.to_dict())
    else:
        for line in render.migration(done):
            cli.say(line)
    if not done.ok:
        raise StoreError(f"{done.target} does not match {done.source}: {done.mismatches()[0]}")

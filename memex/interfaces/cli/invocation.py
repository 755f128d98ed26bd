"""One run of a ``memex`` command (``Cli``): its arguments, its streams, its store.

The memory commands work on a local store (``Memex``) or on a memex server
(``memex.Client``, when ``--store`` is an http(s) URL): the two have the same methods,
so the commands do not tell them apart. Commands on the store's files refuse a server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from memex.errors import ValidationError
from memex.interfaces.cli import render

if TYPE_CHECKING:
    from memex.client.sync import Client
    from memex.service import Memex


Opener = Callable[[str | None, str | None, dict[str, Any]], AbstractContextManager["Memex"]]
OPENER: Opener | None = None
"""How the warm process opens stores (kept open); None: each command opens its own."""


class Cli:
    """One run of the command: its arguments and where its output goes."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: TextIO = sys.stdout
        self.err: TextIO = sys.stderr

    @property
    def as_json(self) -> bool:
        return bool(self.args.json)

    def emit(self, data: Any) -> None:
        """JSON on standard output. The values are exact; the C1 controls and the
        bidirectional formatting characters that JSON may leave raw are written as
        ``\\u`` escapes (the same JSON), so a terminal shows them instead of obeying."""
        self.out.write(render.json_safe(json.dumps(data, ensure_ascii=False)) + "\n")

    def say(self, line: str) -> None:
        """A one-line report for people; stored text in it is shown literally."""
        self.out.write(render.one_line(line) + "\n")

    @property
    def location(self) -> str | None:
        """The store the command names (``--store``, else ``$MEMEX_STORE``), if any."""
        return self.args.store or os.environ.get("MEMEX_STORE") or None

    def whole_store(self, what: str) -> None:
        """Refuse ``--tenant`` for a command that covers every tenant of the store."""
        if self.args.tenant is not None:
            raise ValidationError(f"{what} every tenant of the store; drop --tenant")

    def on_server(self) -> bool:
        """Whether the command names a memex server rather than a store."""
        from memex.core.locations import is_memex_url

        return is_memex_url(self.location)

    def local_only(self) -> None:
        """Refuse a memex server for a command that works on a store's own files."""
        if self.on_server():
            raise ValidationError(
                f"memex {self.args.command} works on a local store only, "
                f"not on a memex server ({self.location})"
            )

    @contextmanager
    def memories(self, **options: Any) -> Iterator[Memex | Client]:
        """The memories the command works on: a memex server's (through ``Client``; the
        API key decides the tenant), else the local store's, as ``store`` opens it."""
        if not self.on_server():
            with self.store(**options) as mx:
                yield mx
            return
        from memex.client.sync import Client

        if self.args.tenant is not None:
            raise ValidationError("on a memex server the API key decides the tenant; drop --tenant")
        if self.args.read_only:
            raise ValidationError(
                "--read-only opens a local store; on a memex server, use a read_only key"
            )
        with Client(str(self.location)) as client:
            yield client

    @contextmanager
    def store(self, **options: Any) -> Iterator[Memex]:
        """The local store the options name, opened for the command's tenant."""
        from memex.service import Memex

        self.local_only()
        location = self.location
        tenant = options.pop("tenant", self.args.tenant)
        if self.args.read_only:
            options["read_only"] = True
        if OPENER is not None:  # in the warm process: stores stay open between commands
            with OPENER(location, tenant, options) as kept:
                yield kept
            return
        with Memex.open(location, tenant=tenant, **options) as mx:
            yield mx

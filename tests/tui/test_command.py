"""``memex tui`` on the command line: its options, and a server's rules, as other commands."""

from __future__ import annotations

import pytest

from memex.interfaces.cli.app import run
from memex.interfaces.cli.parser import parse


def test_the_options_fill_the_selection() -> None:
    args = parse(["tui", "--kind", "fact", "-t", "ops", "--since", "2024-01-01", "--user", "bob"])
    assert (args.kinds, args.tags, args.since, args.user) == (
        ["fact"],
        ["ops"],
        "2024-01-01",
        "bob",
    )


def test_on_a_server_the_key_decides_the_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tui", "--store", "http://127.0.0.1:9", "--tenant", "other"]) == 2
    assert "drop --tenant" in capsys.readouterr().err

"""``memex admin quota``: settings round-trip through the command line and are what the
service (and so a server) reads; bad values are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run_cli

from memex import Memex
from memex.core.limits import Limit


def test_quota_set_and_show_round_trip(tmp_path: Path) -> None:
    store = str(tmp_path / "m.db")
    assert run_cli(["admin", "tenant", "create", "acme", "--store", store]).exit_code == 0
    shown = run_cli(["admin", "quota", "show", "--tenant", "acme", "--store", store, "--json"])
    report = json.loads(shown.stdout)
    assert report["defaults"] is True
    assert report["quotas"]["memories"] == {"hard": 10000, "soft": 8000, "used": 0}
    done = run_cli(
        ["admin", "quota", "set", "--tenant", "acme", "--store", store, "--memories", "20000",
         "--memories-soft", "15000", "--storage-mb", "50", "--users", "none"]
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "memories        0     15000  20000" in done.stdout
    with Memex.open(store) as mx:
        quotas = mx.quota("acme").quotas
    assert (quotas.memories, quotas.storage_mb, quotas.users) == (
        Limit(20000, 15000),
        Limit(50, 50),
        Limit(None, 4),
    )
    again = run_cli(["admin", "quota", "set", "--tenant", "acme", "--store", store, "--reset"])
    assert again.exit_code == 0 and "(defaults;" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memories", "-1"], "--memories takes a whole number >= 0 or none"),
        (["--memories", "10", "--memories-soft", "20"], "soft limit (20) above its hard one"),
        (["--tenant", "nobody", "--users", "3"], "no tenant 'nobody'"),
    ],
)
def test_quota_set_refuses(tmp_path: Path, args: list[str], message: str) -> None:
    store = str(tmp_path / "m.db")
    run_cli(["admin", "tenant", "create", "acme", "--store", store])
    base = ["admin", "quota", "set", "--store", store]
    done = run_cli([*base, *args] if "--tenant" in args else [*base, "--tenant", "acme", *args])
    assert done.exit_code != 0
    assert done.stderr.strip().splitlines() == [f"error: {message}"] or message in done.stderr
    with Memex.open(store) as mx:
        assert mx.quota("acme").defaults

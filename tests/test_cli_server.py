"""The command line against a memex server (``--store http://...`` and ``MEMEX_API_KEY``):
the memory commands work as on a local store, with the same output; commands on a
store's own files refuse a server; a missing or wrong key is one line and exit 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import Result, run_cli
from memexserver import MemexServer

from memex import Memex
from memex.errors import ConfigError
from memex.interfaces.cli import warm


@pytest.fixture
def tenant(memex_server: MemexServer) -> tuple[str, str, dict[str, str]]:
    """The server's URL, a new tenant and the environment of its owner."""
    name, key = memex_server.new_tenant()
    return memex_server.url, name, {"MEMEX_API_KEY": key}


def elsewhere(line: str) -> dict[str, object]:
    """An exported record but its tenant: what an import into another tenant keeps."""
    record: dict[str, object] = json.loads(line)
    record["scope"] = {k: v for k, v in record["scope"].items() if k != "tenant"}  # type: ignore[attr-defined]
    return record


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_memory_commands_on_a_server(
    tenant: tuple[str, str, dict[str, str]], tmp_path: Path
) -> None:
    url, name, env = tenant

    def memex(*args: str, stdin: str | None = None) -> Result:
        return run_cli(["--store", url, *args], stdin=stdin, env=env)

    made = json.loads(
        ok(memex("remember", "Deploys happen on Fridays", "--kind", "fact", "--json"))
    )
    mid = made["id"]
    assert ok(memex("remember", "Bob is allergic to peanuts", "-t", "health")).startswith(
        "remembered "
    )
    assert "Deploys happen on Fridays" in ok(memex("recall", "when do we deploy"))
    hits = json.loads(ok(memex("recall", "peanuts", "--mode", "lexical", "--json")))
    assert [h["memory"]["content"] for h in hits] == ["Bob is allergic to peanuts"]
    assert json.loads(ok(memex("get", mid, "--json")))["content"] == "Deploys happen on Fridays"
    listed = json.loads(ok(memex("list", "--json")))
    assert [m["content"] for m in listed["items"]] == [
        "Bob is allergic to peanuts",
        "Deploys happen on Fridays",
    ]
    assert "version 2" in ok(memex("update", mid, "--content", "Deploys happen on Thursdays"))
    stats = json.loads(ok(memex("stats", "--json")))
    assert (stats["memories"], stats["path"]) == (2, url)
    context = memex("context", "deploys", "--budget", "200")
    assert "Thursdays" in ok(context) and "tokens" in context.stderr
    assert memex("get", "0193aaaa-0000-7000-8000-000000000000").exit_code == 1

    # the export read back into a local store shows the same as the server
    exported = ok(memex("export", "--all"))
    assert len(exported.splitlines()) == 2
    copy = tmp_path / "copy.jsonl"
    assert ok(memex("export", "--all", "-o", str(copy))).startswith("exported 2 memories")
    assert copy.read_text() == exported
    local = ["--store", str(tmp_path / "local.db"), "--tenant", name]
    assert ok(run_cli([*local, "import", str(copy)])) == "imported 2 memories\n"
    for command in (["get", mid], ["history", mid], ["list"]):
        assert ok(run_cli([*local, *command])) == ok(memex(*command))
    assert ok(memex("forget", mid)) == f"forgot {mid}\n"
    assert ok(memex("forget", mid, "--purge")) == f"purged {mid}\n"


def test_import_into_a_server_tenant(memex_server: MemexServer, tmp_path: Path) -> None:
    url = memex_server.url
    _, first = memex_server.new_tenant()
    _, second = memex_server.new_tenant()
    source = {"MEMEX_API_KEY": first}
    for text in ("one \u2028 line separator", "two", "three"):
        ok(run_cli(["--store", url, "remember", text], env=source))
    exported = ok(run_cli(["--store", url, "export", "--all"], env=source))
    target = {"MEMEX_API_KEY": second}
    imported = run_cli(["--store", url, "import", "-"], stdin=exported, env=target)
    assert ok(imported) == "imported 3 memories\n"
    again = ok(run_cli(["--store", url, "export", "--all"], env=target))
    # records end at "\n" only: the first holds a U+2028, which splitlines() would split at
    assert [elsewhere(line) for line in again.split("\n")[:-1]] == [
        elsewhere(line) for line in exported.split("\n")[:-1]
    ]
    bad = run_cli(["--store", url, "import", "-"], stdin='{"content": "x"}\nnot json\n', env=target)
    assert bad.exit_code == 2 and bad.stderr.startswith("error: line 2: invalid JSON")
    stats = json.loads(ok(run_cli(["--store", url, "stats", "--json"], env=target)))
    assert stats["memories"] == 3  # nothing of the refused import


@pytest.mark.parametrize(
    "command",
    [
        ["backup", "copy.db"],
        ["restore", "copy.db"],
        ["reindex"],
        ["expire"],
        ["index"],
        ["unsupersede", "0193aaaa-0000-7000-8000-000000000000"],
        ["quickstart"],
        ["admin", "tenant", "list"],
        ["serve", "--port", "0"],
    ],
)
def test_store_file_commands_refuse_a_server(command: list[str]) -> None:
    url = "http://127.0.0.1:9"  # refused before any connection is tried
    done = run_cli(["--store", url, *command])
    assert done.exit_code == 2
    assert done.stderr == (
        f"error: memex {command[0]} works on a local store only, not on a memex server ({url})\n"
    )


def test_server_options_that_make_no_sense() -> None:
    url = "http://127.0.0.1:9"
    tenant = run_cli(["--store", url, "--tenant", "acme", "list"])
    assert tenant.exit_code == 2 and "the API key decides the tenant" in tenant.stderr
    read_only = run_cli(["--store", url, "--read-only", "list"])
    assert read_only.exit_code == 2 and "read_only key" in read_only.stderr


def test_missing_or_wrong_key(memex_server: MemexServer) -> None:
    url = memex_server.url
    missing = run_cli(["--store", url, "list"])
    assert missing.exit_code == 3
    assert missing.stderr.count("\n") == 1 and "MEMEX_API_KEY" in missing.stderr
    wrong = "mxk_nosuchkey_" + "x" * 43
    refused = run_cli(["--store", url, "list"], env={"MEMEX_API_KEY": wrong})
    assert refused.exit_code == 3 and refused.stderr.count("\n") == 1
    assert wrong not in refused.output


def test_a_server_that_is_down() -> None:
    done = run_cli(["--store", "http://127.0.0.1:9", "get", "x"], env={"MEMEX_API_KEY": "k"})
    assert done.exit_code == 3
    assert done.stderr == (
        "error: cannot reach the memex server at http://127.0.0.1:9: connection refused\n"
    )


def test_a_server_url_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"memex server, not a store: connect with memex.Client"):
        Memex.open("http://127.0.0.1:8787")
    done = run_cli(["migrate", "https://memex.example.org", str(tmp_path / "x.db")])
    assert done.exit_code == 3 and "memex.Client" in done.stderr


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["--store", "http://h:1", "recall", "q"], {}, True),
        (["recall", "q", "--store=https://h"], {}, True),
        (["-s", "http://h", "get", "x"], {}, True),
        (["-shttp://h", "get", "x"], {}, True),
        (["--sto", "http://h", "get", "x"], {}, True),
        (["get", "x"], {"MEMEX_STORE": "HTTP://h"}, True),
        (["--store", "team.db", "recall", "q"], {"MEMEX_STORE": "http://h"}, False),
        (["recall", "q"], {}, False),
        (["recall", "http://h"], {}, False),
    ],
)
def test_the_warm_process_leaves_servers_alone(
    argv: list[str], env: dict[str, str], expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert warm.on_server(argv) is expected

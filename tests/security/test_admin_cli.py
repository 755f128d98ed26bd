"""``memex admin`` end to end: every command with and without --json, its exit codes, and
that a key's secret is shown once and never again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clirun import Result, run_cli

from memex import Memex
from memex.security.keys import hash_key


def admin(store: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    result = run_cli(["admin", *args, "--store", str(store)], env=env)
    assert "Traceback" not in result.output
    return result


def ok_json(store: Path, *args: str) -> Any:
    result = admin(store, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "memex.db"
    assert admin(path, "tenant", "create", "acme").exit_code == 0
    return path


def test_tenants(store: Path) -> None:
    made = ok_json(store, "tenant", "create", "zeta", "--allow", "10.0.0.1", "2001:db8::/32")
    assert made["name"] == "zeta" and made["allow"] == ["10.0.0.1/32", "2001:db8::/32"]
    listed = ok_json(store, "tenant", "list")
    assert [t["name"] for t in listed["tenants"]] == ["acme", "zeta"]
    text = admin(store, "tenant", "list").stdout
    assert "acme" in text and "anywhere" in text and "10.0.0.1/32, 2001:db8::/32" in text
    assert ok_json(store, "tenant", "allow", "zeta")["allow"] == []
    assert ok_json(store, "tenant", "allow", "zeta", "192.168.0.0/16")["allow"] == [
        "192.168.0.0/16"
    ]
    assert "exists" in error(admin(store, "tenant", "create", "zeta"), 3)
    assert "CIDR" in error(admin(store, "tenant", "create", "new", "--allow", "10.0.0.0/40"), 2)
    assert "name must be" in error(admin(store, "tenant", "create", "bad name"), 2)
    error(admin(store, "tenant", "allow", "ghost"), 1)
    assert [t["name"] for t in ok_json(store, "tenant", "list")["tenants"]] == ["acme", "zeta"]


@pytest.mark.parametrize("kind", ["user", "project"])
def test_users_and_projects(store: Path, kind: str) -> None:
    made = ok_json(store, kind, "create", "bob", "--tenant", "acme")
    assert (made["tenant"], made["name"]) == ("acme", "bob")
    # the global option may come before the command too
    run_cli(["--tenant", "acme", "admin", kind, "create", "alice", "--store", str(store)])
    listed = ok_json(store, kind, "list", "--tenant", "acme")
    assert [u["name"] for u in listed[f"{kind}s"]] == ["alice", "bob"]
    assert "bob" in admin(store, kind, "list", "--tenant", "acme").stdout
    error(admin(store, kind, "create", "bob", "--tenant", "acme"), 3)
    error(admin(store, kind, "create", "carol", "--tenant", "ghost"), 1)
    error(admin(store, kind, "list", "--tenant", "ghost"), 1)
    error(admin(store, kind, "create", "-bad", "--tenant", "acme"), 2)
    # without --tenant: the store's own tenant (made on first use)
    assert ok_json(store, kind, "create", "dave")["tenant"] == "default"
    env = {"MEMEX_TENANT": "acme"}
    assert admin(store, kind, "list", "--json", env=env).stdout.count('"name"') == 2


def test_a_new_key_is_shown_once_and_listed_without_its_secret(store: Path) -> None:
    ok_json(store, "user", "create", "bob", "--tenant", "acme")
    ok_json(store, "project", "create", "web", "--tenant", "acme")
    made = admin(
        store,
        "key",
        "create",
        "--tenant",
        "acme",
        "--user",
        "bob",
        "--project",
        "web",
        "--role",
        "read_write",
        "--name",
        "Bob's laptop",
        "--expires",
        "30d",
        "--allow",
        "10.0.0.0/8",
    )
    assert made.exit_code == 0, made.output
    [secret] = made.stdout.splitlines()
    assert secret.startswith("mxk_") and "shown only once" in made.stderr
    issued = ok_json(store, "key", "create", "--tenant", "acme", "--role", "admin")
    assert issued["key"].startswith(issued["prefix"] + "_") and issued["role"] == "admin"
    assert issued["tenant"] == "acme" and "hash" not in issued
    listed = ok_json(store, "key", "list", "--tenant", "acme")["keys"]
    first = listed[0]
    assert (first["user"], first["project"], first["role"], first["name"]) == (
        "bob",
        "web",
        "read_write",
        "Bob's laptop",
    )
    assert first["allow"] == ["10.0.0.0/8"]
    expires = datetime.fromisoformat(first["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    text = admin(store, "key", "list").stdout
    for whole in (secret, issued["key"]):
        shown = [admin(store, "key", "list").stdout, text, json.dumps(listed)]
        assert all(whole not in out and whole.split("_")[2] not in out for out in shown)
        assert all(hash_key(whole) not in out for out in shown)
    assert first["id"] in text and "Bob's laptop" in text and "active" in text


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--role", "superuser"], 2),
        ([], 2),  # --role is required
        (["--role", "owner", "--expires", "someday"], 2),
        (["--role", "owner", "--expires", "2001-01-01"], 2),
        (["--role", "owner", "--allow", "not-a-network"], 2),
        (["--role", "owner", "--user", "nobody"], 1),
        (["--role", "owner", "--project", "nothing"], 1),
        (["--role", "owner", "--tenant", "ghost"], 1),
    ],
)
def test_bad_key_requests(store: Path, args: list[str], code: int) -> None:
    error(admin(store, "key", "create", "--tenant", "acme", *args), code)
    assert ok_json(store, "key", "list")["keys"] == []


def test_revoke_and_rotate(store: Path) -> None:
    old = ok_json(store, "key", "create", "--tenant", "acme", "--role", "read_only")
    rotated = admin(store, "key", "rotate", old["id"], "--grace", "2h")
    assert rotated.exit_code == 0, rotated.output
    [new_secret] = rotated.stdout.splitlines()
    assert "keeps working until" in rotated.stderr and "shown only once" in rotated.stderr
    keys = {k["id"]: k for k in ok_json(store, "key", "list")["keys"]}
    new_id = new_secret.split("_")[1]
    assert keys[old["id"]]["replaced_by"] == new_id and keys[new_id]["role"] == "read_only"
    left = datetime.fromisoformat(keys[old["id"]]["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < left <= timedelta(hours=2)
    assert "rotated" in admin(store, "key", "list").stdout
    again = ok_json(store, "key", "rotate", new_id)  # default grace: 1h
    assert again["replaces"] == new_id and again["key"].startswith("mxk_")
    assert again["role"] == "read_only" and again["replaced_expires_at"] is not None
    revoked = ok_json(store, "key", "revoke", again["id"])
    assert revoked["id"] == again["id"] and revoked["revoked_at"] is not None
    assert "revoked key" in admin(store, "key", "revoke", again["id"]).stdout
    assert "revoked" in admin(store, "key", "list", "--tenant", "acme").stdout
    error(admin(store, "key", "revoke", "nosuchkey"), 1)
    error(admin(store, "key", "rotate", "nosuchkey"), 1)
    error(admin(store, "key", "rotate", old["id"], "--grace", "soon"), 2)
    error(admin(store, "key", "rotate", again["id"]), 3)  # revoked: make a new one instead
    allowed = ok_json(store, "key", "allow", new_id, "2001:db8::/48")
    assert allowed["allow"] == ["2001:db8::/48"]
    error(admin(store, "key", "allow", "nosuchkey"), 1)


def test_keys_made_on_the_command_line_open_the_store_for_the_server(store: Path) -> None:
    issued = ok_json(store, "key", "create", "--tenant", "acme", "--role", "admin")
    with Memex.open(store) as mx:
        principal = mx.admin.authenticator().authenticate(f"Bearer {issued['key']}", None, [])
        assert (principal.tenant, principal.role.value) == ("acme", "admin")
        ok_json(store, "key", "revoke", issued["id"])  # from another handle, as another process
        with pytest.raises(Exception, match="revoked"):
            mx.admin.authenticator().authenticate(f"Bearer {issued['key']}", None, [])


def test_a_read_only_store_lists_but_does_not_change(store: Path) -> None:
    error(admin(store, "tenant", "create", "zeta", "--read-only"), 3)
    assert [t["name"] for t in ok_json(store, "tenant", "list", "--read-only")["tenants"]] == [
        "acme"
    ]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["tenant"],
        ["key"],
        ["key", "revoke"],
        ["user", "create"],
        ["thing", "list"],
        ["tenant", "delete", "acme"],
    ],
)
def test_usage_errors(store: Path, args: list[str]) -> None:
    error(admin(store, *args), 2)

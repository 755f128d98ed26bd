"""``memex admin encryption`` on a real store file: list, encrypt a plain tenant, rotate
the master key; and the one-line error of an encrypted store opened without its key."""

from __future__ import annotations

import json
import os
from pathlib import Path

from clirun import run_cli


def test_encrypt_rotate_and_read_with_the_new_key(tmp_path: Path) -> None:
    store = str(tmp_path / "m.db")
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    old.write_text(os.urandom(32).hex())
    new.write_text(os.urandom(32).hex())
    with_old = {"MEMEX_MASTER_KEY_FILE": str(old)}
    made = run_cli(["remember", "plain before the key", "--json", "--store", store])
    memory_id = json.loads(made.stdout)["id"]

    listed = run_cli(["admin", "encryption", "list", "--json", "--store", store], env=with_old)
    assert json.loads(listed.stdout) == {"encrypted tenants": []}
    done = run_cli(["admin", "encryption", "encrypt", "--json", "--store", store], env=with_old)
    assert json.loads(done.stdout) == {"tenant": "default", "sealed": 1}

    refused = run_cli(["get", memory_id, "--store", store])
    assert refused.exit_code != 0
    assert refused.stderr.count("\n") == 1
    assert "is encrypted" in refused.stderr and "Traceback" not in refused.stderr

    rotate = ["admin", "encryption", "rotate", "--new-key-file", str(new), "--store", store]
    assert run_cli(rotate, env=with_old).exit_code == 0
    with_new = {"MEMEX_MASTER_KEY_FILE": str(new)}
    got = run_cli(["get", memory_id, "--json", "--store", store], env=with_new)
    assert json.loads(got.stdout)["content"] == "plain before the key"
    stale = run_cli(["get", memory_id, "--store", store], env=with_old)
    assert stale.exit_code != 0
    assert "wrapped by master key" in stale.stderr


def test_a_bad_master_key_is_a_config_error(tmp_path: Path) -> None:
    env = {"MEMEX_MASTER_KEY": "too short"}
    result = run_cli(["stats", "--store", str(tmp_path / "m.db")], env=env)
    assert result.exit_code != 0
    assert "must be 32 bytes" in result.stderr
    assert "too short" not in result.output  # the key's text is never echoed


def test_encrypt_rotate_and_read_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    old.write_text(os.urandom(32).hex())
    new.write_text(os.urandom(32).hex())
    with_old, with_new = {"MEMEX_MASTER_KEY_FILE": str(old)}, {"MEMEX_MASTER_KEY_FILE": str(new)}
    store = ["--store", postgres_url]
    made = run_cli(["remember", "plain before the key", "--json", *store])
    memory_id = json.loads(made.stdout)["id"]
    done = run_cli(["admin", "encryption", "encrypt", "--json", *store], env=with_old)
    assert json.loads(done.stdout) == {"tenant": "default", "sealed": 1}
    listed = run_cli(["admin", "encryption", "list", "--json", *store], env=with_old)
    assert [t["tenant"] for t in json.loads(listed.stdout)["encrypted tenants"]] == ["default"]

    refused = run_cli(["get", memory_id, *store])
    assert refused.exit_code != 0 and refused.stderr.count("\n") == 1
    assert "is encrypted" in refused.stderr and "Traceback" not in refused.stderr

    rotate = ["admin", "encryption", "rotate", "--new-key-file", str(new), *store]
    assert run_cli(rotate, env=with_old).exit_code == 0
    got = run_cli(["get", memory_id, "--json", *store], env=with_new)
    assert json.loads(got.stdout)["content"] == "plain before the key"
    stale = run_cli(["get", memory_id, *store], env=with_old)
    assert stale.exit_code != 0 and "wrapped by master key" in stale.stderr

"""The audit trail on real stores: tampering by raw SQL is found and named (SQLite file
and PostgreSQL), a write that fails leaves no entry, entries name the actor and never
content, and the chain is read back through every interface (``Memex``, the command
line, HTTP and the client)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from clirun import run_cli

from memex import Memex, ScopeError, ValidationError
from memex.actor import acting_as
from memex.core.audit import Actor, AuditEvent, Problem, Tamper

EDITS: dict[str, tuple[list[str], Problem]] = {
    "edit": (["UPDATE audit_entries SET action = 'memory.forget' WHERE seq = 3"],
             Problem(3, Tamper.EDITED)),
    "delete": (["DELETE FROM audit_entries WHERE seq = 3"], Problem(3, Tamper.DELETED)),
    "insert": (
        ["INSERT INTO audit_entries SELECT tenant, 7, at, key_id, {user}, action, "
         "resource_type, 'forged', outcome, client, user_agent, count, detail, prev_hash, "
         "hash FROM audit_entries WHERE seq = 6"],
        Problem(7, Tamper.INSERTED),
    ),
    "reorder": (
        ["UPDATE audit_entries SET seq = -2 WHERE seq = 2",
         "UPDATE audit_entries SET seq = 2 WHERE seq = 5",
         "UPDATE audit_entries SET seq = 5 WHERE seq = -2"],
        Problem(2, Tamper.REORDERED),
    ),
    "truncate": (["DELETE FROM audit_entries WHERE seq > 4"], Problem(5, Tamper.TRUNCATED)),
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "audited.db")


def tamper(location: str, statements: list[str]) -> None:
    """Run ``statements`` on the store's database as someone with its files or its
    owner's password would (on PostgreSQL, lifting the row-level security first)."""
    if location.startswith("postgresql"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn, conn.transaction():
            conn.execute("ALTER TABLE audit_entries NO FORCE ROW LEVEL SECURITY")
            conn.execute("ALTER TABLE audit_entries DISABLE ROW LEVEL SECURITY")
            for statement in statements:
                conn.execute(statement.format(user="user_name"))
            conn.execute("ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY")
            conn.execute("ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY")
        return
    conn = sqlite3.connect(location, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement.format(user="user_id"))
        conn.execute("COMMIT")
    finally:
        conn.close()


def six_entries(location: str) -> None:
    with Memex.open(location) as mx:
        for i in range(6):
            mx.remember(f"confidential note {i}")


@pytest.mark.parametrize("how", list(EDITS))
def test_tampering_by_raw_sql_is_found_and_named(location: str, how: str) -> None:
    six_entries(location)
    with Memex.open(location) as mx:
        assert [v.ok for v in mx.audit_verify()] == [True]
    statements, expected = EDITS[how]
    tamper(location, statements)
    with Memex.open(location) as mx:
        [found] = mx.audit_verify("default")
    assert not found.ok
    assert found.problems[0] == expected


def test_the_memex_role_cannot_change_entries_on_postgres(postgres_url: str) -> None:
    import psycopg

    six_entries(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if superuser.fetchone() == (True,):
            pytest.skip("the test server's role is a superuser, which row-level security spares")
        with conn.transaction():
            conn.execute("SELECT set_config('memex.tenant', 'default', true)")
            changed = conn.execute("UPDATE audit_entries SET action = 'x'").rowcount
            removed = conn.execute("DELETE FROM audit_entries").rowcount
    assert (changed, removed) == (0, 0)
    with Memex.open(postgres_url) as mx:
        assert mx.audit_verify()[0].ok


def test_the_command_line_names_the_tampered_entry(tmp_path: Path) -> None:
    path = str(tmp_path / "cli.db")
    six_entries(path)
    assert run_cli(["--store", path, "audit", "verify"]).exit_code == 0
    tamper(path, EDITS["delete"][0])
    result = run_cli(["--store", path, "audit", "verify", "--json"])
    assert result.exit_code == 3
    assert "entry 3: deleted" in result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["ok"] is False
    assert verdict["chains"][0]["problems"][0] == {"seq": 3, "kind": "deleted"}


def test_a_failed_write_leaves_no_entry_and_none_holds_content(location: str) -> None:
    with Memex.open(location) as mx:
        kept = mx.remember("the vault code is 4711")
        with acting_as(Actor("k9", user="ana", client="203.0.113.9", user_agent="probe/1")):
            mx.update(kept.id, content="the vault code is 1234")
        with pytest.raises(ValidationError):  # refused: an id that exists
            mx.import_lines([json.dumps({"id": kept.id, "content": "again"})])
        mx.forget(kept.id)
        report = mx.audit_export()
    assert [e.action for e in report.entries] == [
        "memory.remember", "memory.update", "memory.forget",
    ]  # fmt: skip
    update = report.entries[1]
    assert (update.key_id, update.user, update.client, update.user_agent) == (
        "k9", "ana", "203.0.113.9", "probe/1",
    )  # fmt: skip
    assert report.entries[0].key_id.startswith("local")
    assert "vault" not in json.dumps(report.to_dict())
    assert report.summary["by_action_outcome"] == {
        "memory.forget/ok": 1, "memory.remember/ok": 1, "memory.update/ok": 1,
    }  # fmt: skip


def test_a_batch_is_one_entry_naming_how_many(tmp_path: Path) -> None:
    with Memex.open(tmp_path / "batch.db") as mx:
        made = mx.remember_many([{"content": f"item {i}"} for i in range(50)])
        mx.import_lines([json.dumps({"content": f"line {i}"}) for i in range(30)])
        [remembered, imported] = mx.audit_export().entries
    assert (remembered.action, remembered.count) == ("memory.remember", 50)
    assert made[0].id in remembered.detail and made[-1].id in remembered.detail
    assert (imported.action, imported.count) == ("memory.import", 30)


def test_a_scoped_handle_reaches_its_own_chain_only(tmp_path: Path) -> None:
    with Memex.open(tmp_path / "scoped.db") as mx:
        mx.scoped(tenant="acme").remember("acme's")
        mx.scoped(tenant="globex").remember("globex's")
        acme = mx.scoped(tenant="acme")
        assert [v.tenant for v in acme.audit_verify()] == ["acme"]
        assert {e.tenant for e in acme.audit_export().entries} == {"acme"}
        with pytest.raises(ScopeError):
            acme.audit_export(tenant="globex")
        with pytest.raises(ScopeError):
            acme.record_audit(AuditEvent("globex", "x", "route", Actor("k")))
        assert sorted(v.tenant for v in mx.audit_verify()) == ["acme", "globex"]


def test_export_writes_json_lines_with_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    six_entries(str(path))
    out = tmp_path / "report.jsonl"
    result = run_cli(["--store", str(path), "audit", "export", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines[:-1]] == [1, 2, 3, 4, 5, 6]
    report = lines[-1]["report"]
    assert report["summary"]["by_outcome"] == {"ok": 6}
    assert report["heads"][0]["seq"] == 6
    assert json.loads(result.stdout)["summary"]["entries"] == 6
    bad = run_cli(["--store", str(path), "audit", "export", "--since", "yesterday-ish"])
    assert bad.exit_code == 2

"""The directory in whole-store copies: a migration between backends, a PostgreSQL
backup and a SQLite restore keep keys working (or, restored, as the backup had them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clirun import run_cli

from memex import ConfigError, ConflictError, Memex, Settings, ValidationError
from memex.core.audit import DENIED, STORE_CHAIN, Actor, AuditEvent, AuditTrail, verify
from memex.core.identity import Project, Role, Tenant, User
from memex.errors import AuthenticationError, PermissionDeniedError
from memex.security.auth import Authenticator
from memex.security.keys import issue_key
from memex.storage.base import Store
from memex.storage.directory import Directory
from memex.storage.open import open_store

T0 = datetime(2025, 5, 1, 8, 30, 0, 250001, tzinfo=UTC)


def everything(d: Directory) -> tuple[object, ...]:
    tenants = d.tenants()
    users = [d.users(t.name) for t in tenants]
    return tenants, users, [d.projects(t.name) for t in tenants], d.keys(None)


def opened(location: str | Path, **settings: object) -> Store:
    return open_store(location, Settings(**settings))  # type: ignore[arg-type]


def fill(location: str | Path) -> dict[str, str]:
    """A store with memories and a directory; returns the keys issued (name -> secret)."""
    with Memex.open(location) as mx:
        mx.remember("the launch is on Tuesday")
        mx.scoped(tenant="acme").remember("acme ships rockets", scope={"project": "rockets"})
    store = opened(location)
    try:
        d = store.directory()
        d.add_tenant(Tenant("default", T0))
        d.add_tenant(Tenant("acme", T0 + timedelta(seconds=1), allow=("10.0.0.0/8",)))
        d.add_user(User("acme", "alice", T0))
        d.add_project(Project("acme", "rockets", T0))
        secrets: dict[str, str] = {}
        issued = {
            "owner": issue_key("default", Role.OWNER, now=T0),
            "alice": issue_key(
                "acme", Role.READ_ONLY, user="alice", project="rockets", name="reader", now=T0
            ),
            "revoked": issue_key("acme", Role.ADMIN, now=T0),
            "narrow": issue_key("acme", Role.READ_WRITE, allow=("10.1.0.0/16",), now=T0),
        }
        for name, (record, secret) in issued.items():
            d.add_key(record)
            secrets[name] = secret
        revoked = issued["revoked"][0]
        d.set_key(revoked.with_changes(revoked_at=T0 + timedelta(hours=1)))
        d.touch_keys({issued["alice"][0].id: T0 + timedelta(minutes=5)})
        who = Actor("local:ops", client="127.0.0.1")
        store.audit().append(AuditEvent("acme", "user.create", "user", who, "alice"))
        store.audit().append(AuditEvent(STORE_CHAIN, "read", "route", who, outcome=DENIED))
        return secrets
    finally:
        store.close()


def check_keys_work(location: str | Path, secrets: dict[str, str]) -> None:
    """Each key issued on the source does on ``location`` what it did there."""
    store = opened(location, read_only=True)
    try:
        auth = Authenticator(store.directory(), "default")
        owner = auth.authenticate(f"Bearer {secrets['owner']}", "127.0.0.1")
        assert (owner.tenant, owner.role, owner.home) == ("default", Role.OWNER, True)
        alice = auth.authenticate(f"Bearer {secrets['alice']}", "10.2.3.4")
        assert (alice.tenant, alice.user, alice.project) == ("acme", "alice", "rockets")
        assert alice.role is Role.READ_ONLY
        with pytest.raises(PermissionDeniedError):  # the tenant's allowlist came along
            auth.authenticate(f"Bearer {secrets['alice']}", "192.168.0.1")
        with pytest.raises(PermissionDeniedError):  # and the key's own
            auth.authenticate(f"Bearer {secrets['narrow']}", "10.2.3.4")
        assert auth.authenticate(f"Bearer {secrets['narrow']}", "10.1.0.9").role is Role.READ_WRITE
        with pytest.raises(AuthenticationError, match="revoked"):
            auth.authenticate(f"Bearer {secrets['revoked']}", "10.2.3.4")
        forged = secrets["owner"][:-4] + "aaaa"
        with pytest.raises(AuthenticationError, match="not known"):
            auth.authenticate(f"Bearer {forged}", "127.0.0.1")
    finally:
        store.close()


def chains_of(location: str | Path) -> list[AuditTrail]:
    """Every audit chain of the store, each intact."""
    store = opened(location, read_only=True)
    try:
        chains = [store.audit().trail(h.tenant) for h in store.audit().heads()]
    finally:
        store.close()
    assert all(verify(c.entries, c.head).ok for c in chains)
    return chains


def directory_of(location: str | Path) -> tuple[object, ...]:
    store = opened(location, read_only=True)
    try:
        return everything(store.directory())
    finally:
        store.close()


def test_keys_keep_working_after_a_move_to_postgres_and_back(
    tmp_path: Path, postgres_url: str
) -> None:
    first, last = tmp_path / "first.db", tmp_path / "last.db"
    secrets = fill(first)
    original = directory_of(first)
    chains = chains_of(first)
    assert {c.tenant for c in chains} >= {"acme", STORE_CHAIN}
    there = Memex.migrate(first, postgres_url)
    assert there.ok, there.mismatches()
    assert there.directory.source == 2 + 1 + 1 + 4 and there.directory.missing == 0
    assert directory_of(postgres_url) == original  # hashes, times and last uses too
    assert chains_of(postgres_url) == chains  # the audit chains, entry for entry
    check_keys_work(postgres_url, secrets)
    again = Memex.migrate(first, postgres_url)  # a second run finds it all there
    assert again.ok and again.copied == 0
    back = Memex.migrate(postgres_url, last)
    assert back.ok and back.directory.target == 8
    assert directory_of(last) == original
    assert chains_of(last) == chains
    check_keys_work(last, secrets)
    # A backup of the PostgreSQL store is a store file whose keys work too.
    with Memex.open(postgres_url) as mx:
        mx.backup(tmp_path / "pg-backup.db")
    assert directory_of(tmp_path / "pg-backup.db") == original
    assert chains_of(tmp_path / "pg-backup.db") == chains
    check_keys_work(tmp_path / "pg-backup.db", secrets)


def test_a_target_directory_holding_other_entries_is_refused_unless_forced(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    secrets = fill(source)
    store = opened(target)
    try:
        d = store.directory()
        d.add_tenant(Tenant("acme", T0 + timedelta(seconds=1)))  # another allowlist
        d.add_tenant(Tenant("initech", T0))  # only the target's
        own, _ = issue_key("initech", Role.OWNER, now=T0)
        d.add_key(own)
        held = everything(d)
    finally:
        store.close()
    with pytest.raises(ConflictError, match="tenant 'acme'"):
        Memex.migrate(source, target)
    assert directory_of(target) == held  # nothing was written
    with Memex.open(target) as mx:
        assert mx.stats().memories == 0
    forced = Memex.migrate(source, target, force=True)
    assert forced.ok, forced.mismatches()
    assert (forced.directory.missing, forced.directory.extra) == (0, 2)
    found = directory_of(target)
    original = directory_of(source)
    assert found[0] == sorted([*original[0], Tenant("initech", T0)], key=lambda t: t.name)  # type: ignore[misc]
    assert {k.id for k in found[3]} == {k.id for k in original[3]} | {own.id}  # type: ignore[attr-defined]
    check_keys_work(target, secrets)
    result = run_cli(["--json", "migrate", str(source), str(target)])
    assert result.exit_code == 3, result.stderr  # the target's own entries: refused again
    assert "initech" in result.stderr and "--force" in result.stderr
    result = run_cli(["migrate", "--force", str(source), str(target)])
    assert result.exit_code == 0, result.stderr
    assert "directory: 8/8 entries (tenants, users, projects, keys), 2 only in the target, ok" in (
        result.stdout.splitlines()
    )


def test_a_directory_entry_no_call_can_change_is_refused_even_forced(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    fill(source)
    store = opened(target)
    try:
        store.directory().add_tenant(Tenant("acme", T0 + timedelta(seconds=1)))
        store.directory().add_user(User("acme", "alice", T0 + timedelta(days=1)))
    finally:
        store.close()
    with pytest.raises(ConflictError, match="user 'alice' of tenant 'acme'"):
        Memex.migrate(source, target, force=True)
    assert [u.created_at for u in directory_of(target)[1][0]] == [T0 + timedelta(days=1)]  # type: ignore[index]


def test_the_command_reports_the_directory_in_json(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    fill(source)
    result = run_cli(["--json", "migrate", str(source), str(target)])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"]
    assert report["directory"] == {
        "ok": True, "problem": None, "source": 8, "target": 8, "missing": 0, "extra": 0,
    }  # fmt: skip


def test_a_restore_brings_back_the_backup_s_directory_to_every_process(tmp_path: Path) -> None:
    path = tmp_path / "st.db"
    secrets = fill(path)
    with Memex.open(path) as mx:
        mx.backup(tmp_path / "b.db")
    # After the backup: the reader key is revoked and a new key is issued.
    held = opened(path)  # a server's handle, kept open across the restore
    try:
        d = held.directory()
        alice = next(k for k in d.keys("acme") if k.user == "alice")
        d.set_key(alice.with_changes(revoked_at=T0))
        new, new_secret = issue_key("acme", Role.ADMIN, now=T0)
        d.add_key(new)
        auth = Authenticator(d, "default")
        assert auth.authenticate(f"Bearer {new_secret}", "10.0.0.1").key_id == new.id
        with pytest.raises(AuthenticationError, match="revoked"):
            auth.authenticate(f"Bearer {secrets['alice']}", "10.0.0.1")
        before = d.generation()
        assert Memex.restore(tmp_path / "b.db", path, force=True) == 2
        assert d.generation() > before
        # The same authenticator, with its cache: the directory is the backup's now.
        with pytest.raises(AuthenticationError, match="not known"):
            auth.authenticate(f"Bearer {new_secret}", "10.0.0.1")
        assert auth.authenticate(f"Bearer {secrets['alice']}", "10.0.0.1").user == "alice"
    finally:
        held.close()
    check_keys_work(path, secrets)


def test_a_restore_over_a_store_holding_only_keys_needs_force(tmp_path: Path) -> None:
    backup_source, path = tmp_path / "src.db", tmp_path / "st.db"
    fill(backup_source)
    with Memex.open(backup_source) as mx:
        mx.backup(tmp_path / "b.db")
    store = opened(path)
    try:
        store.directory().add_tenant(Tenant("default", T0))
        store.directory().add_key(issue_key("default", Role.OWNER, now=T0)[0])
    finally:
        store.close()
    held = directory_of(path)
    with pytest.raises(ValidationError, match="holds 0 memories and 1 API keys"):
        Memex.restore(tmp_path / "b.db", path)
    assert directory_of(path) == held
    assert Memex.restore(tmp_path / "b.db", path, force=True) == 2
    assert directory_of(path) == directory_of(backup_source)


def test_a_target_whose_audit_chain_went_otherwise_is_refused_unless_forced(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    fill(source)
    store = opened(target)
    try:
        store.audit().append(AuditEvent("acme", "user.create", "user", Actor("other"), "x"))
    finally:
        store.close()
    with pytest.raises(ConfigError, match="audit chain of 'acme'"):
        Memex.migrate(source, target)
    assert [len(c.entries) for c in chains_of(target)] == [1]  # nothing written
    assert Memex.migrate(source, target, force=True).ok
    acme = next(c for c in chains_of(target) if c.tenant == "acme")
    assert [e.key_id for e in acme.entries][:1] == ["other"]  # kept as it was
    assert acme.entries[-1].action == "audit.migrate"
    assert "source chain not copied" in acme.entries[-1].detail

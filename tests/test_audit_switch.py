"""The ``audit`` setting on real stores (SQLite file and PostgreSQL): on by default,
every kind of change and a refusal append entries; off, none of them does, what was
appended before stays and still verifies; the setting comes from the environment and
the TOML file like the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from memex import Memex
from memex.core.audit import DENIED, Actor, AuditEvent
from memex.settings import Settings

ALL_KINDS = [
    "memory.remember", "memory.remember", "memory.update", "memory.forget",
    "tenant.create", "user.create", "project.create", "key.create", "key.revoke",
    "quota.set", "route.refused",
]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "switch.db")


def every_kind_of_change(mx: Memex, tenant: str) -> None:
    """Memory writes (a batch among them), directory changes, a quota change and a
    refusal, in ``tenant``'s chain."""
    mx.remember("first")
    [kept, _] = mx.remember_many([{"content": "second"}, {"content": "third"}])
    mx.update(kept.id, content="second, revised")
    mx.forget(kept.id)
    admin = mx.admin
    admin.create_tenant(tenant)
    admin.create_user(tenant, "ana")
    admin.create_project(tenant, "alpha")
    issued = admin.create_key(tenant, "read_write")
    admin.revoke_key(issued.key.id)
    mx.set_quota(tenant, memories=1_000)
    mx.record_audit(AuditEvent(tenant, "route.refused", "route", Actor("k1"), "/v1/x", DENIED))


def actions(mx: Memex) -> list[str]:
    return [e.action for e in mx.audit_export().entries]


@pytest.mark.parametrize(("setting", "expected"), [(None, ALL_KINDS), (False, [])])
def test_off_appends_no_entry_and_on_is_the_default(
    location: str, setting: bool | None, expected: list[str]
) -> None:
    with Memex.open(location, tenant="acme", audit=setting) as mx:
        every_kind_of_change(mx, "acme")
        assert sorted(actions(mx)) == sorted(expected)
        assert all(v.ok for v in mx.audit_verify())


def test_turned_off_later_the_entries_made_before_stay_and_verify(location: str) -> None:
    with Memex.open(location, tenant="acme") as mx:
        mx.remember("kept while the trail was on")
    with Memex.open(location, tenant="acme", audit=False) as mx:
        mx.remember("not recorded")
        mx.record_audit(AuditEvent("acme", "route.refused", "route", Actor("k"), "/", DENIED))
        assert actions(mx) == ["memory.remember"]
        [verified] = mx.audit_verify()
        assert (verified.tenant, verified.ok) == ("acme", True)
    with Memex.open(location, tenant="acme") as mx:  # on again: the chain goes on
        mx.remember("recorded again")
        assert [e.seq for e in mx.audit_export().entries] == [1, 2]
        assert all(v.ok for v in mx.audit_verify())


@pytest.mark.parametrize(
    ("env", "toml", "expected"),
    [
        (None, None, True),
        ("0", None, False),
        ("false", None, False),
        ("off", None, False),
        ("1", None, True),
        (None, "audit = false", False),
        (None, "audit = true", True),
        ("1", "audit = false", True),  # the environment wins over the file
        ("0", "audit = true", False),
    ],
)
def test_the_setting_comes_from_the_environment_and_the_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    toml: str | None,
    expected: bool,
) -> None:
    if env is not None:
        monkeypatch.setenv("MEMEX_AUDIT", env)
    if toml is not None:
        (tmp_path / "config.toml").write_text(toml + "\n")
    assert Settings.load(tmp_path).audit is expected

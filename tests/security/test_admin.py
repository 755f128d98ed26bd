"""Administration on a real store: names, grants, rotation, revocation, the first owner
key, and what ``Memex.admin`` and ``Memex.for_principal`` hand out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex import ConflictError, Memex, NotFoundError, ScopeError, ValidationError
from memex.core.identity import Principal, Role
from memex.errors import AuthenticationError
from memex.security.admin import Admin

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def mx(tmp_path: Path) -> Iterator[Memex]:
    with Memex.open(tmp_path / "memex.db") as handle:
        yield handle


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def admin(mx: Memex, clock: Clock) -> Admin:
    made = Admin(mx.admin.directory, "default", clock=clock)
    made.create_tenant("acme")
    return made


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 129, "ünï", "a\x00", 5, None])
def test_names_follow_the_scope_rule(admin: Admin, name: object) -> None:
    for make in (
        lambda: admin.create_tenant(name),  # type: ignore[arg-type]
        lambda: admin.create_user("acme", name),  # type: ignore[arg-type]
        lambda: admin.create_project("acme", name),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError, match="name must be 1-128 characters"):
            make()
    assert [t.name for t in admin.tenants()] == ["acme"]
    assert admin.users("acme") == [] and admin.projects("acme") == []


def test_names_conflict_and_unknown_tenants_are_not_found(admin: Admin) -> None:
    assert admin.create_tenant("zeta", allow=["10.0.0.1", "10.0.0.0/8"]).allow == (
        "10.0.0.1/32",
        "10.0.0.0/8",
    )
    with pytest.raises(ConflictError):
        admin.create_tenant("zeta")
    admin.create_user("acme", "bob@example.com")
    admin.create_user("zeta", "bob@example.com")  # names are per tenant
    with pytest.raises(ConflictError):
        admin.create_user("acme", "bob@example.com")
    admin.create_project("acme", "web/app")
    with pytest.raises(ConflictError):
        admin.create_project("acme", "web/app")
    for unknown in (
        lambda: admin.create_user("ghost", "bob"),
        lambda: admin.create_project("ghost", "web"),
        lambda: admin.users("ghost"),
        lambda: admin.projects("ghost"),
        lambda: admin.keys("ghost"),
        lambda: admin.tenant("ghost"),
        lambda: admin.set_tenant_allow("ghost", []),
        lambda: admin.create_key("ghost", Role.OWNER),
        lambda: admin.key("nope"),
        lambda: admin.revoke_key("nope"),
        lambda: admin.rotate_key("nope", timedelta(hours=1)),
        lambda: admin.set_key_allow("nope", []),
    ):
        with pytest.raises(NotFoundError):
            unknown()
    assert [u.name for u in admin.users("acme")] == ["bob@example.com"]
    assert admin.set_tenant_allow("zeta", ["2001:db8::/32"]).allow == ("2001:db8::/32",)
    assert admin.tenant("zeta").allow == ("2001:db8::/32",)


def test_a_key_grants_only_what_exists(admin: Admin, clock: Clock) -> None:
    admin.create_user("acme", "bob")
    admin.create_project("acme", "web")
    issued = admin.create_key(
        "acme",
        "read_only",
        user="bob",
        project="web",
        name="Bob's laptop",
        expires_at="2025-06-01T00:00:00Z",
        allow=["192.168.1.0/24"],
    )
    key = issued.key
    assert (key.tenant, key.user, key.project, key.role, key.name) == (
        "acme",
        "bob",
        "web",
        Role.READ_ONLY,
        "Bob's laptop",
    )
    assert key.expires_at == datetime(2025, 6, 1, tzinfo=UTC) and key.created_at == T0
    assert admin.key(key.id) == key and issued.secret.startswith(key.prefix + "_")
    with pytest.raises(NotFoundError, match="user 'alice'"):
        admin.create_key("acme", Role.READ_ONLY, user="alice")
    with pytest.raises(NotFoundError, match="project 'api'"):
        admin.create_key("acme", Role.READ_ONLY, project="api")
    refused = [
        lambda: admin.create_key("acme", "superuser"),
        lambda: admin.create_key("acme", Role.OWNER, expires_at=T0 - timedelta(seconds=1)),
        lambda: admin.create_key("acme", Role.OWNER, expires_at="yesterday-ish"),
        lambda: admin.create_key("acme", Role.OWNER, allow=["10.0.0.0/33"]),
        lambda: admin.create_key("acme", Role.OWNER, name=""),
        lambda: admin.create_key("acme", Role.OWNER, name="tab\there"),
        lambda: admin.set_key_allow(key.id, ["not-a-network"]),
    ]
    for refuse in refused:
        with pytest.raises(ValidationError):
            refuse()
    assert [k.id for k in admin.keys("acme")] == [key.id]


def test_rotation_keeps_the_old_key_working_for_the_grace_period(
    admin: Admin, clock: Clock
) -> None:
    admin.create_user("acme", "bob")
    old = admin.create_key("acme", Role.READ_WRITE, user="bob", name="ci", allow=["10.0.0.0/8"])
    auth = admin.authenticator()
    clock.now = T0 + timedelta(days=3)
    new = admin.rotate_key(old.key.id, timedelta(hours=1))
    assert new.key.id != old.key.id and new.secret != old.secret
    grants = ("tenant", "user", "project", "role", "name", "allow", "expires_at")
    assert all(getattr(new.key, g) == getattr(old.key, g) for g in grants)
    retired = admin.key(old.key.id)
    assert retired.replaced_by == new.key.id
    assert retired.expires_at == clock.now + timedelta(hours=1)
    clock.now += timedelta(minutes=59)
    for issued in (old, new):
        assert auth.authenticate(f"Bearer {issued.secret}", "10.1.1.1", []).user == "bob"
    clock.now += timedelta(minutes=1)
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate(f"Bearer {old.secret}", "10.1.1.1", [])
    assert caught.value.reason == "expired"
    assert auth.authenticate(f"Bearer {new.secret}", "10.1.1.1", []).key_id == new.key.id
    with pytest.raises(ConflictError, match="expired"):
        admin.rotate_key(old.key.id, timedelta(hours=1))


def test_rotation_never_extends_an_earlier_expiry(admin: Admin, clock: Clock) -> None:
    soon = T0 + timedelta(minutes=10)
    old = admin.create_key("acme", Role.READ_ONLY, expires_at=soon)
    new = admin.rotate_key(old.key.id, timedelta(days=1))
    assert admin.key(old.key.id).expires_at == soon and new.key.expires_at == soon
    with pytest.raises(ConflictError, match="rotated already"):
        admin.rotate_key(old.key.id, timedelta(hours=1))
    with pytest.raises(ValidationError):
        admin.rotate_key(new.key.id, timedelta(seconds=-1))
    admin.revoke_key(new.key.id)
    with pytest.raises(ConflictError, match="revoked"):
        admin.rotate_key(new.key.id, timedelta(hours=1))


def test_a_grace_past_the_calendar_is_refused_and_writes_nothing(admin: Admin) -> None:
    old = admin.create_key("acme", Role.READ_WRITE)
    before = admin.keys("acme")
    with pytest.raises(ValidationError, match="too long"):
        admin.rotate_key(old.key.id, timedelta(days=999_999_999))
    assert admin.keys("acme") == before  # no new key left behind, the old one as it was


def test_revocation_is_immediate_and_for_good(admin: Admin, clock: Clock) -> None:
    issued = admin.create_key("acme", Role.ADMIN)
    auth = admin.authenticator()
    auth.authenticate(f"Bearer {issued.secret}", None, [])
    revoked = admin.revoke_key(issued.key.id)
    assert revoked.revoked_at == T0
    clock.now += timedelta(hours=1)
    assert admin.revoke_key(issued.key.id).revoked_at == T0  # a second revoke changes nothing
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate(f"Bearer {issued.secret}", None, [])
    assert caught.value.reason == "revoked"


def test_the_first_owner_key_is_made_once(admin: Admin, clock: Clock) -> None:
    first = admin.ensure_owner()
    assert first is not None
    assert (first.key.tenant, first.key.role, first.key.project) == ("default", Role.OWNER, None)
    assert admin.tenant("default").name == "default"
    assert admin.ensure_owner() is None
    principal = admin.authenticator().authenticate(f"Bearer {first.secret}", None, [])
    assert principal.home and principal.role is Role.OWNER
    admin.revoke_key(first.key.id)
    again = admin.ensure_owner()  # no usable owner key left: a new one
    assert again is not None and again.key.id != first.key.id
    admin.create_key("default", Role.OWNER, expires_at=T0 + timedelta(hours=1))
    admin.revoke_key(again.key.id)
    assert admin.ensure_owner() is None  # the expiring one is usable for now
    clock.now += timedelta(hours=2)
    assert admin.ensure_owner() is not None


def test_admin_and_principal_handles_come_from_the_root_handle_only(mx: Memex) -> None:
    scoped = mx.scoped(project="p")
    with pytest.raises(ScopeError):
        scoped.admin  # noqa: B018
    with pytest.raises(ScopeError):
        scoped.for_principal(Principal("k", "default", Role.OWNER))
    assert mx.admin.home_tenant == mx.settings.tenant


def test_a_principal_handle_sees_its_tenant_user_and_project_only(mx: Memex) -> None:
    mx.scoped(tenant="acme", user="bob").remember("bob's note about deploys")
    mx.scoped(tenant="acme", user="carol").remember("carol's note about deploys")
    mx.scoped(tenant="acme", user="bob", project="web").remember("bob's web note on deploys")
    mx.scoped(tenant="zeta", user="bob").remember("zeta's bob on deploys")
    seen = mx.for_principal(Principal("k1", "acme", Role.READ_WRITE, user="bob"))
    assert sorted(m.content for m in seen.list().items) == [
        "bob's note about deploys",
        "bob's web note on deploys",
    ]
    web = mx.for_principal(Principal("k2", "acme", Role.READ_ONLY, project="web"))
    assert [h.memory.content for h in web.recall("deploys")] == ["bob's web note on deploys"]
    with pytest.raises(ScopeError):
        web.scoped(tenant="zeta")
    written = seen.remember("another of bob's")
    assert (written.scope.tenant, written.scope.user) == ("acme", "bob")

"""What a caller may administer: its own tenant, within its role, never above it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from memex import Memex, NotFoundError
from memex.core.identity import Principal, Role
from memex.errors import PermissionDeniedError
from memex.security.admin import Admin, TenantAdmin


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    with Memex.open(tmp_path / "memex.db", tenant="home") as mx:
        made = mx.admin
        made.ensure_owner()
        made.create_tenant("acme")
        made.create_user("acme", "bob")
        made.create_user("acme", "carol")
        made.create_project("acme", "web")
        yield made


def acting(admin: Admin, role: Role, tenant: str = "acme", **bound: str) -> TenantAdmin:
    key = admin.create_key(tenant, role, **bound).key
    principal = Principal(
        key.id, tenant, role, user=key.user, project=key.project, home=tenant == "home"
    )
    return admin.acting(principal)


OPERATIONS: dict[str, Callable[[TenantAdmin], object]] = {
    "me": lambda a: a.me(),
    "tenant": lambda a: a.tenant(),
    "set_tenant_allow": lambda a: a.set_tenant_allow(["10.0.0.0/8"]),
    "tenants": lambda a: a.tenants(),
    "create_tenant": lambda a: a.create_tenant("new-tenant"),
    "users": lambda a: a.users(),
    "create_user": lambda a: a.create_user("dave"),
    "projects": lambda a: a.projects(),
    "create_project": lambda a: a.create_project("api"),
    "keys": lambda a: a.keys(),
    "create_read_only_key": lambda a: a.create_key(Role.READ_ONLY),
}
ADMINISTRATION = {"users", "create_user", "projects", "create_project", "keys"}
EVERYONE = {"me", "tenant"}

# (role, tenant, binding) -> the operations it may take
ALLOWED: list[tuple[Role, str, dict[str, str], set[str]]] = [
    (Role.READ_ONLY, "acme", {}, EVERYONE),
    (Role.READ_WRITE, "acme", {}, EVERYONE),
    (Role.ADMIN, "acme", {}, EVERYONE | ADMINISTRATION | {"create_read_only_key"}),
    (
        Role.OWNER,
        "acme",
        {},
        EVERYONE | ADMINISTRATION | {"create_read_only_key", "set_tenant_allow"},
    ),
    (Role.OWNER, "acme", {"project": "web"}, EVERYONE),
    (Role.ADMIN, "home", {}, EVERYONE | ADMINISTRATION | {"create_read_only_key"}),
    (Role.OWNER, "home", {}, set(OPERATIONS)),
]


@pytest.mark.parametrize(("role", "tenant", "bound", "allowed"), ALLOWED)
def test_each_role_may_take_its_operations_only(
    admin: Admin, role: Role, tenant: str, bound: dict[str, str], allowed: set[str]
) -> None:
    caller = acting(admin, role, tenant, **bound)
    for name, operation in OPERATIONS.items():
        if name in allowed:
            operation(caller)
        else:
            with pytest.raises(PermissionDeniedError) as caught:
                operation(caller)
            assert caught.value.reason == "role", name


@pytest.mark.parametrize("role", list(Role))
def test_no_key_is_made_above_the_callers_role(admin: Admin, role: Role) -> None:
    caller = acting(admin, Role.ADMIN)
    if role.rank <= Role.ADMIN.rank:
        assert caller.create_key(role).key.role is role
    else:
        with pytest.raises(PermissionDeniedError):
            caller.create_key(role)
    assert all(k.role is not Role.OWNER for k in admin.keys("acme"))


def test_keys_above_the_callers_role_cannot_be_changed(admin: Admin) -> None:
    owner_key = admin.create_key("acme", Role.OWNER).key
    peer_key = admin.create_key("acme", Role.ADMIN).key
    caller = acting(admin, Role.ADMIN)
    for change in (
        lambda: caller.revoke_key(owner_key.id),
        lambda: caller.rotate_key(owner_key.id, timedelta(hours=1)),
        lambda: caller.set_key_allow(owner_key.id, ["10.0.0.0/8"]),
    ):
        with pytest.raises(PermissionDeniedError):
            change()
    assert admin.key(owner_key.id) == owner_key
    assert caller.key(owner_key.id) == owner_key  # seeing it is fine
    assert caller.set_key_allow(peer_key.id, ["10.0.0.0/8"]).allow == ("10.0.0.0/8",)
    assert caller.rotate_key(peer_key.id, timedelta(0)).key.role is Role.ADMIN
    assert caller.revoke_key(peer_key.id).revoked_at is not None


def test_another_tenants_key_is_not_found(admin: Admin) -> None:
    theirs = admin.create_key("home", Role.READ_ONLY).key
    for role in (Role.ADMIN, Role.OWNER):
        caller = acting(admin, role)
        for look in (
            lambda c=caller: c.key(theirs.id),
            lambda c=caller: c.revoke_key(theirs.id),
            lambda c=caller: c.rotate_key(theirs.id, timedelta(hours=1)),
            lambda c=caller: c.set_key_allow(theirs.id, []),
        ):
            with pytest.raises(NotFoundError):
                look()
        listed = caller.keys()
        assert theirs.id not in {k.id for k in listed}
    assert admin.key(theirs.id) == theirs
    home_owner = acting(admin, Role.OWNER, "home")
    with pytest.raises(NotFoundError):  # the home tenant's owners manage tenants, not their keys
        home_owner.revoke_key(admin.create_key("acme", Role.READ_ONLY).key.id)


def test_a_caller_bound_to_a_user_makes_and_sees_that_users_keys_only(admin: Admin) -> None:
    carol = admin.create_key("acme", Role.READ_ONLY, user="carol").key
    caller = acting(admin, Role.ADMIN, user="bob")
    made = caller.create_key(Role.READ_ONLY)
    assert made.key.user == "bob"
    with pytest.raises(PermissionDeniedError):
        caller.create_key(Role.READ_ONLY, user="carol")
    listed = caller.keys()
    assert {k.user for k in listed} == {"bob"}
    with pytest.raises(NotFoundError):
        caller.revoke_key(carol.id)


def test_a_new_tenant_comes_with_its_owner_key(admin: Admin) -> None:
    made = acting(admin, Role.OWNER, "home").create_tenant("beta", ["10.0.0.0/8"])
    assert made.tenant.allow == ("10.0.0.0/8",)
    assert (made.owner_key.key.tenant, made.owner_key.key.role) == ("beta", Role.OWNER)
    principal = admin.authenticator().authenticate(
        f"Bearer {made.owner_key.secret}", "10.2.3.4", []
    )
    assert principal.tenant == "beta" and not principal.home
    beta_owner = admin.acting(principal)
    with pytest.raises(PermissionDeniedError):
        beta_owner.create_tenant("gamma")

"""The Directory contract: tenants, users, projects and API keys, on every backend.

Every backend runs these tests unchanged through the ``backend`` and ``store`` fixtures
(tests/conftest.py), through the ``Directory`` protocol only; a second handle on the same
store is opened as another process would open it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from memex.core.audit import Actor, AuditEvent, verify
from memex.core.identity import ApiKey, Project, Role, Tenant, User
from memex.core.limits import DEFAULT_QUOTAS, Limit, changed_quotas
from memex.errors import ConflictError, NotFoundError, StoreReadOnlyError
from memex.storage.base import Store
from memex.storage.directory import Directory

if TYPE_CHECKING:
    from conftest import Backend  # the fixture's type (tests/conftest.py)

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def key(key_id: str, tenant: str = "acme", *, seconds: float = 0, **fields: object) -> ApiKey:
    values: dict[str, object] = {
        "id": key_id,
        "tenant": tenant,
        "role": Role.READ_WRITE,
        "hash": f"hash-of-{key_id}",
        "created_at": at(seconds),
    }
    values.update(fields)
    return ApiKey(**values)  # type: ignore[arg-type]


def everything(d: Directory) -> tuple[object, ...]:
    """The whole directory as the protocol shows it."""
    tenants = d.tenants()
    return (
        tenants,
        [d.users(t.name) for t in tenants],
        [d.projects(t.name) for t in tenants],
        d.keys(),
    )


def filled(store: Store) -> Directory:
    """A directory with two tenants, each with users, projects and keys."""
    d = store.directory()
    d.add_tenant(Tenant("acme", at(0), allow=("10.0.0.0/8",)))
    d.add_tenant(Tenant("globex", at(1)))
    d.add_user(User("acme", "alice", at(2)))
    d.add_user(User("globex", "hank", at(3)))
    d.add_project(Project("acme", "rockets", at(4)))
    d.add_project(Project("globex", "doomsday", at(5)))
    d.add_key(key("k1", "acme", seconds=10, user="alice", project="rockets", name="ci"))
    d.add_key(key("k2", "globex", seconds=11, role=Role.OWNER))
    return d


def test_tenants_are_added_read_and_listed_by_name(store: Store) -> None:
    d = store.directory()
    assert d.tenants() == []
    assert d.tenant("acme") is None
    added = [
        Tenant("b", at(0)),
        Tenant("a", at(1), allow=("10.0.0.0/8", "2001:db8::/32")),
        Tenant("B", at(2)),
        Tenant("a-b", at(3)),
    ]
    for tenant in added:
        d.add_tenant(tenant)
    # Names compare byte by byte: upper case before lower, "a" before "a-b".
    assert [t.name for t in d.tenants()] == ["B", "a", "a-b", "b"]
    assert d.tenant("a") == added[1]
    assert d.tenant("a").created_at == at(1)  # type: ignore[union-attr]  # microseconds kept
    assert d.tenant("A") is None
    assert sorted(d.tenants(), key=lambda t: t.created_at) == added


def test_users_and_projects_belong_to_their_tenant_in_name_order(store: Store) -> None:
    d = store.directory()
    d.add_tenant(Tenant("acme", at(0)))
    d.add_tenant(Tenant("globex", at(0)))
    for n, name in enumerate(["zoe", "Bob", "alice"]):
        d.add_user(User("acme", name, at(n)))
        d.add_project(Project("globex", f"p-{name}", at(n)))
    assert d.users("acme") == [
        User("acme", "Bob", at(1)),
        User("acme", "alice", at(2)),
        User("acme", "zoe", at(0)),
    ]
    assert [p.name for p in d.projects("globex")] == ["p-Bob", "p-alice", "p-zoe"]
    assert d.projects("acme") == [] and d.users("globex") == []
    # The same name in another tenant is another user.
    d.add_user(User("globex", "alice", at(9)))
    assert d.users("globex") == [User("globex", "alice", at(9))]
    assert len(d.users("acme")) == 3


def test_keys_are_found_by_id_and_listed_oldest_first(store: Store) -> None:
    d = store.directory()
    d.add_tenant(Tenant("acme", at(0)))
    d.add_tenant(Tenant("globex", at(0)))
    d.add_user(User("acme", "alice", at(0)))
    d.add_project(Project("acme", "rockets", at(0)))
    full = key(
        "k3",
        seconds=5,
        role=Role.ADMIN,
        user="alice",
        project="rockets",
        name="deploy bot",
        expires_at=at(3600),
        revoked_at=at(7200),
        last_used_at=at(60),
        replaced_by="k9",
        allow=("192.168.1.0/24", "::1/128"),
    )
    # Added out of time order: the listing follows creation times, then ids.
    for k in (full, key("k1", seconds=1), key("k2", "globex", seconds=2), key("k0", seconds=5)):
        d.add_key(k)
    assert d.key("k3") == full
    assert d.key("k1") == key("k1", seconds=1)
    assert d.key("nope") is None
    assert [k.id for k in d.keys(None)] == ["k1", "k2", "k0", "k3"]
    assert [k.id for k in d.keys("acme")] == ["k1", "k0", "k3"]
    assert d.keys("globex") == [key("k2", "globex", seconds=2)]
    assert d.keys("initech") == []


def test_a_duplicate_is_a_conflict_and_changes_nothing(store: Store) -> None:
    d = filled(store)
    before, generation = everything(d), d.generation()
    duplicates = [
        lambda: d.add_tenant(Tenant("acme", at(99), allow=("1.2.3.4/32",))),
        lambda: d.add_user(User("acme", "alice", at(99))),
        lambda: d.add_project(Project("acme", "rockets", at(99))),
        lambda: d.add_key(key("k1", "acme", seconds=99, role=Role.OWNER, hash="other")),
        # A key id is unique in the whole store, not per tenant.
        lambda: d.add_key(key("k1", "globex", seconds=99)),
    ]
    for add in duplicates:
        with pytest.raises(ConflictError):
            add()
    assert everything(d) == before
    assert d.generation() == generation
    assert d.key("k1").hash == "hash-of-k1"  # type: ignore[union-attr]


def test_an_unknown_tenant_or_key_is_not_found(store: Store) -> None:
    d = filled(store)
    before, generation = everything(d), d.generation()
    unknown = [
        lambda: d.add_user(User("initech", "alice", at(0))),
        lambda: d.add_project(Project("initech", "rockets", at(0))),
        lambda: d.add_key(key("k7", "initech")),
        lambda: d.set_tenant(Tenant("initech", at(0))),
        lambda: d.set_key(key("k7", "acme")),
        # A key's user and project must exist in its tenant (globex's hank is not acme's).
        lambda: d.add_key(key("k7", "acme", user="hank")),
        lambda: d.add_key(key("k7", "acme", project="doomsday")),
        lambda: d.set_key(key("k1", "acme", seconds=10, user="hank")),
        lambda: d.set_key(key("k1", "acme", seconds=10, project="moon")),
    ]
    for change in unknown:
        with pytest.raises(NotFoundError):
            change()
    assert everything(d) == before
    assert d.generation() == generation
    assert d.tenant("initech") is None and d.key("k7") is None


def test_set_tenant_replaces_its_allowlist(store: Store) -> None:
    d = filled(store)
    acme = d.tenant("acme")
    assert acme is not None and acme.allow == ("10.0.0.0/8",)
    wider = Tenant("acme", acme.created_at, allow=("10.0.0.0/8", "172.16.0.0/12", "::1/128"))
    d.set_tenant(wider)
    assert d.tenant("acme") == wider
    d.set_tenant(Tenant("acme", acme.created_at))
    assert d.tenant("acme") == Tenant("acme", acme.created_at, allow=())
    assert d.tenant("globex") == Tenant("globex", at(1))  # the other tenant untouched


def test_set_key_records_revocation_expiry_rotation_and_allowlist(store: Store) -> None:
    d = filled(store)
    old = d.key("k1")
    assert old is not None
    d.add_key(key("k5", "acme", seconds=20, user="alice", project="rockets"))
    rotated = old.with_changes(replaced_by="k5", expires_at=at(3600))
    d.set_key(rotated)
    assert d.key("k1") == rotated
    revoked = rotated.with_changes(revoked_at=at(1800), allow=("10.1.0.0/16",))
    d.set_key(revoked)
    assert d.key("k1") == revoked
    assert d.key("k1").refusal(at(1800)) == "revoked"  # type: ignore[union-attr]
    cleared = revoked.with_changes(expires_at=None, revoked_at=None, replaced_by=None, allow=())
    d.set_key(cleared)
    assert d.key("k1") == cleared
    assert d.key("k2") == key("k2", "globex", seconds=11, role=Role.OWNER)  # untouched
    assert [k.id for k in d.keys("acme")] == ["k1", "k5"]


def test_touch_keys_keeps_the_later_time_and_leaves_the_generation(store: Store) -> None:
    d = filled(store)
    generation = d.generation()
    d.touch_keys({"k1": at(100), "k2": at(50), "unknown": at(10)})
    assert d.key("k1").last_used_at == at(100)  # type: ignore[union-attr]
    assert d.key("k2").last_used_at == at(50)  # type: ignore[union-attr]
    d.touch_keys({"k1": at(90), "k2": at(51)})  # an earlier time is ignored
    assert d.key("k1").last_used_at == at(100)  # type: ignore[union-attr]
    assert d.key("k2").last_used_at == at(51)  # type: ignore[union-attr]
    d.touch_keys({})
    d.touch_keys({"unknown": at(200)})
    assert d.key("unknown") is None
    assert d.generation() == generation
    # Nothing else of the keys changed.
    assert d.key("k1") == key(
        "k1", seconds=10, user="alice", project="rockets", name="ci", last_used_at=at(100)
    )


def test_every_change_raises_the_generation_seen_from_another_handle(
    store: Store, backend: Backend
) -> None:
    d = store.directory()
    other = backend.reopen()
    try:
        seen = other.directory()
        last = seen.generation()
        assert d.generation() == last
        changes = [
            lambda: d.add_tenant(Tenant("acme", at(0))),
            lambda: d.add_user(User("acme", "alice", at(1))),
            lambda: d.add_project(Project("acme", "rockets", at(2))),
            lambda: d.add_key(key("k1")),
            lambda: d.set_key(key("k1", revoked_at=at(5))),
            lambda: d.set_tenant(Tenant("acme", at(0), allow=("10.0.0.0/8",))),
            # The other handle's changes count too, and this handle sees them.
            lambda: seen.add_key(key("k2", seconds=1)),
            lambda: seen.set_key(key("k2", seconds=1, expires_at=at(9))),
        ]
        for change in changes:
            change()
            now = seen.generation()
            assert now > last
            assert d.generation() == now
            last = now
        assert d.key("k2") == key("k2", seconds=1, expires_at=at(9))
        assert seen.key("k1") == key("k1", revoked_at=at(5))
        assert everything(seen) == everything(d)
    finally:
        other.close()


def test_nothing_of_one_tenant_shows_under_another(store: Store) -> None:
    d = filled(store)
    assert [u.name for u in d.users("acme")] == ["alice"]
    assert [u.name for u in d.users("globex")] == ["hank"]
    assert [p.name for p in d.projects("acme")] == ["rockets"]
    assert [p.name for p in d.projects("globex")] == ["doomsday"]
    assert [k.id for k in d.keys("acme")] == ["k1"]
    assert [k.id for k in d.keys("globex")] == ["k2"]
    for tenant in ("acme", "globex"):
        assert {u.tenant for u in d.users(tenant)} == {tenant}
        assert {p.tenant for p in d.projects(tenant)} == {tenant}
        assert {k.tenant for k in d.keys(tenant)} == {tenant}
    # A key's tenant is its own: a set_key naming another tenant finds no such key.
    with pytest.raises(NotFoundError):
        d.set_key(key("k1", "globex", seconds=10, role=Role.OWNER))
    assert d.key("k1").tenant == "acme"  # type: ignore[union-attr]
    assert d.keys("globex") == [key("k2", "globex", seconds=11, role=Role.OWNER)]


def test_a_read_only_handle_reads_the_directory_and_changes_nothing(
    store: Store, backend: Backend
) -> None:
    d = filled(store)
    before, generation = everything(d), d.generation()
    read_only = backend.reopen(read_only=True)
    try:
        ro = read_only.directory()
        assert everything(ro) == before
        assert ro.generation() == generation
        for change in (
            lambda: ro.add_tenant(Tenant("initech", at(0))),
            lambda: ro.add_user(User("acme", "bob", at(0))),
            lambda: ro.add_project(Project("acme", "moon", at(0))),
            lambda: ro.add_key(key("k9")),
            lambda: ro.set_tenant(Tenant("acme", at(0))),
            lambda: ro.set_key(key("k1", revoked_at=at(1))),
            lambda: ro.touch_keys({"k1": at(500)}),
        ):
            with pytest.raises(StoreReadOnlyError):
                change()
    finally:
        read_only.close()
    assert everything(d) == before
    assert d.generation() == generation


def test_a_backup_carries_the_directory(store: Store, backend: Backend) -> None:
    d = filled(store)
    d.touch_keys({"k1": at(100)})
    d.set_key(d.key("k2").with_changes(revoked_at=at(50)))  # type: ignore[union-attr]
    target = backend.backup_target()
    store.backup(target)
    copy = backend.open_backup(target)
    try:
        assert everything(copy.directory()) == everything(d)
        assert copy.directory().key("k1").hash == "hash-of-k1"  # type: ignore[union-attr]
    finally:
        copy.close()


def test_quotas_are_set_read_reset_and_carried_by_a_backup(store: Store, backend: Backend) -> None:
    d = filled(store)
    assert d.quotas("acme") is None
    generation = d.generation()
    mine = changed_quotas(DEFAULT_QUOTAS, {"memories": 20_000, "users": None})
    d.set_quotas("acme", mine)
    assert d.quotas("acme") == mine and d.quotas("globex") is None
    assert d.generation() > generation  # a server sees the change with one cheap read
    d.set_quotas("acme", changed_quotas(mine, {"projects": 3}))
    assert d.quotas("acme").projects == Limit(3, 3)  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        d.set_quotas("nobody", mine)
    target = backend.backup_target()
    store.backup(target)
    copy = backend.open_backup(target)
    try:
        assert copy.directory().quotas("acme") == d.quotas("acme")
    finally:
        copy.close()
    d.set_quotas("acme", None)
    assert d.quotas("acme") is None


def test_a_change_and_its_audit_entry_commit_together(store: Store) -> None:
    d = store.directory()
    who = Actor("local:ops")

    def audit(tenant: str, action: str, resource: str, rid: str) -> AuditEvent:
        return AuditEvent(tenant, action, resource, who, rid)

    d.add_tenant(Tenant("acme", at(0)), audit("acme", "tenant.create", "tenant", "acme"))
    d.set_tenant(
        Tenant("acme", at(0), ("10.0.0.0/8",)), audit("acme", "tenant.allow", "tenant", "acme")
    )
    d.add_user(User("acme", "alice", at(1)), audit("acme", "user.create", "user", "alice"))
    d.add_project(Project("acme", "x", at(2)), audit("acme", "project.create", "project", "x"))
    d.add_key(key("k1"), audit("acme", "key.create", "key", "k1"))
    d.set_key(key("k1", revoked_at=at(9)), audit("acme", "key.revoke", "key", "k1"))
    # A refused change leaves no entry: a duplicate, an unknown tenant, an unknown key.
    with pytest.raises(ConflictError):
        d.add_user(User("acme", "alice", at(3)), audit("acme", "user.create", "user", "alice"))
    with pytest.raises(NotFoundError):
        d.add_user(User("nope", "bob", at(3)), audit("nope", "user.create", "user", "bob"))
    with pytest.raises(NotFoundError):
        d.set_key(key("k9"), audit("acme", "key.revoke", "key", "k9"))
    d.add_user(User("acme", "carol", at(4)))  # no event: no entry
    trail = store.audit().trail("acme")
    assert [e.action for e in trail.entries] == [
        "tenant.create", "tenant.allow", "user.create", "project.create", "key.create",
        "key.revoke",
    ]  # fmt: skip
    assert verify(trail.entries, trail.head).ok
    assert all("hash-of" not in str(e.to_dict()) for e in trail.entries)
    assert store.audit().trail("nope").head is None


def test_the_suite_exercises_every_protocol_method() -> None:
    source = Path(__file__).read_text()
    methods = [name for name in vars(Directory) if not name.startswith("_")]
    assert len(methods) == 16
    missing = [name for name in methods if f".{name}(" not in source]
    assert missing == []

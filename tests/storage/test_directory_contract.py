"""The directory contract: tenants, users, projects and keys, on every backend, through
``Store.directory()`` only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex import ConfigError, ConflictError, NotFoundError, StoreReadOnlyError
from memex.core.identity import ApiKey, Project, Role, Tenant, User
from memex.storage.base import Store
from tests.conftest import BACKENDS, SERVER_BACKENDS, Backend

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

# The PostgreSQL directory is built separately: until it is, its store refuses with a
# ConfigError, and these cases are expected to fail (strictly: they must be unmarked then).
_PENDING = pytest.mark.xfail(raises=ConfigError, strict=True, reason="no PostgreSQL directory")


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=_PENDING)],
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    folder = tmp_path / request.param
    (folder / "backup").mkdir(parents=True)
    url = request.getfixturevalue("postgres_url") if request.param in SERVER_BACKENDS else None
    return Backend(request.param, BACKENDS[request.param], folder, url)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()


def key(key_id: str, tenant: str = "acme", **fields: object) -> ApiKey:
    values: dict[str, object] = {"role": Role.READ_WRITE, "hash": "h" * 64, "created_at": T0}
    values.update(fields)
    return ApiKey(id=key_id, tenant=tenant, **values)  # type: ignore[arg-type]


def test_tenants_users_and_projects_round_trip(store: Store) -> None:
    d = store.directory()
    d.add_tenant(Tenant("zeta", T0))
    d.add_tenant(Tenant("acme", T0, allow=("10.0.0.0/8", "2001:db8::/32")))
    assert [t.name for t in d.tenants()] == ["acme", "zeta"]
    assert d.tenant("acme") == Tenant("acme", T0, allow=("10.0.0.0/8", "2001:db8::/32"))
    assert d.tenant("nobody") is None
    d.add_user(User("acme", "bob", T0))
    d.add_user(User("acme", "alice", T0))
    d.add_user(User("zeta", "carol", T0))
    d.add_project(Project("acme", "web", T0))
    assert [u.name for u in d.users("acme")] == ["alice", "bob"]
    assert d.users("zeta") == [User("zeta", "carol", T0)]
    assert d.projects("acme") == [Project("acme", "web", T0)]
    assert d.projects("zeta") == []
    d.set_tenant(Tenant("acme", T0, allow=()))
    assert d.tenant("acme") == Tenant("acme", T0)


def test_duplicates_conflict_and_unknown_tenants_are_not_found(store: Store) -> None:
    d = store.directory()
    d.add_tenant(Tenant("acme", T0))
    d.add_user(User("acme", "bob", T0))
    d.add_project(Project("acme", "web", T0))
    before = d.generation()
    with pytest.raises(ConflictError):
        d.add_tenant(Tenant("acme", T0, allow=("10.0.0.0/8",)))
    with pytest.raises(ConflictError):
        d.add_user(User("acme", "bob", T0))
    with pytest.raises(ConflictError):
        d.add_project(Project("acme", "web", T0))
    with pytest.raises(NotFoundError):
        d.add_user(User("ghost", "bob", T0))
    with pytest.raises(NotFoundError):
        d.add_project(Project("ghost", "web", T0))
    with pytest.raises(NotFoundError):
        d.set_tenant(Tenant("ghost", T0))
    with pytest.raises(NotFoundError):
        d.add_key(key("k1", tenant="ghost"))
    with pytest.raises(NotFoundError):
        d.add_key(key("k1", user="carol"))
    with pytest.raises(NotFoundError):
        d.add_key(key("k1", project="api"))
    d.add_key(key("k1"))
    with pytest.raises(ConflictError):
        d.add_key(key("k1"))
    with pytest.raises(NotFoundError):
        d.set_key(key("k2"))
    assert d.tenant("acme") == Tenant("acme", T0)  # the refused change left nothing behind
    assert d.users("ghost") == [] and [k.id for k in d.keys(tenant=None)] == ["k1"]
    assert d.generation() == before + 1  # only the one key that was added


def test_keys_round_trip_with_every_field(store: Store) -> None:
    d = store.directory()
    d.add_tenant(Tenant("acme", T0))
    d.add_tenant(Tenant("zeta", T0))
    d.add_user(User("acme", "bob", T0))
    d.add_project(Project("acme", "web", T0))
    full = key(
        "k1",
        user="bob",
        project="web",
        role=Role.ADMIN,
        name="ci deploys",
        expires_at=T0 + timedelta(days=30),
        allow=("192.168.0.0/16",),
    )
    d.add_key(full)
    d.add_key(key("k0", created_at=T0 + timedelta(seconds=1)))
    d.add_key(key("k9", tenant="zeta", created_at=T0 - timedelta(seconds=1)))
    assert d.key("k1") == full
    assert d.key("nope") is None
    assert [k.id for k in d.keys("acme")] == ["k1", "k0"]  # oldest first
    assert [k.id for k in d.keys(tenant=None)] == ["k9", "k1", "k0"]
    changed = full.with_changes(
        revoked_at=T0 + timedelta(hours=1), replaced_by="k0", allow=(), expires_at=None
    )
    d.set_key(changed)
    assert d.key("k1") == changed
    with pytest.raises(NotFoundError):  # a key cannot move to another tenant
        d.set_key(changed.with_changes(tenant="zeta"))


def test_touch_keys_keeps_the_latest_time_and_changes_no_generation(store: Store) -> None:
    d = store.directory()
    d.add_tenant(Tenant("acme", T0))
    d.add_key(key("k1"))
    before = d.generation()
    d.touch_keys({"k1": T0 + timedelta(minutes=5), "unknown": T0})
    d.touch_keys({"k1": T0 + timedelta(minutes=1)})  # an older time does not go back
    d.touch_keys({})
    assert d.key("k1") == key("k1", last_used_at=T0 + timedelta(minutes=5))
    assert d.generation() == before


def test_every_change_from_another_handle_bumps_the_generation(backend: Backend) -> None:
    first, second = backend.open(), backend.reopen()
    try:
        seen = first.directory().generation()
        d = second.directory()
        steps = [
            lambda: d.add_tenant(Tenant("acme", T0)),
            lambda: d.set_tenant(Tenant("acme", T0, allow=("10.0.0.0/8",))),
            lambda: d.add_user(User("acme", "bob", T0)),
            lambda: d.add_project(Project("acme", "web", T0)),
            lambda: d.add_key(key("k1")),
            lambda: d.set_key(key("k1", revoked_at=T0)),
        ]
        for step in steps:
            step()
            now = first.directory().generation()
            assert now > seen
            seen = now
        assert first.directory().key("k1") == key("k1", revoked_at=T0)
    finally:
        first.close()
        second.close()


def test_a_read_only_store_reads_its_directory_and_refuses_changes(backend: Backend) -> None:
    writable = backend.open()
    writable.directory().add_tenant(Tenant("acme", T0))
    writable.directory().add_key(key("k1"))
    writable.close()
    reader = backend.reopen(read_only=True)
    try:
        d = reader.directory()
        assert d.tenant("acme") == Tenant("acme", T0)
        assert d.key("k1") == key("k1")
        before = d.generation()
        refused = [
            lambda: d.add_tenant(Tenant("zeta", T0)),
            lambda: d.add_user(User("acme", "bob", T0)),
            lambda: d.set_key(key("k1", revoked_at=T0)),
            lambda: d.touch_keys({"k1": T0}),
        ]
        for change in refused:
            with pytest.raises(StoreReadOnlyError):
                change()
        assert d.key("k1") == key("k1") and d.generation() == before
    finally:
        reader.close()


def test_a_backup_holds_the_directory(backend: Backend) -> None:
    source = backend.open()
    try:
        source.directory().add_tenant(Tenant("acme", T0, allow=("10.1.0.0/16",)))
        source.directory().add_key(key("k1", name="kept"))
        source.backup(backend.backup_target())
    finally:
        source.close()
    copy = backend.open_backup(backend.backup_target())
    try:
        assert copy.directory().tenant("acme") == Tenant("acme", T0, allow=("10.1.0.0/16",))
        assert copy.directory().key("k1") == key("k1", name="kept")
    finally:
        copy.close()

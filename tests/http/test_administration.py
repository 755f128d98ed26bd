"""Administration over HTTP: the caller's own tenant, within its role."""

from __future__ import annotations

import pytest

from memex.core.identity import Role
from tests.http.conftest import Served, Tenant, client_of, error_of

pytestmark = pytest.mark.anyio


async def test_me_describes_the_calling_key(served: Served, tenant: Tenant) -> None:
    key = served.key(tenant.name, Role.READ_WRITE, project="web")
    async with client_of(served, key) as api:
        me = (await api.get("/v1/me")).json()
    assert (me["tenant"], me["role"], me["project"]) == (tenant.name, "read_write", "web")
    assert me["key"]["id"] == key.split("_")[1] and "hash" not in me["key"]
    assert key not in str(me)


async def test_home_owners_make_tenants_whose_owner_key_works(served: Served) -> None:
    async with client_of(served, served.owner) as home:
        made = await home.post("/v1/tenants", json={"name": "acme-http", "allow": []})
        assert made.status_code == 201
        body = made.json()
        assert body["tenant"]["name"] == "acme-http"
        secret = body["owner_key"]["key"]
        assert secret.startswith(f"mxk_{body['owner_key']['id']}_")
        names = [t["name"] for t in (await home.get("/v1/tenants")).json()["tenants"]]
        assert "acme-http" in names and "home" in names
        again = await home.post("/v1/tenants", json={"name": "acme-http"})
        assert error_of(again) == (409, "conflict")
        bad = await home.post("/v1/tenants", json={"name": "no spaces allowed"})
        assert error_of(bad) == (422, "validation_error")
    async with client_of(served, secret) as acme:
        assert (await acme.get("/v1/tenant")).json()["name"] == "acme-http"
        assert error_of(await acme.get("/v1/tenants")) == (403, "permission_denied")
        refused = await acme.post("/v1/tenants", json={"name": "another"})
        assert error_of(refused) == (403, "permission_denied")


async def test_owners_change_the_tenants_allowlist(served: Served, tenant: Tenant) -> None:
    changed = await tenant.api.patch("/v1/tenant", json={"allow": ["127.0.0.0/8", "::1"]})
    assert changed.status_code == 200
    assert changed.json()["allow"] == ["127.0.0.0/8", "::1/128"]
    async with client_of(served, served.key(tenant.name, Role.ADMIN)) as api:
        refused = await api.patch("/v1/tenant", json={"allow": []})
    assert error_of(refused) == (403, "permission_denied")
    bad = await tenant.api.patch("/v1/tenant", json={"allow": ["not-a-network"]})
    assert error_of(bad) == (422, "validation_error")


async def test_users_and_projects(tenant: Tenant) -> None:
    for kind in ("users", "projects"):
        made = await tenant.api.post(f"/v1/{kind}", json={"name": "alpha"})
        assert made.status_code == 201
        assert made.json()["name"] == "alpha" and made.json()["tenant"] == tenant.name
        assert error_of(await tenant.api.post(f"/v1/{kind}", json={"name": "alpha"})) == (
            409,
            "conflict",
        )
        listed = (await tenant.api.get(f"/v1/{kind}")).json()[kind]
        assert [m["name"] for m in listed] == ["alpha"]


async def test_keys_are_made_listed_changed_rotated_and_revoked(
    served: Served, tenant: Tenant
) -> None:
    await tenant.api.post("/v1/users", json={"name": "bob"})
    made = await tenant.api.post(
        "/v1/keys",
        json={"role": "read_write", "user": "bob", "name": "bob's laptop", "allow": ["10.0.0.0/8"]},
    )
    assert made.status_code == 201
    key = made.json()
    assert key["key"].startswith(key["prefix"] + "_") and key["user"] == "bob"

    listed = (await tenant.api.get("/v1/keys")).json()["keys"]
    assert key["id"] in [k["id"] for k in listed]
    assert all("key" not in k and "hash" not in k for k in listed)
    assert (await tenant.api.get(f"/v1/keys/{key['id']}")).json()["name"] == "bob's laptop"

    opened = await tenant.api.patch(f"/v1/keys/{key['id']}", json={"allow": []})
    assert opened.json()["allow"] == []
    rotated = await tenant.api.post(f"/v1/keys/{key['id']}/rotate", json={"grace_seconds": 60})
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["id"] != key["id"] and (new["role"], new["user"]) == ("read_write", "bob")
    for secret in (key["key"], new["key"]):  # the old key works through the grace period
        async with client_of(served, secret) as api:
            assert (await api.get("/v1/me")).status_code == 200
    old = (await tenant.api.get(f"/v1/keys/{key['id']}")).json()
    assert old["replaced_by"] == new["id"] and old["expires_at"] is not None

    revoked = await tenant.api.delete(f"/v1/keys/{new['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    async with client_of(served, new["key"]) as api:
        assert error_of(await api.get("/v1/me")) == (401, "unauthenticated")
    bad_grace = await tenant.api.post(f"/v1/keys/{key['id']}/rotate", json={"grace_seconds": -1})
    assert error_of(bad_grace)[0] in (409, 422)
    fresh = (await tenant.api.post("/v1/keys", json={"role": "read_only"})).json()
    listed = (await tenant.api.get("/v1/keys")).json()
    endless = await tenant.api.post(f"/v1/keys/{fresh['id']}/rotate", json={"grace_seconds": 8e13})
    assert error_of(endless) == (422, "validation_error")
    assert (await tenant.api.get("/v1/keys")).json() == listed  # nothing half-made


async def test_keys_above_the_callers_role_and_other_tenants_keys(
    served: Served, tenant: Tenant
) -> None:
    async with client_of(served, served.key(tenant.name, Role.ADMIN)) as admin:
        above = await admin.post("/v1/keys", json={"role": "owner"})
        assert error_of(above) == (403, "permission_denied")
        same = await admin.post("/v1/keys", json={"role": "admin"})
        assert same.status_code == 201
        bad_role = await admin.post("/v1/keys", json={"role": "superuser"})
        assert error_of(bad_role) == (422, "validation_error")
    foreign = served.mx.admin.create_tenant(f"{tenant.name}-x").name
    theirs = served.key(foreign).split("_")[1]
    for answer in (
        await tenant.api.get(f"/v1/keys/{theirs}"),
        await tenant.api.delete(f"/v1/keys/{theirs}"),
        await tenant.api.post(f"/v1/keys/{theirs}/rotate"),
        await tenant.api.patch(f"/v1/keys/{theirs}", json={"allow": []}),
    ):
        assert error_of(answer) == (404, "not_found")
    async with client_of(served, served.key(tenant.name, Role.READ_WRITE)) as writer:
        assert error_of(await writer.get("/v1/keys")) == (403, "permission_denied")
        assert error_of(await writer.get("/v1/users")) == (403, "permission_denied")
        assert (await writer.get("/v1/tenant")).status_code == 200

"""Identity comes from the key alone: what each key may reach, and how it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from memex.core.identity import Role
from tests.http.conftest import Served, Tenant, client_of, error_of, open_served

pytestmark = pytest.mark.anyio


async def test_missing_malformed_unknown_and_revoked_keys_are_401(
    served: Served, tenant: Tenant
) -> None:
    key = served.key(tenant.name, Role.READ_ONLY)
    unknown = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    revoked = served.key(tenant.name)
    served.mx.admin.revoke_key(revoked.split("_")[1])
    for presented in (None, "mxk_short", unknown, revoked):
        async with client_of(served, presented) as api:
            answer = await api.get("/v1/memories")
        assert error_of(answer) == (401, "unauthenticated"), presented
        assert answer.headers["www-authenticate"] == "Bearer"
    async with client_of(served, key) as api:
        assert (await api.get("/v1/memories")).status_code == 200


async def test_a_key_revoked_over_the_api_stops_working_at_once(
    served: Served, tenant: Tenant
) -> None:
    key = served.key(tenant.name, Role.READ_WRITE)
    async with client_of(served, key) as api:
        assert (await api.get("/v1/stats")).status_code == 200
        revoked = await tenant.api.delete(f"/v1/keys/{key.split('_')[1]}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert error_of(await api.get("/v1/stats")) == (401, "unauthenticated")


async def test_a_read_only_key_reads_but_may_not_write(served: Served, tenant: Tenant) -> None:
    memory = (await tenant.api.post("/v1/memories", json={"content": "shared fact"})).json()
    async with client_of(served, served.key(tenant.name, Role.READ_ONLY)) as api:
        assert (await api.get(f"/v1/memories/{memory['id']}")).status_code == 200
        assert (await api.post("/v1/recall", json={"query": "fact"})).status_code == 200
        refused = [
            await api.post("/v1/memories", json={"content": "x"}),
            await api.patch(f"/v1/memories/{memory['id']}", json={"content": "y"}),
            await api.delete(f"/v1/memories/{memory['id']}"),
            await api.post(
                "/v1/import", content=b"", headers={"content-type": "application/x-ndjson"}
            ),
        ]
    assert [error_of(a) for a in refused] == [(403, "permission_denied")] * 4
    assert (await tenant.api.get(f"/v1/memories/{memory['id']}")).json()["version"] == 1


async def test_purge_needs_an_admin_key(served: Served, tenant: Tenant) -> None:
    memory = (await tenant.api.post("/v1/memories", json={"content": "to erase"})).json()
    async with client_of(served, served.key(tenant.name, Role.READ_WRITE)) as api:
        refused = await api.post(f"/v1/memories/{memory['id']}/purge")
    assert error_of(refused) == (403, "permission_denied")
    async with client_of(served, served.key(tenant.name, Role.ADMIN)) as api:
        assert (await api.post(f"/v1/memories/{memory['id']}/purge")).status_code == 200


async def test_another_tenants_memory_is_not_found_by_any_route(
    served: Served, tenant: Tenant
) -> None:
    mine = (await tenant.api.post("/v1/memories", json={"content": "tenant secret"})).json()
    other = served.mx.admin.create_tenant(f"{tenant.name}-other").name
    async with client_of(served, served.key(other)) as api:
        answers = [
            await api.get(f"/v1/memories/{mine['id']}"),
            await api.get(f"/v1/memories/{mine['id']}/history"),
            await api.patch(f"/v1/memories/{mine['id']}", json={"content": "stolen"}),
            await api.post(f"/v1/memories/{mine['id']}/supersede", json={"content": "stolen"}),
            await api.delete(f"/v1/memories/{mine['id']}"),
            await api.post(f"/v1/memories/{mine['id']}/purge"),
        ]
        assert [error_of(a) for a in answers] == [(404, "not_found")] * 6
        recalled = (await api.post("/v1/recall", json={"query": "tenant secret"})).json()
        assert recalled["hits"] == []
        exported = await api.get("/v1/export")
        assert exported.text == ""
    assert (await tenant.api.get(f"/v1/memories/{mine['id']}")).json()["version"] == 1


async def test_a_project_key_reaches_its_project_only(served: Served, tenant: Tenant) -> None:
    web = (
        await tenant.api.post("/v1/memories", json={"content": "web", "scope": {"project": "web"}})
    ).json()
    api_memory = (
        await tenant.api.post("/v1/memories", json={"content": "api", "scope": {"project": "api"}})
    ).json()
    async with client_of(served, served.key(tenant.name, Role.READ_WRITE, project="web")) as api:
        assert (await api.get(f"/v1/memories/{web['id']}")).status_code == 200
        assert error_of(await api.get(f"/v1/memories/{api_memory['id']}")) == (404, "not_found")
        listed = (await api.get("/v1/memories")).json()["items"]
        assert [m["content"] for m in listed] == ["web"]
        made = (await api.post("/v1/memories", json={"content": "new"})).json()
        assert made["scope"] == {"tenant": tenant.name, "project": "web"}
        outside = await api.post("/v1/memories", json={"content": "x", "scope": {"project": "api"}})
        assert error_of(outside) == (403, "scope_error")
        narrower = await api.post(
            "/v1/memories", json={"content": "y", "scope": {"project": "web", "agent": "a"}}
        )
        assert narrower.status_code == 201
        assert error_of(await api.get("/v1/keys")) == (403, "permission_denied")


async def test_addresses_outside_an_allowlist_are_refused(tmp_path: Path) -> None:
    served = open_served(tmp_path, trusted_proxies=["127.0.0.1/32"])
    tenant = served.mx.admin.create_tenant("office", ["10.0.0.0/8"]).name
    key = served.key(tenant)
    try:
        async with client_of(served, key) as api:
            direct = await api.get("/v1/stats")  # the test client's peer is 127.0.0.1
            assert error_of(direct) == (403, "permission_denied")
            inside = await api.get("/v1/stats", headers={"X-Forwarded-For": "10.1.2.3"})
            assert inside.status_code == 200
            forged = await api.get("/v1/stats", headers={"X-Forwarded-For": "10.1.2.3, 8.8.8.8"})
            assert error_of(forged) == (403, "permission_denied")
    finally:
        served.mx.close()


async def test_forwarded_for_is_ignored_without_trusted_proxies(
    served: Served, tenant: Tenant
) -> None:
    name = served.mx.admin.create_tenant(f"{tenant.name}-office", ["10.0.0.0/8"]).name
    async with client_of(served, served.key(name)) as api:
        answer = await api.get("/v1/stats", headers={"X-Forwarded-For": "10.1.2.3"})
    assert error_of(answer) == (403, "permission_denied")


async def test_without_auth_every_request_is_the_home_tenants_owner(tmp_path: Path) -> None:
    served = open_served(tmp_path, auth=False)
    try:
        async with served.client() as api:
            me = (await api.get("/v1/me")).json()
            assert me == {
                "key": None,
                "tenant": "home",
                "role": "owner",
                "user": None,
                "project": None,
            }
            made = (await api.post("/v1/memories", json={"content": "local"})).json()
            assert made["scope"] == {"tenant": "home"}
            assert (await api.get("/v1/tenants")).status_code == 200
            assert (await api.get("/metrics")).status_code == 200
    finally:
        served.mx.close()


async def test_denials_are_counted_by_reason(tmp_path: Path) -> None:
    served = open_served(tmp_path)
    try:
        async with served.client() as api:
            await api.get("/v1/stats")
            await api.get("/v1/stats")
        async with client_of(served, served.key("home", Role.READ_ONLY)) as api:
            await api.post("/v1/memories", json={"content": "x"})
        async with client_of(served, served.owner) as api:
            text = (await api.get("/metrics")).text
    finally:
        served.mx.close()
    assert 'memex_http_denials_total{reason="missing"} 2.0' in text
    assert 'memex_http_denials_total{reason="role"} 1.0' in text

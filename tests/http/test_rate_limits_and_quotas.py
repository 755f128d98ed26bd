"""Rate limits and quotas on the HTTP API, in process: buckets per key and per tenant,
the RateLimit fields, soft warnings (a header and an event), hard refusals (a stable
code, nothing written), and the quota routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from memexserver import MemexServer

from memex.core.identity import Role
from memex.core.limits import Limit, Rate
from memex.security.limits import LimitPolicy
from memex.security.quotas import LimitEvents
from tests.http.conftest import Served, open_served

pytestmark = pytest.mark.anyio

SLOW = 1 / 3600  # a token an hour: nothing refills while a test runs


class Recorded(LimitEvents):
    """The events a server records, kept for the test to read."""

    REFUSAL_EVERY = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[tuple[str, str, int, Limit]] = []
        self.refusals: list[tuple[str, str | None, str, str | None]] = []

    def on_quota_warning(self, tenant: str, quota: str, used: int, limit: Limit) -> None:
        self.warnings.append((tenant, quota, used, limit))

    def on_refusal(
        self, tenant: str, key_id: str | None, code: str, quota: str | None, held_back: int
    ) -> None:
        self.refusals.append((tenant, key_id, code, quota))


def serve(folder: Path, policy: LimitPolicy, events: LimitEvents) -> Served:
    return open_served(folder, limits=policy, limit_events=events)


@pytest.fixture
def events() -> Recorded:
    return Recorded()


@pytest.fixture
def rated(tmp_path: Path, events: Recorded) -> Iterator[Served]:
    """Three requests per key, five per tenant, no quotas."""
    found = serve(tmp_path, LimitPolicy(Rate(SLOW, 3), Rate(SLOW, 5), quotas=False), events)
    yield found
    found.mx.close()


@pytest.fixture
def quoted(tmp_path: Path, events: Recorded) -> Iterator[Served]:
    """Quotas only (no rate limits)."""
    found = serve(tmp_path, LimitPolicy(None, None, quotas=True), events)
    yield found
    found.mx.close()


def refusal(response: httpx.Response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    assert isinstance(error["message"], str) and "\n" not in error["message"]
    return response.status_code, error["code"], error.get("quota")


async def test_each_key_has_its_bucket_and_the_fields_say_what_is_left(
    rated: Served, events: Recorded
) -> None:
    rated.mx.admin.create_tenant("acme")
    first, second = rated.key("acme"), rated.key("acme", Role.READ_ONLY)
    async with rated.client(first) as api:
        left = []
        for _ in range(3):
            answer = await api.get("/v1/me")
            assert answer.status_code == 200
            assert answer.headers["ratelimit-limit"] == "3"
            left.append(answer.headers["ratelimit-remaining"])
        assert left == ["2", "1", "0"]
        refused = await api.get("/v1/stats")
        assert refusal(refused) == (429, "rate_limited", None)
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
    async with rated.client(second) as api:  # another key of the tenant: its own bucket
        assert (await api.get("/v1/me")).status_code == 200
        assert (await api.get("/v1/me")).status_code == 200
        # the tenant's five are spent now (3 + 2): its third is refused by the tenant's
        assert refusal(await api.get("/v1/me"))[:2] == (429, "rate_limited")
    key_id = rated.mx.admin.keys("acme")[0].id
    assert ("acme", key_id, "rate_limited", None) in events.refusals


async def test_one_tenant_spending_its_limit_leaves_another_alone(rated: Served) -> None:
    for name in ("busy", "calm"):
        rated.mx.admin.create_tenant(name)
    async with rated.client(rated.key("busy")) as busy, rated.client(rated.key("calm")) as calm:
        while (await busy.get("/v1/me")).status_code == 200:
            pass
        for _ in range(3):
            answer = await calm.get("/v1/me")
            assert answer.status_code == 200, answer.text
        assert (await busy.get("/v1/me")).status_code == 429


async def test_no_limits_without_a_policy(tmp_path: Path) -> None:
    plain = open_served(tmp_path)
    try:
        async with plain.client(plain.owner) as api:
            answer = await api.get("/v1/me")
            assert answer.status_code == 200 and "ratelimit-limit" not in answer.headers
    finally:
        plain.mx.close()


async def test_memories_soft_warns_and_hard_refuses_the_whole_batch(
    quoted: Served, events: Recorded
) -> None:
    quoted.mx.admin.create_tenant("acme")
    quoted.mx.set_quota("acme", memories=4, memories_soft=2)
    async with quoted.client(quoted.key("acme")) as api:
        first = await api.post("/v1/memories", json={"content": "one"})
        assert first.status_code == 201 and "memex-quota-warning" not in first.headers
        second = await api.post("/v1/memories", json={"content": "two"})
        assert second.headers["memex-quota-warning"] == "memories 2/4"
        assert events.warnings == [("acme", "memories", 2, Limit(4, 2))]
        batch = {"items": [{"content": f"batch {i}"} for i in range(3)]}
        refused = await api.post("/v1/memories/batch", json=batch)
        assert refusal(refused) == (409, "quota_exceeded", "memories")
        lines = "\n".join(json.dumps({"content": f"imported {i}"}) for i in range(3))
        imported = await api.post(
            "/v1/import", content=lines, headers={"content-type": "application/x-ndjson"}
        )
        assert refusal(imported) == (409, "quota_exceeded", "memories")
        assert (await api.get("/v1/stats")).json()["memories"] == 2  # nothing half-written
        assert ("acme", None, "quota_exceeded", "memories") in events.refusals
        fits = await api.post("/v1/memories/batch", json={"items": batch["items"][:2]})
        assert fits.status_code == 201
        assert fits.headers["memex-quota-warning"] == "memories 4/4"
        assert refusal(await api.post("/v1/memories", json={"content": "five"}))[1:] == (
            "quota_exceeded",
            "memories",
        )
    assert quoted.mx.scoped(tenant="acme").stats().memories == 4


async def test_storage_quota_counts_content_bytes(quoted: Served) -> None:
    quoted.mx.admin.create_tenant("acme")
    quoted.mx.set_quota("acme", storage_mb=1, storage_mb_soft=0)
    async with quoted.client(quoted.key("acme")) as api:
        small = await api.post("/v1/memories", json={"content": "x" * 1000})
        assert small.headers["memex-quota-warning"] == "storage_mb 1/1"
        big = {"items": [{"content": "y" * 60_000} for _ in range(17)]}  # 1.02 MB with it
        assert refusal(await api.post("/v1/memories/batch", json=big)) == (
            409,
            "quota_exceeded",
            "storage_mb",
        )
    assert quoted.mx.quota("acme").used["memories"] == 1


async def test_calls_per_hour(quoted: Served, events: Recorded) -> None:
    quoted.mx.admin.create_tenant("acme")
    quoted.mx.set_quota("acme", calls_per_hour=3, calls_per_hour_soft=2)
    async with quoted.client(quoted.key("acme")) as api:
        assert "memex-quota-warning" not in (await api.get("/v1/me")).headers
        assert (await api.get("/v1/me")).headers["memex-quota-warning"] == "calls_per_hour 2/3"
        assert (await api.get("/v1/me")).status_code == 200
        refused = await api.get("/v1/me")
        assert refusal(refused) == (429, "quota_exceeded", "calls_per_hour")
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert refusal(await api.get("/v1/quota"))[2] == "calls_per_hour"
    assert events.warnings == [("acme", "calls_per_hour", 2, Limit(3, 2))]
    assert quoted.mx.quota("acme").used["calls_per_hour"] == 3


async def test_users_and_projects_quotas(quoted: Served) -> None:
    quoted.mx.admin.create_tenant("acme")
    quoted.mx.set_quota("acme", users=1, projects=2, projects_soft=1)
    async with quoted.client(quoted.key("acme")) as api:
        assert (await api.post("/v1/users", json={"name": "ann"})).status_code == 201
        refused = await api.post("/v1/users", json={"name": "bob"})
        assert refusal(refused) == (409, "quota_exceeded", "users")
        assert (await api.post("/v1/projects", json={"name": "p1"})).status_code == 201
        assert (await api.post("/v1/projects", json={"name": "p2"})).status_code == 201
        assert refusal(await api.post("/v1/projects", json={"name": "p3"}))[2] == "projects"
    assert [u.name for u in quoted.mx.admin.users("acme")] == ["ann"]


async def test_quota_routes_round_trip_and_are_confined(quoted: Served) -> None:
    quoted.mx.admin.create_tenant("acme")
    quoted.mx.admin.create_tenant("other")
    acme = quoted.key("acme")
    async with quoted.client(quoted.owner) as home:
        changed = await home.patch(
            "/v1/tenants/acme/quota", json={"memories": 20000, "memories_soft": 15000}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["quotas"]["memories"] == {"hard": 20000, "soft": 15000, "used": 0}
        assert changed.json()["defaults"] is False
        mine = (await home.get("/v1/quota")).json()
        assert mine["quotas"]["memories"]["hard"] is None  # the home tenant: none by default
        bad = await home.patch("/v1/tenants/acme/quota", json={"users": -1})
        assert bad.status_code == 422
        missing = await home.get("/v1/tenants/nobody/quota")
        assert missing.status_code == 404
    async with quoted.client(acme) as api:
        own = (await api.get("/v1/quota")).json()
        assert own["tenant"] == "acme"
        assert own["quotas"]["memories"]["soft"] == 15000
        assert own["quotas"]["users"] == {"hard": 5, "soft": 4, "used": 0}
        raised = await api.patch("/v1/quota", json={"memories": 10**9})
        assert refusal(raised)[:2] == (403, "permission_denied")  # no tenant sets its own
        assert (await api.get("/v1/tenants/other/quota")).status_code == 404
        reset = await api.patch("/v1/tenants/acme/quota", json={"reset": True})
        assert reset.status_code == 403
    async with quoted.client(quoted.owner) as home:
        back = (await home.patch("/v1/tenants/acme/quota", json={"reset": True})).json()
        assert back["defaults"] is True and back["quotas"]["memories"]["hard"] == 10000


def test_client_quota_methods(memex_server: MemexServer) -> None:
    """``Client.quota``/``set_quota`` against a real server, as ``Memex`` has them."""
    from memex import Client, NotFoundError, PermissionDeniedError

    tenant, key = memex_server.new_tenant()
    with Client(memex_server.url, memex_server.owner_key) as home:
        report = home.set_quota(tenant, users=2, users_soft=None, memories=50)
        assert (report.quotas.users, report.quotas.memories) == (Limit(2, None), Limit(50, 50))
        assert home.quota(tenant).quotas.users == Limit(2, None)
        assert home.quota().tenant == memex_server.home_tenant
        with pytest.raises(NotFoundError):
            home.quota("no-such-tenant")
    with Client(memex_server.url, key) as own:
        assert own.quota().quotas.users == Limit(2, None)
        assert own.quota().used["memories"] == 0
        with pytest.raises(PermissionDeniedError):
            own.set_quota(users=100)


async def test_warnings_and_refusals_are_in_the_tenants_audit_chain(tmp_path: Path) -> None:
    found = open_served(tmp_path, limits=LimitPolicy(Rate(SLOW, 2), None, quotas=True))
    try:
        found.mx.admin.create_tenant("acme")
        found.mx.set_quota("acme", memories=3, memories_soft=2)
        async with found.client(found.key("acme")) as api:
            for text in ("zebra-marker-1", "zebra-marker-2"):
                assert (await api.post("/v1/memories", json={"content": text})).is_success
            limited = await api.get("/v1/stats")
            assert limited.status_code == 429
        trail = found.mx.audit_export(tenant="acme")
        seen = [(e.action, e.outcome, e.detail) for e in trail.entries]
        assert ("quota.warning", "warning", "memories 2/3") in seen
        assert any(a == "read" and o == "denied" and "rate_limited" in d for a, o, d in seen)
        assert trail.summary and all("zebra" not in str(e.to_dict()) for e in trail.entries)
        assert all(v.ok for v in found.mx.audit_verify(tenant="acme"))
    finally:
        found.mx.close()


async def test_an_update_that_grows_content_past_the_storage_quota_is_refused(
    quoted: Served,
) -> None:
    quoted.mx.admin.create_tenant("acme")
    quoted.mx.set_quota("acme", storage_mb=1, storage_mb_soft=None)
    async with quoted.client(quoted.key("acme")) as api:
        batch = {"items": [{"content": "y" * 62_400} for _ in range(16)]}  # 0.9984 MB
        assert (await api.post("/v1/memories/batch", json=batch)).status_code == 201
        first = (await api.get("/v1/memories", params={"limit": 1})).json()["items"][0]
        grown = await api.patch(f"/v1/memories/{first['id']}", json={"content": "z" * 64_400})
        assert refusal(grown) == (409, "quota_exceeded", "storage_mb")
        kept = (await api.get(f"/v1/memories/{first['id']}")).json()
        assert kept["content"] == first["content"] and kept["version"] == first["version"]
        shrunk = await api.patch(f"/v1/memories/{first['id']}", json={"content": "short"})
        assert shrunk.status_code == 200  # what frees room is never refused

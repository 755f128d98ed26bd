"""The privacy operations over HTTP, through ``memex.Client`` against a real server:
confined to the key's tenant (another tenant's user is not found), admin and owner keys
only, and a whole tenant erased by an owner of the home tenant only."""

from __future__ import annotations

import pytest
from memexserver import MemexServer

from memex import Client, NotFoundError, PermissionDeniedError, ValidationError


def test_export_erase_and_anonymise_through_the_client(memex_server: MemexServer) -> None:
    tenant, owner = memex_server.new_tenant()
    _, stranger = memex_server.new_tenant()
    with Client(memex_server.url, owner) as client:
        client.remember_many(
            [{"content": f"alice {i} zqalice", "scope": {"user": "alice"}} for i in range(4)]
            + [{"content": f"bob {i}", "scope": {"user": "bob"}} for i in range(3)]
        )
        package = client.export_user("alice")
        assert package.selector.tenant == tenant and len(package.memories) == 4
        steps = []
        receipt = client.erase(user="alice", batch_size=2, progress=steps.append)
        assert receipt.counts["memories"] == 4 and steps[-1].done == 4
        assert client.recall("zqalice", 5, scope={"user": "alice"}) == []
        with pytest.raises(NotFoundError):
            client.erase(user="alice")
        renamed = client.anonymise("bob")
        assert renamed.counts["memories"] == 3
        assert client.stats().memories == 3
        with pytest.raises(PermissionDeniedError):
            client.erase(tenant=tenant)  # not an owner of the home tenant
    with Client(memex_server.url, stranger) as other:
        with pytest.raises(NotFoundError):
            other.export_user(renamed.pseudonym)  # another tenant's user
        with pytest.raises(NotFoundError):
            other.erase(user=renamed.pseudonym)


def test_roles_and_the_home_owner(memex_server: MemexServer) -> None:
    import httpx

    tenant, owner = memex_server.new_tenant()
    made = httpx.post(
        f"{memex_server.url}/v1/keys",
        json={"role": "read_write"},
        headers={"authorization": f"Bearer {owner}"},
        timeout=30,
    )
    writer = made.json()["key"]
    with Client(memex_server.url, writer) as client:
        client.remember("carol's note", scope={"user": "carol"})
        with pytest.raises(PermissionDeniedError):
            client.export_user("carol")
        with pytest.raises(PermissionDeniedError):
            client.erase(user="carol")
    with Client(memex_server.url, memex_server.owner_key) as home:
        with pytest.raises(ValidationError):
            home.erase(tenant=memex_server.home_tenant)  # its own tenant: not over HTTP
        receipt = home.erase(tenant=tenant)
        assert (receipt.counts["memories"], receipt.counts["tenants"]) == (1, 1)
        assert receipt.counts["keys"] == 2
        with pytest.raises(NotFoundError):
            home.erase(tenant=tenant)
    with Client(memex_server.url, owner) as gone, pytest.raises(Exception, match="key"):
        gone.stats()  # the tenant's keys went with it

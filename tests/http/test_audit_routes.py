"""The audit routes and the client's audit methods against a real ``memex serve``: an
owner reads and verifies its own tenant's chain, which records its writes and every
refusal; keys below admin are refused (and that is recorded too); no tenant sees
another's chain."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from memexserver import MemexServer

from memex import AsyncClient, Client, PermissionDeniedError, ScopeError


def key_of(server: MemexServer, owner: str, role: str) -> str:
    answer = httpx.post(
        f"{server.url}/v1/keys",
        json={"role": role},
        headers={"authorization": f"Bearer {owner}"},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["key"])


def test_an_owner_reads_its_own_chain_with_writes_and_refusals(
    memex_server: MemexServer, tmp_path: Path
) -> None:
    tenant, owner = memex_server.new_tenant()
    reader = key_of(memex_server, owner, "read_only")
    with Client(memex_server.url, reader) as mx:
        with pytest.raises(PermissionDeniedError):
            mx.remember("a reader may not write this")
        with pytest.raises(PermissionDeniedError):
            mx.audit_verify()
    with Client(memex_server.url, owner) as mx:
        made = mx.remember("the owner's secret plan")
        mx.forget(made.id)
        [verdict] = mx.audit_verify()
        assert verdict.ok and verdict.tenant == tenant
        report = mx.audit_export(path=tmp_path / "report.jsonl")
        with pytest.raises(ScopeError):
            mx.audit_export(tenant="someone-else")
    actions = [(e.action, e.outcome) for e in report.entries]
    assert ("memory.remember", "ok") in actions and ("memory.forget", "ok") in actions
    assert ("write", "denied") in actions and ("read_audit", "denied") in actions
    assert {e.tenant for e in report.entries} == {tenant}
    assert all(e.client == "127.0.0.1" for e in report.entries if e.outcome == "denied")
    assert any((e.user_agent or "").startswith("python-httpx") for e in report.entries)
    assert "secret plan" not in json.dumps(report.to_dict())
    lines = (tmp_path / "report.jsonl").read_text().splitlines()
    assert len(lines) == len(report.entries) + 1
    assert json.loads(lines[-1])["report"]["summary"]["entries"] == len(report.entries)


@pytest.mark.anyio
async def test_the_async_client_mirrors_it(memex_server: MemexServer) -> None:
    tenant, owner = memex_server.new_tenant()
    async with AsyncClient(memex_server.url, owner) as mx:
        await mx.remember("async note")
        [verdict] = await mx.audit_verify()
        report = await mx.audit_export(since="2000-01-01T00:00:00Z")
    assert verdict.ok and verdict.entries >= 2  # the tenant's creation, its key, the note
    assert report.entries[-1].action == "memory.remember"
    assert report.tenants == (tenant,)
    assert report.heads[0].seq == verdict.head.seq  # type: ignore[union-attr]

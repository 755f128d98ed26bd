"""``Client`` against a real memex server, beyond the shared API tests: a key's scope,
imports larger than one chunk, contexts read back whole, the key never in a repr."""

from __future__ import annotations

import json

import httpx
import pytest
from memexserver import MemexServer

from memex import (
    Client,
    Context,
    ImportFormatError,
    Memory,
    PermissionDeniedError,
    Scope,
    ScopeError,
)


def admin(server: MemexServer, key: str, path: str, body: dict[str, object]) -> dict[str, object]:
    answer = httpx.post(
        f"{server.url}{path}", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30
    )
    answer.raise_for_status()
    result: dict[str, object] = answer.json()
    return result


def test_a_keys_scope_is_the_clients(memex_server: MemexServer) -> None:
    tenant, owner = memex_server.new_tenant()
    admin(memex_server, owner, "/v1/projects", {"name": "web"})
    issued = admin(memex_server, owner, "/v1/keys", {"role": "read_write", "project": "web"})
    with Client(memex_server.url, str(issued["key"])) as mx:
        assert mx.scope == Scope(tenant=tenant, project="web")
        assert mx.me()["role"] == "read_write"
        made = mx.remember("only for the web project")
        assert made.scope == Scope(tenant=tenant, project="web")
        with pytest.raises(ScopeError):
            mx.recall("anything", scope={"project": "api"})
        with pytest.raises(ScopeError):
            mx.list(scope={"tenant": "elsewhere"})
        with pytest.raises(PermissionDeniedError):
            mx.purge(made.id)  # read_write keys may not purge
        assert str(issued["key"]) not in repr(mx)


def test_a_large_import_streams_in_chunks(memex_server: MemexServer) -> None:
    _, key = memex_server.new_tenant()
    lines = (json.dumps({"content": f"memory {i}: " + "words " * 40}) for i in range(1500))
    with Client(memex_server.url, key) as mx:
        steps: list[int] = []
        imported = mx.import_lines(lines, progress=lambda step: steps.append(step.done))
        assert len(imported) == 1500 and all(isinstance(m, Memory) for m in imported)
        assert steps[-1] == 1500 and steps == sorted(steps)
        assert mx.stats().memories == 1500
        assert imported[7] == mx.history(imported[7].id)[-1]
        exported = list(mx.export_lines())
        assert [json.loads(x)["id"] for x in exported] == [m.id for m in imported]
        with pytest.raises(ImportFormatError) as caught:
            mx.import_lines([*exported[:3], '{"content": ""}'])
        assert caught.value.line == 4 and mx.stats().memories == 1500
        with pytest.raises(ImportFormatError, match="line 2: a record must be on one line"):
            mx.import_lines(iter([exported[0], '{"content":\n"two lines"}']))  # not sent
        assert mx.stats().memories == 1500 and mx.get(imported[0].id) == imported[0]


def test_a_context_comes_back_whole(memex_server: MemexServer) -> None:
    _, key = memex_server.new_tenant()
    with Client(memex_server.url, key) as mx:
        pinned = mx.remember("Answer in French", kind="preference", tags=["pinned"])
        mx.remember("The deploy runs on Fridays", kind="fact")
        ctx = mx.context("when is the deploy?", budget_tokens=300, session="chat-1")
        again = mx.context("when is the deploy?", budget_tokens=300, session="chat-1")
    assert isinstance(ctx, Context) and ctx.tokens <= 300
    shown = {m.id: m for s in ctx.sections for m in s.memories}
    assert shown[pinned.id].content == "Answer in French"
    assert all(s.text in ctx.text for s in ctx.sections if s.memories)
    assert {e.memory_id for e in ctx.manifest if e.included} == set(shown)
    assert ctx.prefix_tokens_reused is None and again.prefix_tokens_reused

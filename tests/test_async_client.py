"""``AsyncClient`` against a real memex server: the same methods as ``Client`` and
``Memex``, as coroutines, with the same values and errors (driven by ``asyncio.run``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from memexserver import MemexServer
from test_cli_server import elsewhere

from memex import (
    AsyncClient,
    Client,
    Context,
    Hit,
    ImportFormatError,
    Memory,
    NotFoundError,
    Page,
    ScopeError,
    Stats,
    ValidationError,
)


def unread(memory: Memory) -> dict[str, object]:
    """A memory's fields but its read statistics, which reads change meanwhile."""
    data = memory.to_dict()
    del data["access_count"], data["last_accessed_at"]
    return data


@pytest.fixture
def key(memex_server: MemexServer) -> str:
    return memex_server.new_tenant()[1]


def test_the_async_client_has_the_api_of_memex(memex_server: MemexServer, key: str) -> None:
    async def main() -> None:
        async with AsyncClient(memex_server.url, key) as mx:
            t = datetime(2024, 3, 1, tzinfo=UTC)
            fact = await mx.remember(
                "Alice works at Initech", kind="fact", tags=["job"], created_at=t
            )
            assert isinstance(fact, Memory) and fact.created_at == t
            assert fact.scope.tenant == (await mx.scope()).tenant
            brief = await mx.remember("gone in an hour", ttl=timedelta(hours=1))
            assert brief.expires_at == brief.created_at + timedelta(hours=1)
            await mx.purge(brief.id)
            batch = await mx.remember_many(
                [{"content": f"note {i} about gardening", "created_at": t + timedelta(i)}
                 for i in range(1, 4)]
            )  # fmt: skip
            assert [m.content for m in batch] == [f"note {i} about gardening" for i in (1, 2, 3)]
            newer = await mx.supersede(fact.id, "Alice works at Globex")
            assert newer.kind == "fact" and newer.tags == ("job",)
            hits = await mx.recall("where does Alice work?", k=3)
            assert all(isinstance(h, Hit) for h in hits) and hits[0].memory.id == newer.id
            then = await mx.recall("Alice works", as_of=t + timedelta(hours=1))
            assert [h.memory.id for h in then] == [fact.id]
            got = await mx.get(newer.id)
            assert unread(got) == unread(newer)
            edited = await mx.update(newer.id, importance=0.9, source="hr")
            assert (edited.version, edited.importance, edited.source) == (2, 0.9, "hr")
            assert edited.content == newer.content  # left out: kept
            cleared = await mx.update(newer.id, source=None)
            assert cleared.source is None and cleared.importance == 0.9
            assert [v.version for v in await mx.history(newer.id)] == [1, 2, 3]
            page = await mx.list(limit=2, order="asc")
            assert isinstance(page, Page) and len(page.items) == 2 and page.next_cursor
            rest = await mx.list(limit=10, order="asc", cursor=page.next_cursor)
            assert len(page.items) + len(rest.items) == 4  # the superseded fact is left out
            window = await mx.range(t + timedelta(days=1), t + timedelta(days=3))
            assert [m.content for m in window] == [
                "note 1 about gardening",
                "note 2 about gardening",
            ]
            stats = await mx.stats()
            assert isinstance(stats, Stats) and stats.memories == 4 and stats.path == mx.location
            ctx = await mx.context("where does Alice work?", budget_tokens=200)
            assert isinstance(ctx, Context) and "Globex" in ctx.text and ctx.tokens <= 200
            forgotten = await mx.forget(batch[0].id)
            assert forgotten.deleted_at is not None
            with pytest.raises(NotFoundError):
                await mx.get(batch[0].id)
            assert await mx.purge(batch[0].id.upper()) == batch[0].id
            with pytest.raises(ValidationError):
                await mx.recall("")
            with pytest.raises(ScopeError):
                await mx.list(scope={"tenant": "someone-else"})

    asyncio.run(main())


def test_export_and_import_stream(memex_server: MemexServer, key: str) -> None:
    _, other = memex_server.new_tenant()

    async def main() -> None:
        async with AsyncClient(memex_server.url, key) as source:
            await source.remember_many([{"content": f"line {i} \u2028 and more"} for i in range(3)])
            lines = [line async for line in source.export_lines(history=True)]
            assert len(lines) == 3 and all("\n" not in line for line in lines)

        async def feed() -> AsyncIterator[str]:
            for line in lines:
                yield line

        async with AsyncClient(memex_server.url, other) as target:
            imported = await target.import_lines(feed())
            assert [m.content for m in imported] == [json.loads(x)["content"] for x in lines]
            again = [line async for line in target.export_lines(history=True)]
            assert [elsewhere(line) for line in again] == [elsewhere(line) for line in lines]
            with pytest.raises(ImportFormatError) as caught:
                await target.import_lines(['{"content": "fine"}', "{not json"])
            assert caught.value.line == 2
            assert (await target.stats()).memories == 3

    asyncio.run(main())


def test_sync_and_async_clients_agree(memex_server: MemexServer, key: str) -> None:
    with Client(memex_server.url, key) as mx:
        made = mx.remember("the same memory, read twice", metadata={"k": ["ü", 1, None]})
        hits = mx.recall("memory read twice")

    async def main() -> tuple[Memory, list[Hit]]:
        async with AsyncClient(memex_server.url, key) as amx:
            return await amx.get(made.id), await amx.recall("memory read twice")

    got, ahits = asyncio.run(main())
    assert unread(got) == unread(made)
    assert [(h.memory.id, h.score) for h in ahits] == [(h.memory.id, h.score) for h in hits]

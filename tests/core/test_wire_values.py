"""The values the HTTP API answers with, read back: ``*_from_dict`` inverts ``to_dict``
exactly, on values a real store made (None fields, metadata, Unicode, every state)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex import Memex, Memory
from memex.core import wire


def through_json(data: object) -> object:
    """What the other end of the wire reads."""
    return json.loads(json.dumps(data, ensure_ascii=False))


@pytest.fixture
def memories(tmp_path: Path) -> tuple[Memex, list[Memory]]:
    mx = Memex.open(tmp_path / "m.db")
    t = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    plain = mx.remember("plain, every optional field left out")
    rich = mx.remember(
        'Ünïcödé, emoji 🧠, a line\u2028separator and "quotes"',
        kind="fact",
        tags=["ß", "tag-2"],
        metadata={"n": 1, "f": 0.1, "none": None, "nested": {"list": [1, "二"]}, "b": True},
        scope={"project": "p", "user": "u@x.org", "agent": "a", "session": "s"},
        importance=0.123456789,
        created_at=t,
        expires_at=t + timedelta(days=9999),
        source="https://example.org/ä",
    )
    newer = mx.supersede(rich.id, "the fact as it is now")
    forgotten = mx.forget(mx.remember("soon forgotten", ttl=3600).id)
    mx.get(plain.id)
    mx.close()
    with Memex.open(tmp_path / "m.db") as again:  # read back as the store returns them
        found = [*again.history(rich.id), again.get(newer.id), again.get(plain.id)]
        found += again.history(forgotten.id)
        return again, found


def test_memory_round_trips_exactly(memories: tuple[Memex, list[Memory]]) -> None:
    _, found = memories
    states = {m.state() for m in found}
    assert {"current", "superseded", "forgotten"} <= states
    assert any(m.last_accessed_at is not None for m in found)
    assert any(m.expires_at is None and m.source is None for m in found)
    for memory in found:
        back = wire.memory_from_dict(through_json(memory.to_dict()))  # type: ignore[arg-type]
        assert back == memory
        assert back.to_dict() == memory.to_dict()
        assert type(back.tags) is tuple and type(back.created_at) is datetime
        assert back.created_at.utcoffset() == timedelta(0)


def test_a_newer_servers_extra_fields_are_ignored(memories: tuple[Memex, list[Memory]]) -> None:
    memory = memories[1][0]
    data = {**memory.to_dict(), "embedding_model": "x"}
    assert wire.memory_from_dict(data) == memory


def test_a_missing_field_is_an_error(memories: tuple[Memex, list[Memory]]) -> None:
    data = memories[1][0].to_dict()
    del data["version"]
    with pytest.raises(KeyError):
        wire.memory_from_dict(data)


def test_hits_stats_and_pages_round_trip(tmp_path: Path) -> None:
    with Memex.open(tmp_path / "m.db") as mx:
        mx.remember_many([{"content": f"gardening note {i}", "kind": "fact"} for i in range(5)])
        hits = mx.recall("gardening", k=3)
        assert hits and any(h.lexical_rank is not None for h in hits)
        for hit in hits:
            assert wire.hit_from_dict(through_json(hit.to_dict())) == hit  # type: ignore[arg-type]
        stats = mx.stats()
        assert wire.stats_from_dict(through_json(stats.to_dict())) == stats  # type: ignore[arg-type]
        page = mx.list(limit=2)
        data = {"items": [m.to_dict() for m in page.items], "next_cursor": page.next_cursor}
        assert wire.page_from_dict(through_json(data)) == page  # type: ignore[arg-type]


def test_context_round_trips_with_its_sections_memories(tmp_path: Path) -> None:
    with Memex.open(tmp_path / "m.db") as mx:
        mx.remember("Always answer in French", kind="preference", tags=["pinned"])
        mx.remember("The deploy runs on Fridays", kind="fact")
        mx.remember("We chose SQLite for the embedded store", kind="decision")
        ctx = mx.context("when do we deploy?", budget_tokens=300, session="s1")
    assert any(s.memories for s in ctx.sections) and ctx.manifest
    back = wire.context_from_dict(through_json(ctx.to_dict()))  # type: ignore[arg-type]
    assert back == ctx
    assert back.stable_text == ctx.stable_text
    assert [s.text for s in back.sections] == [s.text for s in ctx.sections]

"""The memory routes over HTTP: each answers what the same Memex call returns locally."""

from __future__ import annotations

import pytest

from tests.http.conftest import Served, Tenant, error_of

pytestmark = pytest.mark.anyio


async def test_remember_answers_201_with_the_memory_and_get_reads_it(tenant: Tenant) -> None:
    created = await tenant.api.post(
        "/v1/memories",
        json={
            "content": "Deploys happen on Fridays",
            "kind": "fact",
            "tags": ["ops"],
            "metadata": {"team": "infra", "n": 3},
            "scope": {"project": "web", "agent": "bot"},
            "importance": 0.8,
            "created_at": "2024-05-01T10:00:00",
            "ttl": 3600 * 24 * 365 * 10,
            "source": "chat",
        },
    )
    assert created.status_code == 201
    memory = created.json()
    assert memory["content"] == "Deploys happen on Fridays"
    assert memory["scope"] == {"tenant": tenant.name, "project": "web", "agent": "bot"}
    assert memory["tags"] == ["ops"] and memory["metadata"] == {"team": "infra", "n": 3}
    assert memory["importance"] == 0.8 and memory["source"] == "chat"
    assert memory["created_at"] == "2024-05-01T10:00:00+00:00"  # naive means UTC
    assert memory["expires_at"] is not None and memory["version"] == 1

    got = await tenant.api.get(f"/v1/memories/{memory['id']}")
    assert got.status_code == 200
    again = got.json()
    assert {k: v for k, v in again.items() if k not in ("access_count", "last_accessed_at")} == {
        k: v for k, v in memory.items() if k not in ("access_count", "last_accessed_at")
    }


async def test_a_batch_is_stored_whole_or_not_at_all(tenant: Tenant) -> None:
    good = await tenant.api.post(
        "/v1/memories/batch", json={"items": [{"content": "one"}, {"content": "two"}]}
    )
    assert good.status_code == 201
    assert [m["content"] for m in good.json()["memories"]] == ["one", "two"]

    bad = await tenant.api.post(
        "/v1/memories/batch",
        json={"items": [{"content": "three"}, {"content": "four", "importance": 7}]},
    )
    assert error_of(bad) == (422, "validation_error")
    listed = (await tenant.api.get("/v1/memories")).json()["items"]
    assert sorted(m["content"] for m in listed) == ["one", "two"]


async def test_update_makes_a_new_version_and_null_clears_source(tenant: Tenant) -> None:
    memory = (
        await tenant.api.post("/v1/memories", json={"content": "draft", "source": "chat"})
    ).json()
    changed = await tenant.api.patch(
        f"/v1/memories/{memory['id']}", json={"content": "final", "source": None}
    )
    assert changed.status_code == 200
    new = changed.json()
    assert (new["content"], new["source"], new["version"]) == ("final", None, 2)
    kept = await tenant.api.patch(f"/v1/memories/{memory['id']}", json={"importance": 0.9})
    assert (kept.json()["content"], kept.json()["importance"]) == ("final", 0.9)

    history = await tenant.api.get(f"/v1/memories/{memory['id']}/history")
    assert history.status_code == 200
    assert [v["content"] for v in history.json()["versions"]] == ["draft", "final", "final"]


async def test_supersede_links_old_and_new_and_carries_kind_over(tenant: Tenant) -> None:
    old = (
        await tenant.api.post("/v1/memories", json={"content": "Alice at Initech", "kind": "fact"})
    ).json()
    answer = await tenant.api.post(
        f"/v1/memories/{old['id']}/supersede", json={"content": "Alice at Globex"}
    )
    assert answer.status_code == 201
    new = answer.json()
    assert new["kind"] == "fact" and new["content"] == "Alice at Globex"
    replaced = (await tenant.api.get(f"/v1/memories/{old['id']}")).json()
    assert replaced["superseded_by"] == new["id"]


async def test_forget_hides_a_memory_and_purge_erases_its_history(tenant: Tenant) -> None:
    memory = (await tenant.api.post("/v1/memories", json={"content": "secret plan"})).json()
    forgotten = await tenant.api.delete(f"/v1/memories/{memory['id']}")
    assert forgotten.status_code == 200 and forgotten.json()["deleted_at"] is not None
    assert error_of(await tenant.api.get(f"/v1/memories/{memory['id']}")) == (404, "not_found")
    assert error_of(await tenant.api.delete(f"/v1/memories/{memory['id']}"))[0] == 404
    assert (await tenant.api.get(f"/v1/memories/{memory['id']}/history")).status_code == 200

    purged = await tenant.api.post(f"/v1/memories/{memory['id']}/purge")
    assert purged.status_code == 200 and purged.json() == {"purged": memory["id"]}
    gone = await tenant.api.get(f"/v1/memories/{memory['id']}/history")
    assert error_of(gone) == (404, "not_found")
    assert error_of(await tenant.api.post(f"/v1/memories/{memory['id']}/purge"))[0] == 404


async def test_list_filters_and_pages_with_the_cursor(tenant: Tenant) -> None:
    items = [
        {"content": f"note {i}", "kind": "fact" if i % 2 else "note", "tags": [f"t{i % 3}"],
         "scope": {"project": "a" if i < 6 else "b"}, "metadata": {"i": i},
         "created_at": f"2024-01-0{i + 1}T00:00:00Z"}
        for i in range(8)
    ]  # fmt: skip
    assert (await tenant.api.post("/v1/memories/batch", json={"items": items})).status_code == 201

    async def contents(**query: object) -> list[str]:
        answer = await tenant.api.get("/v1/memories", params=query)  # type: ignore[arg-type]
        assert answer.status_code == 200, answer.text
        return [m["content"] for m in answer.json()["items"]]

    assert await contents(kind="fact", order="asc") == ["note 1", "note 3", "note 5", "note 7"]
    assert await contents(kind=["fact", "note"], tag="t0", order="asc") == [
        "note 0", "note 3", "note 6"
    ]  # fmt: skip
    assert await contents(project="b") == ["note 7", "note 6"]
    assert await contents(metadata='{"i": 4}') == ["note 4"]
    assert await contents(since="2024-01-03", until="2024-01-05", order="asc") == [
        "note 2", "note 3"
    ]  # fmt: skip

    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await tenant.api.get("/v1/memories", params=query)).json()
        seen += [m["content"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"note {i}" for i in reversed(range(8))]


async def test_list_include_flags_show_forgotten_and_superseded(tenant: Tenant) -> None:
    a = (await tenant.api.post("/v1/memories", json={"content": "a"})).json()
    b = (await tenant.api.post("/v1/memories", json={"content": "b"})).json()
    await tenant.api.post(f"/v1/memories/{b['id']}/supersede", json={"content": "b2"})
    await tenant.api.delete(f"/v1/memories/{a['id']}")

    async def contents(**query: object) -> set[str]:
        answer = await tenant.api.get("/v1/memories", params=query)  # type: ignore[arg-type]
        return {m["content"] for m in answer.json()["items"]}

    assert await contents() == {"b2"}
    assert await contents(include_superseded="true") == {"b", "b2"}
    assert await contents(include_deleted="true", include_superseded="true") == {"a", "b", "b2"}


async def test_range_answers_current_memories_in_the_window_oldest_first(tenant: Tenant) -> None:
    items = [
        {"content": f"day {d}", "created_at": f"2024-03-{d:02d}T12:00:00Z", "kind": "event"}
        for d in (1, 2, 3, 4)
    ]
    await tenant.api.post("/v1/memories/batch", json={"items": items})
    answer = await tenant.api.get(
        "/v1/range", params={"start": "2024-03-02", "end": "2024-03-04", "kind": "event"}
    )
    assert answer.status_code == 200
    assert [m["content"] for m in answer.json()["items"]] == ["day 2", "day 3"]
    limited = await tenant.api.get("/v1/range", params={"limit": 1})
    assert [m["content"] for m in limited.json()["items"]] == ["day 1"]
    backwards = await tenant.api.get(
        "/v1/range", params={"start": "2024-03-04", "end": "2024-03-01"}
    )
    assert error_of(backwards) == (422, "validation_error")


async def test_the_answers_have_the_fields_the_openapi_document_declares(
    tenant: Tenant, served: Served
) -> None:
    from memex.interfaces.http import responses

    memory = (await tenant.api.post("/v1/memories", json={"content": "shape"})).json()
    assert set(memory) == set(responses.MemoryOut.model_fields)
    responses.MemoryOut.model_validate(memory)
    hits = (await tenant.api.post("/v1/recall", json={"query": "shape"})).json()
    assert set(hits["hits"][0]) == set(responses.HitOut.model_fields)
    responses.HitsOut.model_validate(hits)
    context = (await tenant.api.post("/v1/context", json={"query": "shape"})).json()
    assert set(context) == set(responses.ContextOut.model_fields)
    responses.ContextOut.model_validate(context)
    stats = (await tenant.api.get("/v1/stats")).json()
    assert set(stats) == set(responses.StatsOut.model_fields)
    me = (await tenant.api.get("/v1/me")).json()
    assert set(me) == set(responses.MeOut.model_fields)
    assert set(me["key"]) == set(responses.KeyOut.model_fields)

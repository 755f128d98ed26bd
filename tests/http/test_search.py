"""Recall, context and stats over HTTP."""

from __future__ import annotations

import pytest

from tests.http.conftest import Tenant, error_of

pytestmark = pytest.mark.anyio

FACTS = [
    {"content": "Deploys happen on Fridays after the standup", "kind": "fact", "tags": ["ops"]},
    {"content": "Alice prefers tea over coffee", "kind": "preference", "scope": {"user": "alice"}},
    {"content": "The database runs PostgreSQL 16", "kind": "fact", "metadata": {"area": "db"}},
]


async def test_recall_ranks_the_matching_memory_first_with_its_ranks(tenant: Tenant) -> None:
    await tenant.api.post("/v1/memories/batch", json={"items": FACTS})
    answer = await tenant.api.post("/v1/recall", json={"query": "when do we deploy?", "k": 2})
    assert answer.status_code == 200
    hits = answer.json()["hits"]
    assert len(hits) == 2
    assert hits[0]["memory"]["content"].startswith("Deploys happen")
    assert hits[0]["score"] >= hits[1]["score"]
    assert isinstance(hits[0]["explain"], dict)


async def test_recall_filters_modes_weights_and_query_vectors(tenant: Tenant) -> None:
    await tenant.api.post("/v1/memories/batch", json={"items": FACTS})

    async def contents(**body: object) -> list[str]:
        answer = await tenant.api.post("/v1/recall", json={"query": "tea coffee database", **body})
        assert answer.status_code == 200, answer.text
        return [h["memory"]["content"] for h in answer.json()["hits"]]

    assert await contents(kinds=["preference"]) == ["Alice prefers tea over coffee"]
    assert await contents(scope={"user": "alice"}) == ["Alice prefers tea over coffee"]
    assert await contents(metadata={"area": "db"}) == ["The database runs PostgreSQL 16"]
    assert await contents(tags=["ops"], mode="lexical") == []
    assert len(await contents(mode="lexical", weights={"vector_weight": 0.0})) == 2
    assert await contents(until="2000-01-01") == []
    assert await contents(as_of="2000-01-01") == []

    vector = await contents(mode="vector", query_vector=[0.0] * 255 + [1.0], k=1)
    assert len(vector) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": ""}, "validation_error"),
        ({"query": "x", "k": 0}, "validation_error"),
        ({"query": "x", "k": 1001}, "validation_error"),
        ({"query": "x", "mode": "psychic"}, "validation_error"),
        ({"query": "x", "weights": {"vector_weight": 2}}, "validation_error"),
        ({"query": "x", "weights": {"bogus": 1}}, "validation_error"),
        ({"query": "x", "query_vector": [1.0, 2.0]}, "validation_error"),
        ({"query": "x", "since": "not a date"}, "validation_error"),
        ({"query": "x", "scope": {"tenant": "other"}}, "validation_error"),
        ({"k": 3}, "validation_error"),
    ],
)
async def test_recall_refuses_bad_values_as_the_local_api_does(
    tenant: Tenant, body: dict[str, object], code: str
) -> None:
    await tenant.api.post("/v1/memories", json={"content": "a memory to search"})
    assert error_of(await tenant.api.post("/v1/recall", json=body)) == (422, code)


async def test_context_fits_the_budget_and_reports_its_sections(tenant: Tenant) -> None:
    await tenant.api.post("/v1/memories/batch", json={"items": FACTS})
    answer = await tenant.api.post(
        "/v1/context", json={"query": "deploys", "budget_tokens": 200, "session": "s1"}
    )
    assert answer.status_code == 200
    context = answer.json()
    assert 0 < context["tokens"] <= 200 and "Deploys happen" in context["text"]
    assert context["sections"] and context["manifest"]
    again = await tenant.api.post(
        "/v1/context", json={"query": "deploys", "budget_tokens": 200, "session": "s1"}
    )
    assert again.json()["prefix_tokens_reused"] is not None
    xml = await tenant.api.post("/v1/context", json={"query": "deploys", "format": "xml"})
    assert xml.json()["format"] == "xml"
    bad = await tenant.api.post("/v1/context", json={"budget_tokens": 0})
    assert error_of(bad) == (422, "validation_error")
    unknown = await tenant.api.post("/v1/context", json={"strategy": "random"})
    assert error_of(unknown) == (422, "validation_error")


async def test_stats_count_the_tenant_only_and_show_no_path(tenant: Tenant) -> None:
    await tenant.api.post("/v1/memories/batch", json={"items": FACTS})
    forgotten = (await tenant.api.post("/v1/memories", json={"content": "gone"})).json()
    await tenant.api.delete(f"/v1/memories/{forgotten['id']}")
    stats = (await tenant.api.get("/v1/stats")).json()
    assert (stats["memories"], stats["deleted"]) == (3, 1)
    assert stats["by_kind"] == {"fact": 2, "preference": 1}
    assert stats["path"] == ""

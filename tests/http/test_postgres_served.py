"""The HTTP API over a PostgreSQL store: the same answers as over SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memex import Memex
from memex.errors import MemexError
from memex.interfaces.http.app import create_app
from tests.http.conftest import Served, client_of, error_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def on_postgres(postgres_url: str) -> Iterator[Served]:
    mx = Memex.open(postgres_url, tenant="home")
    try:
        try:
            issued = mx.admin.ensure_owner()
        except (MemexError, NotImplementedError) as exc:  # a backend without a directory
            pytest.skip(f"no directory on PostgreSQL here: {exc}")
        assert issued is not None
        yield Served(mx, create_app(mx), issued.secret)
    finally:
        mx.close()


async def test_a_postgresql_store_served(on_postgres: Served) -> None:
    served = on_postgres
    other = served.key(served.mx.admin.create_tenant("other").name)
    async with client_of(served, served.owner) as api:
        made = await api.post("/v1/memories", json={"content": "Deploys happen on Fridays"})
        assert made.status_code == 201
        memory = made.json()
        assert (await api.get(f"/v1/memories/{memory['id']}")).json()["content"] == (
            "Deploys happen on Fridays"
        )
        hits = (await api.post("/v1/recall", json={"query": "deploys", "k": 1})).json()["hits"]
        assert hits[0]["memory"]["id"] == memory["id"]
        exported = await api.get("/v1/export")
        assert exported.status_code == 200 and memory["id"] in exported.text
        assert (await api.get("/readyz")).json()["status"] == "ready"
    async with client_of(served, other) as api:
        assert error_of(await api.get(f"/v1/memories/{memory['id']}")) == (404, "not_found")
        assert (await api.post("/v1/recall", json={"query": "deploys"})).json()["hits"] == []

"""Export (streamed JSON Lines from one snapshot) and import (all or nothing)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memex.core.identity import Role
from tests.http.conftest import Served, Tenant, client_of, error_of, open_served

pytestmark = pytest.mark.anyio

LINES = {"content-type": "application/x-ndjson"}


async def test_export_then_import_into_another_tenant_round_trips(
    served: Served, tenant: Tenant
) -> None:
    items = [{"content": f"memory {i}", "tags": [f"t{i}"], "kind": "fact"} for i in range(5)]
    await tenant.api.post("/v1/memories/batch", json={"items": items})
    gone = (await tenant.api.post("/v1/memories", json={"content": "forgotten"})).json()
    await tenant.api.delete(f"/v1/memories/{gone['id']}")

    exported = await tenant.api.get("/v1/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in exported.text.splitlines()]
    assert sorted(r["content"] for r in records) == [f"memory {i}" for i in range(5)]
    everything = await tenant.api.get(
        "/v1/export", params={"include_deleted": "true", "history": "true"}
    )
    assert "forgotten" in everything.text

    other = served.mx.admin.create_tenant(f"{tenant.name}-copy").name
    async with client_of(served, served.key(other)) as api:
        imported = await api.post("/v1/import", content=everything.content, headers=LINES)
        assert imported.status_code == 201
        answer = imported.json()
        assert answer["imported"] == 6 and len(answer["ids"]) == 6
        assert [m["id"] for m in answer["memories"]] == answer["ids"]
        again = await api.get("/v1/export", params={"include_deleted": "true", "history": "true"})
    copied = [json.loads(line) for line in again.text.splitlines()]
    originals = [json.loads(line) for line in everything.text.splitlines()]
    for record in originals:
        record["scope"]["tenant"] = other
        for past in record.get("history", []):
            if "scope" in past:
                past["scope"]["tenant"] = other
    assert copied == originals


async def test_an_import_with_a_bad_line_imports_nothing_and_names_the_line(
    tenant: Tenant,
) -> None:
    body = b'{"content": "good one"}\n{"content": "good two"}\n{"content": 3}\n'
    answer = await tenant.api.post("/v1/import", content=body, headers=LINES)
    assert error_of(answer) == (422, "import_format_error")
    assert answer.json()["error"]["message"].startswith("line 3:")
    not_json = await tenant.api.post("/v1/import", content=b"{nope\n", headers=LINES)
    assert error_of(not_json) == (422, "import_format_error")
    not_utf8 = await tenant.api.post("/v1/import", content=b'{"content": "\xff"}\n', headers=LINES)
    assert error_of(not_utf8) == (400, "malformed_json")
    assert (await tenant.api.get("/v1/stats")).json()["memories"] == 0


async def test_an_import_by_a_project_key_lands_in_its_project(
    served: Served, tenant: Tenant
) -> None:
    key = served.key(tenant.name, Role.READ_WRITE, project="web")
    async with client_of(served, key) as api:
        answer = await api.post("/v1/import", content=b'{"content": "x"}\n', headers=LINES)
        assert answer.status_code == 201
    memory = (await tenant.api.get(f"/v1/memories/{answer.json()['ids'][0]}")).json()
    assert memory["scope"]["project"] == "web"


def _checkpoint_blocked(path: Path) -> bool:
    """Whether a reader holds an old snapshot of the store (a full checkpoint cannot
    truncate the log under it)."""
    conn = sqlite3.connect(path, timeout=0)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    return bool(busy)


@pytest.fixture
def big(tmp_path: Path) -> Iterator[Served]:
    served = open_served(tmp_path)
    items = [{"content": f"{i} " + "word " * 60} for i in range(400)]  # several chunks
    served.mx.scoped(tenant="home").remember_many(items)
    yield served
    served.mx.close()


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_an_export_cut_short_by_the_client_closes_its_snapshot(
    big: Served, tmp_path: Path, spec: str
) -> None:
    """The snapshot's read transaction ends when the client goes away, however the
    server learns of it: a failed send (ASGI 2.4) or a disconnect message (older)."""
    store = tmp_path / "memex.db"
    path = "/v1/export"
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"memex"), (b"authorization", f"Bearer {big.owner}".encode())],
        "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    first_chunk = asyncio.Event()
    gone = asyncio.Event()
    chunks: list[bytes] = []
    asked: list[bool] = []

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        if gone.is_set():
            raise OSError("the client went away")
        chunks.append(message["body"])
        first_chunk.set()
        await asyncio.sleep(0.05)

    task = asyncio.create_task(big.app(scope, receive, send))
    await first_chunk.wait()
    big.mx.scoped(tenant="home").remember("written while the export runs")
    assert _checkpoint_blocked(store)  # the export's snapshot holds the log
    gone.set()
    await asyncio.wait_for(task, 10)
    assert 0 < len(b"".join(chunks).splitlines()) < 400
    assert not _checkpoint_blocked(store)

"""The memory routes: create, batch, get, update, supersede, forget, purge, history,
list and range. Each parses its input, calls one Memex method and answers its JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from memex.errors import ValidationError
from memex.interfaces.http.callers import Purger, Reader, Writer, call
from memex.interfaces.http.errors import ERROR_RESPONSES
from memex.interfaces.http.requests import TIME, BatchIn, RememberIn, SupersedeIn, UpdateIn
from memex.interfaces.http.responses import (
    ItemsOut,
    MemoriesOut,
    MemoryOut,
    PageOut,
    PurgedOut,
    VersionsOut,
)

router = APIRouter(prefix="/v1", tags=["memories"], responses=ERROR_RESPONSES)

MemoryId = Annotated[str, "a memory id"]
Kinds = Annotated[list[str] | None, Query(alias="kind", description="only this kind (repeat)")]
Tags = Annotated[list[str] | None, Query(alias="tag", description="only with this tag (repeat)")]
Project = Annotated[str | None, Query(description="scope: project")]
User = Annotated[str | None, Query(description="scope: user")]
Agent = Annotated[str | None, Query(description="scope: agent")]
Session = Annotated[str | None, Query(description="scope: session")]


def answer(data: Any, status: int = 200) -> JSONResponse:
    """A JSON answer of values memex made JSON-ready itself."""
    return JSONResponse(data, status_code=status)


def scope_of(**fields: str | None) -> dict[str, str]:
    """The scope fields a query string set."""
    return {name: value for name, value in fields.items() if value is not None}


def metadata_of(text: str | None) -> dict[str, Any] | None:
    """The ``metadata`` query parameter: a JSON object."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ValidationError("metadata must be a JSON object") from None
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object")
    return value


@router.post("/memories", status_code=201, response_model=MemoryOut)
async def remember(body: RememberIn, c: Writer) -> JSONResponse:
    """Store one memory (``remember``)."""
    item = body.given()
    return answer(await call(lambda: c.mx.remember_many([item])[0].to_dict()), 201)


@router.post("/memories/batch", status_code=201, response_model=MemoriesOut)
async def remember_many(body: BatchIn, c: Writer) -> JSONResponse:
    """Store many memories, all or none (``remember_many``)."""
    items = [item.given() for item in body.items]

    def run() -> dict[str, Any]:
        return {"memories": [m.to_dict() for m in c.mx.remember_many(items)]}

    return answer(await call(run), 201)


@router.get("/memories/{memory_id}", response_model=MemoryOut)
async def get(memory_id: MemoryId, c: Reader) -> JSONResponse:
    """One memory by id (``get``): superseded or not yet valid too, not forgotten."""
    return answer(await call(lambda: c.mx.get(memory_id).to_dict()))


@router.patch("/memories/{memory_id}", response_model=MemoryOut)
async def update(memory_id: MemoryId, body: UpdateIn, c: Writer) -> JSONResponse:
    """Change a memory, as a new version (``update``)."""
    changes = body.given()
    return answer(await call(lambda: c.mx.update(memory_id, **changes).to_dict()))


@router.post("/memories/{memory_id}/supersede", status_code=201, response_model=MemoryOut)
async def supersede(memory_id: MemoryId, body: SupersedeIn, c: Writer) -> JSONResponse:
    """Replace a memory by a new one (``supersede``); the old one stays in history."""
    fields = body.given()
    content = fields.pop("content")
    return answer(await call(lambda: c.mx.supersede(memory_id, content, **fields).to_dict()), 201)


@router.delete("/memories/{memory_id}", response_model=MemoryOut)
async def forget(memory_id: MemoryId, c: Writer) -> JSONResponse:
    """Forget a memory (``forget``): reads no longer see it; its history stays."""
    return answer(await call(lambda: c.mx.forget(memory_id).to_dict()))


@router.post("/memories/{memory_id}/purge", response_model=PurgedOut)
async def purge(memory_id: MemoryId, c: Purger) -> JSONResponse:
    """Erase a memory and its whole history for good (``purge``)."""
    return answer({"purged": await call(lambda: c.mx.purge(memory_id))})


@router.get("/memories/{memory_id}/history", response_model=VersionsOut)
async def history(memory_id: MemoryId, c: Reader) -> JSONResponse:
    """Every version of a memory, oldest first (``history``)."""

    def run() -> dict[str, Any]:
        return {"versions": [m.to_dict() for m in c.mx.history(memory_id)]}

    return answer(await call(run))


@router.get("/memories", response_model=PageOut)
async def list_(
    c: Reader,
    kinds: Kinds = None,
    tags: Tags = None,
    project: Project = None,
    user: User = None,
    agent: Agent = None,
    session: Session = None,
    metadata: Annotated[str | None, Query(description="a JSON object to match")] = None,
    since: Annotated[str | None, Query(description=f"created at or after ({TIME})")] = None,
    until: Annotated[str | None, Query(description=f"created before ({TIME})")] = None,
    order: Annotated[str, Query(description="by creation time: desc or asc")] = "desc",
    limit: Annotated[int, Query(description="page size (1 to 10,000)")] = 50,
    cursor: Annotated[str | None, Query(description="the previous page's next_cursor")] = None,
    include_deleted: bool = False,
    include_superseded: bool = False,
) -> JSONResponse:
    """A page of memories by creation time, newest first unless asked (``list``)."""
    options: dict[str, Any] = {
        "scope": scope_of(project=project, user=user, agent=agent, session=session),
        "kinds": kinds,
        "tags": tags,
        "metadata": metadata_of(metadata),
        "since": since,
        "until": until,
        "order": order,
        "limit": limit,
        "cursor": cursor,
        "include_deleted": include_deleted,
        "include_superseded": include_superseded,
    }

    def run() -> dict[str, Any]:
        page = c.mx.list(**options)
        return {"items": [m.to_dict() for m in page.items], "next_cursor": page.next_cursor}

    return answer(await call(run))


@router.get("/range", response_model=ItemsOut)
async def range_(
    c: Reader,
    start: Annotated[str | None, Query(description=f"created at or after ({TIME})")] = None,
    end: Annotated[str | None, Query(description=f"created before ({TIME})")] = None,
    kinds: Kinds = None,
    tags: Tags = None,
    project: Project = None,
    user: User = None,
    agent: Agent = None,
    session: Session = None,
    limit: Annotated[int | None, Query(description="at most this many")] = None,
) -> JSONResponse:
    """Current memories created in ``[start, end)``, oldest first (``range``)."""
    scope = scope_of(project=project, user=user, agent=agent, session=session)

    def run() -> dict[str, Any]:
        found = c.mx.range(start, end, scope=scope, kinds=kinds, tags=tags, limit=limit)
        return {"items": [m.to_dict() for m in found]}

    return answer(await call(run))

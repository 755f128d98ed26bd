"""Export (streamed JSON Lines) and import (a JSON Lines body, all or nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from memex.interfaces.http.callers import Reader, Writer, call
from memex.interfaces.http.errors import ERROR_RESPONSES, Refusal
from memex.interfaces.http.memories import (
    Agent,
    Kinds,
    Project,
    Session,
    Tags,
    User,
    answer,
    scope_of,
)
from memex.interfaces.http.requests import TIME
from memex.interfaces.http.responses import ImportedOut

router = APIRouter(prefix="/v1", tags=["bulk"], responses=ERROR_RESPONSES)

LINES = "application/x-ndjson"
_CHUNK_BYTES = 64 * 1024
"""About how much of an export one trip to a worker thread reads."""

Chunk = tuple[bytes, bool]
"""Some lines of an export, and whether they are the last."""


def _chunk(lines: Iterator[str]) -> Chunk:
    parts: list[str] = []
    size = 0
    for line in lines:
        parts.append(line)
        size += len(line) + 1
        if size >= _CHUNK_BYTES:
            return ("\n".join(parts) + "\n").encode(), False
    return ("\n".join(parts) + "\n").encode() if parts else b"", True


class LinesResponse(StreamingResponse):
    """An export's lines as they are read, from one snapshot that is closed when the
    answer ends, however it ends (a client that goes away included)."""

    media_type = LINES

    def __init__(self, lines: Iterator[str], first: Chunk) -> None:
        self._lines = lines
        super().__init__(self._stream(first), media_type=LINES)

    async def _stream(self, first: Chunk) -> AsyncIterator[bytes]:
        chunk, done = first
        if chunk:
            yield chunk
        while not done:
            chunk, done = await call(lambda: _chunk(self._lines))
            if chunk:
                yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # No worker thread holds the lines now (a cancelled trip still ends first),
            # and closing them ends the snapshot's read transaction at once.
            self._lines.close()  # type: ignore[attr-defined]


_EXPORT_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON Lines, one memory a line, oldest first, streamed",
        "content": {LINES: {"schema": {"type": "string"}}},
    }
}


@router.get("/export", response_class=Response, responses=_EXPORT_ANSWER)
async def export(
    c: Reader,
    include_deleted: bool = False,
    history: bool = False,
    ids: Annotated[
        list[str] | None, Query(alias="id", description="only this memory (repeat)")
    ] = None,
    kinds: Kinds = None,
    tags: Tags = None,
    project: Project = None,
    user: User = None,
    agent: Agent = None,
    session: Session = None,
    since: Annotated[str | None, Query(description=f"created at or after ({TIME})")] = None,
    until: Annotated[str | None, Query(description=f"created before ({TIME})")] = None,
) -> Response:
    """Every memory in scope (or a selection of it) as JSON Lines, from one snapshot
    (``export_lines``)."""
    options: dict[str, Any] = {
        "include_deleted": include_deleted,
        "history": history,
        "ids": ids,
        "scope": scope_of(project=project, user=user, agent=agent, session=session),
        "kinds": kinds,
        "tags": tags,
        "since": since,
        "until": until,
    }

    def start() -> tuple[Iterator[str], Chunk]:
        lines = c.mx.export_lines(**options)
        # The first lines are read before answering, so a store that cannot be read
        # gets an error answer rather than a 200 cut short.
        return lines, _chunk(lines)

    lines, first = await call(start)
    return LinesResponse(lines, first)


_IMPORT_BODY = {
    "requestBody": {
        # An empty body imports nothing: the export of a tenant without memories is empty.
        "required": False,
        "description": "JSON Lines: one memory a line, as an export writes them",
        "content": {LINES: {"schema": {"type": "string"}}},
    }
}


@router.post("/import", status_code=201, response_model=ImportedOut, openapi_extra=_IMPORT_BODY)
async def import_(request: Request, c: Writer) -> JSONResponse:
    """Import JSON Lines records, all or nothing; a bad line is named (``import_lines``)."""
    data = await request.body()  # the edge refuses a body over the limit as it arrives
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal(
            400, "malformed_json", f"the body is not UTF-8 (a bad byte at offset {exc.start})"
        ) from None
    # Records end at "\n" only: JSON strings may hold U+2028 and other line breaks.
    lines = text.split("\n")

    def run() -> dict[str, Any]:
        memories = c.mx.import_lines(lines)
        return {
            "imported": len(memories),
            "ids": [m.id for m in memories],
            "memories": [m.to_dict() for m in memories],
        }

    return answer(await call(run), 201)

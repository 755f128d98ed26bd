"""Liveness, readiness and metrics: the routes an orchestrator and a scraper call."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from memex.core.identity import Role
from memex.errors import PermissionDeniedError, StoreError
from memex.interfaces.http.callers import Anyone, Caller, call
from memex.interfaces.http.errors import ERROR_RESPONSES, error_response
from memex.interfaces.http.metrics import CONTENT_TYPE
from memex.interfaces.http.responses import ErrorOut, HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> JSONResponse:
    """Whether the process is alive: always ok while it answers."""
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ErrorOut, "description": "the store cannot be reached or read"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Whether the store answers (and so requests can be served)."""
    root = request.app.state.gate.root
    try:
        version = await call(root.ready)
    except StoreError:
        return error_response(503, "store_unavailable", "the store cannot be reached or read")
    return JSONResponse({"status": "ready", "schema_version": version})


_METRICS_ANSWER = {
    **{status: ERROR_RESPONSES[status] for status in (401, 403)},
    200: {
        "description": "Prometheus text format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}


def _scrape(c: Caller) -> int:
    principal = c.principal
    if not (
        principal.home and principal.project is None and principal.role.rank >= Role.ADMIN.rank
    ):
        raise PermissionDeniedError(
            "metrics need an admin or owner key of the home tenant", reason="role"
        )
    return c.root.stats().size_bytes


@router.get("/metrics", response_class=Response, responses=_METRICS_ANSWER)  # type: ignore[arg-type]
async def metrics(request: Request, c: Anyone) -> Response:
    """The server's metrics (an admin or owner key of the home tenant)."""
    size = await call(lambda: _scrape(c))
    return Response(request.app.state.metrics.render(size), media_type=CONTENT_TYPE)

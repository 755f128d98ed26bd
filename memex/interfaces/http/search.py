"""Recall, context and stats: the routes that read across memories."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from memex.core.ranking import FusionWeights
from memex.interfaces.http.callers import Reader, call
from memex.interfaces.http.errors import ERROR_RESPONSES
from memex.interfaces.http.memories import answer
from memex.interfaces.http.requests import ContextIn, RecallIn
from memex.interfaces.http.responses import ContextOut, HitsOut, StatsOut

router = APIRouter(prefix="/v1", tags=["search"], responses=ERROR_RESPONSES)


@router.post("/recall", response_model=HitsOut)
async def recall(body: RecallIn, c: Reader) -> JSONResponse:
    """The memories that best match a query, best first (``recall``)."""
    options = body.given()
    query = options.pop("query")
    k = options.pop("k", 10)
    if body.weights is not None:
        options["weights"] = FusionWeights(**body.weights.model_dump())

    def run() -> dict[str, Any]:
        return {"hits": [hit.to_dict() for hit in c.mx.recall(query, k, **options)]}

    return answer(await call(run))


@router.post("/context", response_model=ContextOut)
async def context(body: ContextIn, c: Reader) -> JSONResponse:
    """The context for a model call within a token budget (``context``)."""
    options = body.given()
    return answer(await call(lambda: c.mx.context(**options).to_dict()))


@router.get("/stats", response_model=StatsOut)
async def stats(c: Reader) -> JSONResponse:
    """Counts and sizes within the key's scope (``stats``); ``path`` is empty."""

    def run() -> dict[str, Any]:
        # The server's files are its own business: no path goes out.
        return {**c.mx.stats().to_dict(), "path": ""}

    return answer(await call(run))

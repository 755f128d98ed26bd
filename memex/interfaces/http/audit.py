"""The audit routes: verify the caller's tenant's audit chain, and export its entries as
a compliance report (admin and owner keys: ``read_audit``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from memex.core.identity import Action
from memex.interfaces.http.callers import Caller, call, caller
from memex.interfaces.http.errors import ERROR_RESPONSES
from memex.interfaces.http.memories import answer
from memex.interfaces.http.requests import TIME
from memex.interfaces.http.responses import AuditReportOut, VerificationOut

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)

Auditor = Annotated[Caller, Depends(caller(Action.READ_AUDIT))]


@router.get("/verify", response_model=VerificationOut)
async def verify(c: Auditor) -> JSONResponse:
    """Check the tenant's audit chain against its head (``audit_verify``): ``ok``, or
    the problems found, first the first (an entry's number and what was done to it)."""

    def run() -> dict[str, Any]:
        return c.mx.audit_verify()[0].to_dict()

    return answer(await call(run))


@router.get("", response_model=AuditReportOut)
async def export(
    c: Auditor,
    since: Annotated[str | None, Query(description=f"made at or after ({TIME})")] = None,
    until: Annotated[str | None, Query(description=f"made before ({TIME})")] = None,
) -> JSONResponse:
    """The tenant's audit entries made in ``[since, until)``, oldest first, with a
    summary by action and outcome and the chain's head (``audit_export``)."""

    def run() -> dict[str, Any]:
        return c.mx.audit_export(since, until).to_dict()

    return answer(await call(run))

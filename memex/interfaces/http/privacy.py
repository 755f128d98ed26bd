"""The privacy routes: export, erase and anonymise a user; erase a project or a tenant.

A user or project is one of the caller's tenant (another tenant's is not found);
erasing a whole tenant takes an owner of the home tenant (``manage_tenants``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from memex.core.identity import Action, require
from memex.errors import ValidationError
from memex.interfaces.http.callers import Caller, call, caller
from memex.interfaces.http.errors import ERROR_RESPONSES
from memex.interfaces.http.memories import answer
from memex.interfaces.http.requests import Body

router = APIRouter(prefix="/v1/privacy", tags=["privacy"], responses=ERROR_RESPONSES)

PrivacyAdmin = Annotated[Caller, Depends(caller(Action.PRIVACY))]
Anyone = Annotated[Caller, Depends(caller(None))]


class UserIn(Body):
    """A user of the caller's tenant."""

    user: str


class EraseIn(Body):
    """What to erase: a user or a project of the caller's tenant, or a whole tenant."""

    user: str | None = None
    project: str | None = None
    tenant: str | None = None
    batch_size: int = Field(500, description="memories erased per transaction (1-10,000)")


class SelectorOut(BaseModel):
    """Whose data: the tenant, and the user or project, if any."""

    tenant: str
    user: str | None = None
    project: str | None = None


class ReceiptOut(BaseModel):
    """What an erasure removed."""

    selector: SelectorOut
    started_at: datetime
    finished_at: datetime
    counts: dict[str, int]
    ids_sha256: str
    notes: list[str]


class AnonymisationOut(BaseModel):
    """What an anonymisation renamed."""

    selector: SelectorOut
    pseudonym: str
    at: datetime
    counts: dict[str, int]


class ExportOut(BaseModel):
    """A user's data as one package (docs/security.md, "Privacy")."""

    format: str
    version: int
    selector: SelectorOut
    exported_at: datetime
    manifest: dict[str, Any]
    memories: list[dict[str, Any]]
    audit: list[dict[str, Any]]


@router.post("/export", response_model=ExportOut)
async def export_user(body: UserIn, c: PrivacyAdmin) -> JSONResponse:
    """Everything the store holds about a user of the tenant, as one package."""
    return answer(await call(lambda: c.mx.export_user(body.user).to_dict()))


@router.post("/erase", response_model=ReceiptOut)
async def erase(body: EraseIn, c: Anyone) -> JSONResponse:
    """Erase a user's or a project's data for good, or a whole tenant's (owners of the
    home tenant); answers the receipt."""

    def run() -> dict[str, Any]:
        if body.tenant is None:
            require(c.principal, Action.PRIVACY)
            found = c.mx.erase(user=body.user, project=body.project, batch_size=body.batch_size)
            return found.to_dict()
        require(c.principal, Action.MANAGE_TENANTS)
        if body.user is not None or body.project is not None:
            raise ValidationError("name a user or a project of your tenant, or a tenant")
        if body.tenant == c.principal.tenant:
            raise ValidationError("the home tenant cannot be erased over HTTP; use memex privacy")
        return c.root.erase(tenant=body.tenant, batch_size=body.batch_size).to_dict()

    return answer(await call(run))


@router.post("/anonymise", response_model=AnonymisationOut)
async def anonymise(body: UserIn, c: PrivacyAdmin) -> JSONResponse:
    """Replace a user of the tenant by a pseudonym wherever the store keeps its name."""
    return answer(await call(lambda: c.mx.anonymise(body.user).to_dict()))

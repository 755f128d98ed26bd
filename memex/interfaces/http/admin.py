"""The administration routes: the calling key, tenants, users, projects, keys and quotas.

What a key may do follows from its role (``core.identity``); every change is confined
to the caller's own tenant by ``memex.security``, which refuses anything else itself.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from memex.core.identity import Action, ApiKey, Project, Tenant, User
from memex.errors import ValidationError
from memex.interfaces.http.callers import Anyone, Caller, call, caller
from memex.interfaces.http.errors import ERROR_RESPONSES
from memex.interfaces.http.memories import answer
from memex.interfaces.http.requests import (
    DEFAULT_GRACE,
    AllowIn,
    KeyIn,
    NameIn,
    QuotaIn,
    RotateIn,
    TenantIn,
)
from memex.interfaces.http.responses import (
    IssuedKeyOut,
    KeyOut,
    KeysOut,
    MeOut,
    NewTenantOut,
    ProjectOut,
    ProjectsOut,
    QuotasOut,
    TenantOut,
    TenantsOut,
    UserOut,
    UsersOut,
)

router = APIRouter(prefix="/v1", tags=["administration"], responses=ERROR_RESPONSES)

TenantsAdmin = Annotated[Caller, Depends(caller(Action.MANAGE_TENANTS))]
TenantOwner = Annotated[Caller, Depends(caller(Action.MANAGE_TENANT))]
UsersAdmin = Annotated[Caller, Depends(caller(Action.MANAGE_USERS))]
ProjectsAdmin = Annotated[Caller, Depends(caller(Action.MANAGE_PROJECTS))]
KeysAdmin = Annotated[Caller, Depends(caller(Action.MANAGE_KEYS))]
KeyId = Annotated[str, "a key id"]
TenantName = Annotated[str, "a tenant's name"]


def tenant_out(tenant: Tenant) -> dict[str, Any]:
    """A tenant's JSON."""
    return {
        "name": tenant.name,
        "created_at": tenant.created_at.isoformat(),
        "allow": list(tenant.allow),
    }


def member_out(member: User | Project) -> dict[str, Any]:
    """A user's or project's JSON."""
    return {
        "tenant": member.tenant,
        "name": member.name,
        "created_at": member.created_at.isoformat(),
    }


def issued_out(key: ApiKey, secret: str) -> dict[str, Any]:
    """A new key's JSON, with its secret: the one time it is shown."""
    return {**key.public(), "key": secret}


def grace_of(seconds: float) -> timedelta:
    """A rotation's grace period; a number no period can be is bad input."""
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise ValidationError(f"grace_seconds must be a number of seconds, not {seconds}") from None


@router.get("/me", response_model=MeOut)
async def me(c: Anyone) -> JSONResponse:
    """The calling key and what it makes the caller."""

    def run() -> dict[str, Any]:
        principal = c.principal
        # Without authentication there is no key: the caller is the home tenant's owner.
        key = c.admin().me().public() if principal.key_id else None
        return {
            "key": key,
            "tenant": principal.tenant,
            "role": principal.role.value,
            "user": principal.user,
            "project": principal.project,
        }

    return answer(await call(run))


@router.get("/tenants", response_model=TenantsOut)
async def tenants(c: TenantsAdmin) -> JSONResponse:
    """Every tenant (owners of the home tenant)."""
    return answer(await call(lambda: {"tenants": [tenant_out(t) for t in c.admin().tenants()]}))


@router.post("/tenants", status_code=201, response_model=NewTenantOut)
async def create_tenant(body: TenantIn, c: TenantsAdmin) -> JSONResponse:
    """A new tenant and its owner key, shown this once (owners of the home tenant)."""

    def run() -> dict[str, Any]:
        made = c.admin().create_tenant(body.name, allow=body.allow)
        return {
            "tenant": tenant_out(made.tenant),
            "owner_key": {"id": made.owner_key.key.id, "key": made.owner_key.secret},
        }

    return answer(await call(run), 201)


@router.get("/tenant", response_model=TenantOut)
async def tenant(c: Anyone) -> JSONResponse:
    """The caller's tenant."""
    return answer(await call(lambda: tenant_out(c.admin().tenant())))


@router.patch("/tenant", response_model=TenantOut)
async def set_tenant_allow(body: AllowIn, c: TenantOwner) -> JSONResponse:
    """Change the addresses the tenant's requests may come from (owners)."""
    return answer(await call(lambda: tenant_out(c.admin().set_tenant_allow(body.allow))))


@router.get("/users", response_model=UsersOut)
async def users(c: UsersAdmin) -> JSONResponse:
    """The tenant's users."""
    return answer(await call(lambda: {"users": [member_out(u) for u in c.admin().users()]}))


@router.post("/users", status_code=201, response_model=UserOut)
async def create_user(body: NameIn, c: UsersAdmin) -> JSONResponse:
    """A new user of the tenant."""
    return answer(await call(lambda: member_out(c.admin().create_user(body.name))), 201)


@router.get("/projects", response_model=ProjectsOut)
async def projects(c: ProjectsAdmin) -> JSONResponse:
    """The tenant's projects."""
    return answer(await call(lambda: {"projects": [member_out(p) for p in c.admin().projects()]}))


@router.post("/projects", status_code=201, response_model=ProjectOut)
async def create_project(body: NameIn, c: ProjectsAdmin) -> JSONResponse:
    """A new project of the tenant."""
    return answer(await call(lambda: member_out(c.admin().create_project(body.name))), 201)


@router.get("/keys", response_model=KeysOut)
async def keys(c: KeysAdmin) -> JSONResponse:
    """The tenant's keys: never a secret or a hash."""
    return answer(await call(lambda: {"keys": [key.public() for key in c.admin().keys()]}))  # noqa: SIM118


@router.post("/keys", status_code=201, response_model=IssuedKeyOut)
async def create_key(body: KeyIn, c: KeysAdmin) -> JSONResponse:
    """A new key of the caller's role or below; its secret is shown this once."""
    fields = body.given()

    def run() -> dict[str, Any]:
        issued = c.admin().create_key(**fields)
        return issued_out(issued.key, issued.secret)

    return answer(await call(run), 201)


@router.get("/keys/{key_id}", response_model=KeyOut)
async def key(key_id: KeyId, c: KeysAdmin) -> JSONResponse:
    """One key of the tenant."""
    return answer(await call(lambda: c.admin().key(key_id).public()))


@router.patch("/keys/{key_id}", response_model=KeyOut)
async def set_key_allow(key_id: KeyId, body: AllowIn, c: KeysAdmin) -> JSONResponse:
    """Change the addresses a key's requests may come from."""
    return answer(await call(lambda: c.admin().set_key_allow(key_id, body.allow).public()))


@router.post("/keys/{key_id}/rotate", status_code=201, response_model=IssuedKeyOut)
async def rotate_key(key_id: KeyId, c: KeysAdmin, body: RotateIn | None = None) -> JSONResponse:
    """A new key with the same grants; the old one works for the grace period."""
    grace = grace_of(body.grace_seconds if body is not None else DEFAULT_GRACE)

    def run() -> dict[str, Any]:
        issued = c.admin().rotate_key(key_id, grace)
        return issued_out(issued.key, issued.secret)

    return answer(await call(run), 201)


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: KeyId, c: KeysAdmin) -> JSONResponse:
    """Revoke a key: it stops working at once."""
    return answer(await call(lambda: c.admin().revoke_key(key_id).public()))


@router.get("/quota", response_model=QuotasOut)
async def quota(c: Anyone) -> JSONResponse:
    """The caller's tenant's quotas and what it uses of each."""
    return answer(await call(lambda: c.admin().quota().to_dict()))


@router.patch("/quota", response_model=QuotasOut)
async def set_quota(body: QuotaIn, c: TenantsAdmin) -> JSONResponse:
    """Change the caller's tenant's quotas (owners of the home tenant)."""
    changes = body.given()
    reset = bool(changes.pop("reset", False))
    return answer(await call(lambda: c.admin().set_quota(None, changes, reset=reset).to_dict()))


@router.get("/tenants/{name}/quota", response_model=QuotasOut)
async def tenant_quota(name: TenantName, c: Anyone) -> JSONResponse:
    """A tenant's quotas and use (another tenant's: owners of the home tenant)."""
    return answer(await call(lambda: c.admin().quota(name).to_dict()))


@router.patch("/tenants/{name}/quota", response_model=QuotasOut)
async def set_tenant_quota(name: TenantName, body: QuotaIn, c: TenantsAdmin) -> JSONResponse:
    """Change a tenant's quotas (owners of the home tenant)."""
    changes = body.given()
    reset = bool(changes.pop("reset", False))
    return answer(await call(lambda: c.admin().set_quota(name, changes, reset=reset).to_dict()))

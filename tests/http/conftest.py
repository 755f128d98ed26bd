"""The HTTP API in process: a real store file, the real app, httpx's ASGI transport.

One store serves a whole test module (opening one costs more than most tests); each
test that needs a store of its own gets a tenant of its own instead, which is what a
server's tenants are for: nothing of one is seen from another.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from memex import Memex
from memex.core.identity import Role
from memex.interfaces.http.app import create_app

_names = itertools.count()


@dataclass
class Served:
    """A store, the app over it and the home tenant's owner key."""

    mx: Memex
    app: FastAPI
    owner: str

    @property
    def home(self) -> str:
        return self.mx.admin.home_tenant

    def key(self, tenant: str, role: Role | str = Role.OWNER, **bound: str) -> str:
        """A new key's secret (its user or project is made first if needed)."""
        admin = self.mx.admin
        if bound.get("project") and bound["project"] not in {
            p.name for p in admin.projects(tenant)
        }:
            admin.create_project(tenant, bound["project"])
        if bound.get("user") and bound["user"] not in {u.name for u in admin.users(tenant)}:
            admin.create_user(tenant, bound["user"])
        return admin.create_key(tenant, role, **bound).secret

    def client(self, key: str | None = None, **options: object) -> httpx.AsyncClient:
        """A client of the app, sending ``key`` (none: no credential)."""
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        transport = httpx.ASGITransport(app=self.app, **options)  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url="http://memex", headers=headers)


@dataclass
class Tenant:
    """A tenant of its own for one test, with its owner's client."""

    name: str
    owner: str
    api: httpx.AsyncClient


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def open_served(folder: Path, **options: object) -> Served:
    """A store in ``folder`` with its owner key and the app over it."""
    mx = Memex.open(folder / "memex.db", tenant="home")
    issued = mx.admin.ensure_owner()
    assert issued is not None
    return Served(mx, create_app(mx, **options), issued.secret)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMEX_HOME", str(folder / "home"))
        found = open_served(folder)
        yield found
        found.mx.close()


@pytest.fixture
async def tenant(served: Served) -> AsyncIterator[Tenant]:
    name = f"t{next(_names)}"
    made = served.mx.admin.create_tenant(name)
    secret = served.key(made.name)
    async with served.client(secret) as api:
        yield Tenant(name, secret, api)


@asynccontextmanager
async def client_of(served: Served, key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending ``key``, closed after use."""
    async with served.client(key) as api:
        yield api


def error_of(response: httpx.Response) -> tuple[int, str]:
    """A response's status and error code, after checking the error body's shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message and "\n" not in message
    return response.status_code, body["error"]["code"]

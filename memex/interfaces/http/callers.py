"""Who calls: the principal a request's key makes, the handle it may use, and how routes
run memex's (synchronous) methods.

Identity comes from the ``Authorization`` header only, checked by the store's
Authenticator with the peer's address (and ``X-Forwarded-For`` from trusted proxies).
A route names the action it takes; the caller gets a handle confined to its key's
tenant (and user and project), so another tenant's memory is simply not found.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from memex.actor import set_actor
from memex.core.audit import Actor
from memex.core.identity import Action, Principal, Role, require, split_key
from memex.core.limits import Taken
from memex.core.locations import is_database_url
from memex.service import Memex

if TYPE_CHECKING:
    from memex.security.admin import TenantAdmin
    from memex.security.limits import Limits

T = TypeVar("T")

_HANDLES = 1024
"""Handles kept, one per principal: more keys than this in use just make new ones."""


class Authenticator(Protocol):
    """What the server needs of ``memex.security``'s authenticator."""

    def authenticate(
        self, authorization: str | None, peer: str | None, forwarded_for: Sequence[str]
    ) -> Principal:
        """The caller a request's credential makes (AuthError if none)."""
        ...

    def flush(self) -> None:
        """Record when keys were last used."""
        ...

    def cached(self, authorization: str | None) -> bool:
        """Whether this header's key is verified already (checking it reads no key)."""
        ...

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        """The address a request came from."""
        ...


class Gate:
    """The principals of requests and their handles on the store."""

    def __init__(
        self, root: Memex, authenticator: Authenticator | None, limits: Limits | None = None
    ) -> None:
        self.root = root
        self.authenticator = authenticator
        self.limits = limits
        tenant = root.scope.tenant or ""
        self._local = Principal(key_id="", tenant=tenant, role=Role.OWNER, home=True)
        self._handles: OrderedDict[Principal, Memex] = OrderedDict()
        self._lock = threading.Lock()
        # A store file answers a read by id in microseconds and never waits for a lock
        # (its writes of read counts and key uses give up rather than wait): such reads
        # run on the event loop. A database server's answer is a network round trip.
        # A check of the limits held in Redis is a round trip too.
        self.inline_reads = not is_database_url(root.location) and not (
            limits is not None and limits.remote
        )

    def principal(
        self, authorization: str | None, peer: str | None, forwarded_for: Sequence[str]
    ) -> Principal:
        """The caller a request's credential makes (without authentication: the home
        tenant's owner)."""
        if self.authenticator is None:
            return self._local
        return self.authenticator.authenticate(authorization, peer, forwarded_for)

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        """The address a request came from, as the authenticator believes it."""
        if self.authenticator is None:
            return peer
        return self.authenticator.client(peer, forwarded_for)

    def handle(self, principal: Principal) -> Memex:
        """A handle confined to what ``principal``'s key may reach, kept for its next call."""
        found = self._handles.get(principal)
        if found is None:
            found = self.root.for_principal(principal)
            with self._lock:  # routes run in worker threads
                self._handles[principal] = found
                if len(self._handles) > _HANDLES:
                    self._handles.popitem(last=False)
        return found


class Outgoing:
    """What a request's answer carries besides its body: what its rate limits' header
    fields show, and the tenant whose quota warnings it shows (the edge adds them as the
    answer starts)."""

    __slots__ = ("taken", "tenant")

    def __init__(self) -> None:
        self.taken: Taken | None = None
        self.tenant: str | None = None


OUTGOING = "memex.outgoing"
"""The key of a request's ``Outgoing`` in its ASGI scope (put there by the edge)."""


class Caller:
    """A request's caller: authenticated when first asked, in the worker thread that
    runs the route's call (the Authenticator may read the store), and checked against
    the server's limits then."""

    __slots__ = ("_action", "_agent", "_credentials", "_gate", "_known", "_outgoing", "_principal")

    def __init__(
        self,
        gate: Gate,
        credentials: tuple[str | None, str | None, Sequence[str]],
        action: Action | None,
        outgoing: Outgoing | None = None,
        agent: str | None = None,
    ) -> None:
        self._gate = gate
        self._credentials = credentials
        self._action = action
        self._outgoing = outgoing if outgoing is not None else Outgoing()
        self._agent = agent
        self._known: Principal | None = None  # authenticated, maybe refused the action
        self._principal: Principal | None = None

    @property
    def principal(self) -> Principal:
        """Who calls, allowed the route's action (else an AuthError) and within the
        server's limits (else a RateLimitError or a QuotaExceededError)."""
        if self._principal is None:
            principal = self._gate.principal(*self._credentials)
            self._known = principal
            if self._action is not None:
                require(principal, self._action)
            limits = self._gate.limits
            if limits is not None:
                self._outgoing.tenant = principal.tenant
                limits.admit(principal, self._outgoing)
            self._principal = principal
        return self._principal

    @property
    def action(self) -> Action | None:
        """What the route does, as the permission matrix names it."""
        return self._action

    @property
    def known(self) -> Principal | None:
        """The caller if its key was verified (whether or not the action was allowed)."""
        return self._known

    def actor(self) -> Actor:
        """Who calls, for the audit trail (never the key's secret: its public id)."""
        header, peer, forwarded = self._credentials
        client = self._gate.client(peer, forwarded)
        who = self._known
        if who is None:
            return Actor(_public_id(header), None, client, self._agent)
        return Actor(who.key_id or "unauthenticated", who.user, client, self._agent)

    @property
    def mx(self) -> Memex:
        """The caller's handle on the store."""
        return self._gate.handle(self.principal)

    @property
    def inline_reads(self) -> bool:
        """Whether this request's read by id may run on the event loop (see ``quick``):
        on a store file, for a key verified already (an unknown key's refusal waits out
        a floor, which must not hold up the loop)."""
        gate = self._gate
        if not gate.inline_reads:
            return False
        return gate.authenticator is None or gate.authenticator.cached(self._credentials[0])

    @property
    def root(self) -> Memex:
        """The server's own handle (for what is not any tenant's: health, metrics)."""
        return self._gate.root

    def admin(self) -> TenantAdmin:
        """The administration the caller may do, confined to its tenant."""
        return self._gate.root.admin.acting(self.principal)


def _public_id(authorization: str | None) -> str:
    """The public id of a well-formed key in a ``Bearer`` header, else empty."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    found = split_key(token.strip()) if scheme.lower() == "bearer" else None
    return found[0] if found is not None else ""


_bearer = HTTPBearer(auto_error=False, description="an API key: `mxk_...`")
"""Declares the credential in the OpenAPI document; the Authenticator reads the header."""


def caller(action: Action | None) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the request's caller, who must be allowed ``action``."""

    async def dependency(request: Request, _: object = Depends(_bearer)) -> Caller:
        headers = request.headers
        peer = request.client.host if request.client is not None else None
        credentials = (headers.get("authorization"), peer, headers.getlist("x-forwarded-for"))
        outgoing = request.scope.get(OUTGOING)
        found = Caller(
            request.app.state.gate, credentials, action, outgoing, headers.get("user-agent")
        )
        # Audit entries name this request's caller: the handles are shared by every
        # request of a key, so the actor travels in the request's context instead.
        request.state.caller = found
        set_actor(found.actor)
        return found

    return dependency


Anyone = Annotated[Caller, Depends(caller(None))]
Reader = Annotated[Caller, Depends(caller(Action.READ))]
Writer = Annotated[Caller, Depends(caller(Action.WRITE))]
Purger = Annotated[Caller, Depends(caller(Action.PURGE))]


async def call(fn: Callable[[], T]) -> T:
    """Run one of memex's synchronous calls for a route, in a worker thread.

    Measured against running them on the event loop: a hop to a worker costs about
    0.1-0.2 ms of CPU per call, but on the loop one slow call (a recall, a write
    waiting for another process's lock, a PostgreSQL round trip) holds up every other
    request, and reads cannot overlap the work SQLite and numpy do without the GIL.
    """
    return await run_in_threadpool(fn)


async def quick(c: Caller, fn: Callable[[], T]) -> T:
    """Run a read by id for a route: on the event loop when the store is a file (a hop to
    a worker thread costs more than the read: about a fifth of a ``get``'s CPU), else as
    ``call`` does."""
    if c.inline_reads:
        return fn()
    return await run_in_threadpool(fn)

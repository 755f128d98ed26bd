"""Who is acting, for the audit trail: set per request by a server, else the local user.

A server knows each request's key, user, client address and user agent, but the
handles it keeps are shared by every request of a key; so the actor travels beside the
call instead, in a context variable the server sets in the request's path (a worker
thread that runs the call gets a copy of the request's context). Code working on a
store directly (the command line) acts as ``local:<os user>``.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from memex.core.audit import Actor

_current: ContextVar[Actor | Callable[[], Actor] | None] = ContextVar("memex_actor", default=None)


@functools.cache
def local_actor() -> Actor:
    """The actor of work done on a store directly: ``local:<os user>``."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name: a container without one
        name = ""
    return Actor(f"local:{name}" if name else "local")


def current_actor() -> Actor:
    """The actor of the call in progress (the request's, else the local user)."""
    found = _current.get()
    if found is None:
        return local_actor()
    return found() if callable(found) else found


def set_actor(actor: Actor | Callable[[], Actor]) -> None:
    """Make ``actor`` (or what it returns, asked when an entry is made) the actor of the
    rest of the current context: a server's request."""
    _current.set(actor)


@contextlib.contextmanager
def acting_as(actor: Actor | Callable[[], Actor]) -> Iterator[None]:
    """Act as ``actor`` within the block."""
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)

"""``Client`` and ``AsyncClient``: a memex server over HTTP, with the shape of ``Memex``.

``calls`` turns each method call into a request and each answer into its value, once
for both clients; ``sync`` and ``aio`` only send. httpx is imported when a client is
made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memex.client.aio import AsyncClient
    from memex.client.sync import Client

__all__ = ["AsyncClient", "Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from memex.client.sync import Client

        return Client
    if name == "AsyncClient":
        from memex.client.aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'memex.client' has no attribute {name!r}")

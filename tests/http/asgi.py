"""The HTTP API in process for the tests: ``create_app`` over a real SQLite store, called
through an httpx client on the app's ASGI interface (no sockets), from any peer address."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal

from memex import Memex
from memex.embedders.wordllama import WordLlamaEmbedder
from memex.interfaces.http.app import create_app

EMBEDDER = WordLlamaEmbedder()
"""One embedder for every store these tests open: each new store would otherwise load
the tokenizer again on its first write (a fifth of a second)."""

LOOPBACK = ("127.0.0.1", 50000)


def open_root(path: Path, tenant: str = "home", **settings: Any) -> Memex:
    """The server's root handle on a new SQLite store at ``path``."""
    return Memex.open(path, tenant=tenant, embedder=EMBEDDER, **settings)


def bearer(key: str | None) -> dict[str, str]:
    """The Authorization header of ``key`` (none for None)."""
    return {} if key is None else {"authorization": f"Bearer {key}"}


class Api:
    """``create_app(root)`` and httpx clients on its ASGI interface, one per peer address,
    all run in one event loop that a blocking portal keeps, as a server would.

    The app's lifespan runs from the start to ``close`` (its shutdown writes when keys
    were last used).
    """

    def __init__(
        self,
        root: Memex,
        *,
        peer: tuple[str, int] = LOOPBACK,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.app = create_app(root, trusted_proxies=trusted_proxies)
        self._peer = peer
        self._portals = ExitStack()
        self._portal = self._portals.enter_context(start_blocking_portal())
        lifespan = self.app.router.lifespan_context(self.app)
        self._portals.enter_context(self._portal.wrap_async_context_manager(lifespan))
        self._clients: dict[tuple[str, int], httpx.AsyncClient] = {}

    def _client(self, peer: tuple[str, int]) -> httpx.AsyncClient:
        found = self._clients.get(peer)
        if found is None:
            transport = httpx.ASGITransport(app=self.app, client=peer)
            found = httpx.AsyncClient(transport=transport, base_url="http://memex.test")
            self._clients[peer] = found
        return found

    def request(
        self,
        method: str,
        path: str,
        key: str | None = None,
        *,
        peer: tuple[str, int] | None = None,
        headers: httpx.Headers | dict[str, str] | None = None,
        **options: Any,
    ) -> httpx.Response:
        """One request with ``key`` as its bearer credential, from ``peer`` (default:
        loopback); ``headers`` may repeat a name (as ``httpx.Headers``)."""
        client = self._client(peer or self._peer)
        sent = httpx.Headers(headers)
        sent.update(bearer(key))

        async def send() -> httpx.Response:
            return await client.request(method, path, headers=sent, **options)

        return self._portal.call(send)

    def close(self) -> None:
        """Stop the app (its lifespan's shutdown runs) and close every client."""
        for client in self._clients.values():
            self._portal.call(client.aclose)
        self._portals.close()

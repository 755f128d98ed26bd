"""``AsyncClient``: ``Client`` for asyncio (and trio), with the same methods as coroutines.

Every method builds its request in ``memex.client.calls``, as ``Client`` does; only the
sending (and waiting between retries) is this module's.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from memex.client import calls
from memex.client.base import LinesBody, asplit_lines, connection_failure, endpoint, require_httpx
from memex.client.calls import Call
from memex.client.failures import from_answer, malformed, unreachable
from memex.client.governance import AsyncGovernance
from memex.client.retry import next_delay, retry_after
from memex.core.assembled import Context
from memex.core.models import Hit, Memory, Page, Scope, Stats
from memex.core.progress import Progress, Tally
from memex.core.query import Order
from memex.core.versions import KEEP
from memex.errors import StoreError

if TYPE_CHECKING:
    import httpx
    import numpy as np

    from memex.core.ranking import FusionWeights

T = TypeVar("T")
_REPORT_EVERY = 500


class AsyncClient(AsyncGovernance):
    """``Client`` with coroutines: ``await mx.recall(...)``, ``async for line in
    mx.export_lines()``, ``async with AsyncClient(url) as mx``."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        require_httpx()
        import httpx

        self._end, headers = endpoint(url, api_key, timeout, max_retries)
        self._http = httpx.AsyncClient(
            base_url=self._end.location,
            headers=headers,
            timeout=self._end.timeout,
            transport=transport,
        )
        self._me: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self._end.location!r})"

    @property
    def location(self) -> str:
        """The server's base URL."""
        return self._end.location

    async def me(self) -> dict[str, Any]:
        """The calling key (never its secret), its tenant and its role."""
        if self._me is None:
            self._me = await self._send(calls.me())
        return self._me

    async def scope(self) -> Scope:
        """The scope the key confines every request to (asked of the server once)."""
        found = await self.me()
        return calls.scope_of(found)

    # -- sending ---------------------------------------------------------------------

    async def _send(self, call: Call[T], body: LinesBody | None = None) -> T:
        response = await self._exchange(call, body)
        try:
            return call.read(response.json())
        except (ValueError, TypeError, KeyError, AttributeError):
            raise malformed(self.location, call.method, call.path) from None

    async def _exchange(
        self, call: Call[Any], body: LinesBody | None = None, *, stream: bool = False
    ) -> httpx.Response:
        """Send ``call`` (again while the server refuses it for now) until it succeeds;
        a failure raises the error ``Memex`` would have raised."""
        import anyio
        import httpx

        if call.tenants:
            call.check_tenant((await self.scope()).tenant)
        json_body = call.content() if body is None else None
        headers = {"content-type": calls.JSON_TYPE} if json_body is not None else None
        end, attempt = self._end, 0
        while True:
            attempt += 1
            content: Any = json_body
            if body is not None:
                content, headers = body.__aiter__(), body.headers
            request = self._http.build_request(
                call.method, call.path, params=call.params, content=content, headers=headers
            )
            try:
                response: httpx.Response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                reached, why = connection_failure(exc, end.timeout)
                delay = next_delay(
                    attempt, end.max_retries, reached=reached, idempotent=call.idempotent
                )
                if delay is None:
                    raise unreachable(end.location, why, reached) from None
                await anyio.sleep(delay)
                continue
            if response.is_success:
                return response
            try:
                data = await response.aread()
            except httpx.TransportError:
                data = b""
            finally:
                await response.aclose()
            asked = retry_after(response.headers.get("retry-after"))
            status = response.status_code
            delay = next_delay(attempt, end.max_retries, status=status, asked=asked)
            if delay is None:
                raise from_answer(status, data, response.headers, end.location, keyless=end.keyless)
            await anyio.sleep(delay)

    # -- writes ----------------------------------------------------------------------

    async def remember(
        self,
        content: str,
        *,
        kind: str = "note",
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        scope: Scope | Mapping[str, Any] | None = None,
        importance: float = 0.5,
        created_at: datetime | str | None = None,
        expires_at: datetime | str | None = None,
        ttl: timedelta | float | None = None,
        source: str | None = None,
        supersedes: str | None = None,
        valid_from: datetime | str | None = None,
    ) -> Memory:
        """Store one memory and return it (as ``Memex.remember``)."""
        return await self._send(
            calls.remember(
                {
                    "content": content, "kind": kind, "tags": tags, "metadata": metadata,
                    "scope": scope, "importance": importance, "created_at": created_at,
                    "expires_at": expires_at, "ttl": ttl, "source": source,
                    "supersedes": supersedes, "valid_from": valid_from,
                }
            )
        )  # fmt: skip

    async def remember_many(
        self, items: Iterable[Mapping[str, Any]], *, progress: Progress | None = None
    ) -> builtins.list[Memory]:
        """Store many memories in one request: all of them, or none on any error."""
        memories = await self._send(calls.remember_many(items))
        Tally(progress, "storing", len(memories)).advance(len(memories))
        return memories

    async def supersede(self, memory_id: str, content: str, **fields: Any) -> Memory:
        """Record that ``memory_id`` is no longer true and ``content`` is; return the new
        memory (kind, tags, metadata, scope and importance carry over unless given)."""
        return await self._send(calls.supersede(memory_id, content, fields))

    async def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        expires_at: datetime | str | None = KEEP,
        source: str | None = KEEP,
    ) -> Memory:
        """Change a memory in place, as a new version; ``None`` leaves a field as it is,
        except ``expires_at`` and ``source``, which ``None`` clears."""
        return await self._send(
            calls.update(
                memory_id,
                {
                    "content": content, "kind": kind, "tags": tags, "metadata": metadata,
                    "importance": importance, "expires_at": expires_at, "source": source,
                },
            )
        )  # fmt: skip

    async def forget(self, memory_id: str) -> Memory:
        """Soft-delete a memory; the memories it superseded are valid again."""
        return await self._send(calls.forget(memory_id))

    async def purge(self, memory_id: str) -> str:
        """Delete a memory, its whole history and its vector, for good; return its id."""
        return await self._send(calls.purge(memory_id))

    async def import_lines(
        self, lines: Iterable[str] | AsyncIterable[str], *, progress: Progress | None = None
    ) -> builtins.list[Memory]:
        """Import JSON Lines records, streamed to the server, all or nothing; a bad line
        raises ImportFormatError with its number. Returns the memories imported."""
        body = LinesBody(lines, progress)
        return await self._send(calls.import_lines(), body)

    # -- reads -----------------------------------------------------------------------

    async def get(self, memory_id: str) -> Memory:
        """One memory by id; a forgotten or expired one is a NotFoundError."""
        return await self._send(calls.get(memory_id))

    async def history(self, memory_id: str) -> builtins.list[Memory]:
        """Every version of a memory, oldest first, in any state."""
        return await self._send(calls.history(memory_id))

    async def recall(
        self,
        query: str,
        k: int = 10,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        as_of: datetime | str | None = None,
        mode: Literal["hybrid", "lexical", "vector"] = "hybrid",
        query_vector: np.ndarray | None = None,
        weights: FusionWeights | None = None,
    ) -> builtins.list[Hit]:
        """The ``k`` memories that best match ``query``, best first (as ``Memex.recall``)."""
        options = {
            "scope": scope, "kinds": kinds, "tags": tags, "metadata": metadata,
            "since": since, "until": until, "as_of": as_of, "mode": mode,
            "query_vector": query_vector, "weights": weights,
        }  # fmt: skip
        return await self._send(calls.recall(query, k, options))

    async def context(
        self,
        query: str = "",
        budget_tokens: int = 4000,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        strategy: str = "balanced",
        sections: Sequence[str] | None = None,
        shares: Mapping[str, float] | None = None,
        session: str | None = None,
        format: str = "markdown",
        time_limit_ms: float | None = None,
    ) -> Context:
        """The best context for ``query`` within ``budget_tokens`` (as ``Memex.context``)."""
        options = {
            "scope": scope, "strategy": strategy, "sections": sections, "shares": shares,
            "session": session, "format": format, "time_limit_ms": time_limit_ms,
        }  # fmt: skip
        return await self._send(calls.context(query, budget_tokens, options))

    async def list(
        self,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        order: Order = "desc",
        limit: int = 50,
        cursor: str | None = None,
        include_deleted: bool = False,
        include_superseded: bool = False,
    ) -> Page:
        """A page of memories by creation time, keyset-paginated (as ``Memex.list``)."""
        options = {
            "scope": scope, "kinds": kinds, "tags": tags, "metadata": metadata,
            "since": since, "until": until, "order": order, "limit": limit,
            "cursor": cursor, "include_deleted": include_deleted,
            "include_superseded": include_superseded,
        }  # fmt: skip
        return await self._send(calls.list_(options))

    async def range(
        self,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Memory]:
        """Current memories created in ``[start, end)``, oldest first."""
        options = {
            "start": start, "end": end, "scope": scope, "kinds": kinds, "tags": tags,
            "limit": limit,
        }  # fmt: skip
        return await self._send(calls.range_(options))

    async def stats(self) -> Stats:
        """Counts and sizes for the key's scope; ``path`` is the server's URL."""
        return await self._send(calls.stats(self.location))

    async def export_lines(
        self,
        *,
        include_deleted: bool = False,
        history: bool = False,
        progress: Progress | None = None,
        ids: Sequence[str] | None = None,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> AsyncIterator[str]:
        """Every memory in scope as JSON Lines records (no line ends), oldest first,
        streamed from one snapshot the server takes when iteration starts."""
        import httpx

        options = {
            "include_deleted": include_deleted, "history": history, "ids": ids,
            "scope": scope, "kinds": kinds, "tags": tags, "since": since, "until": until,
        }  # fmt: skip
        call = calls.export(options)
        if call is None:
            return
        response = await self._exchange(call, stream=True)
        tally = Tally(progress, "exporting", None)
        pending = 0
        try:
            async for line in asplit_lines(response.aiter_bytes()):
                if line.strip():
                    yield line.decode("utf-8")
                    pending += 1
                if pending == _REPORT_EVERY:
                    tally.advance(pending)
                    pending = 0
            tally.advance(pending)
        except httpx.TransportError as exc:
            _, why = connection_failure(exc, self._end.timeout)
            raise StoreError(f"the export from {self.location} was cut off: {why}") from None
        except UnicodeDecodeError:
            raise malformed(self.location, "GET", "/v1/export") from None
        finally:
            await response.aclose()

    async def export(
        self,
        path: str | Path,
        *,
        include_deleted: bool = False,
        history: bool = False,
        progress: Progress | None = None,
        ids: Sequence[str] | None = None,
        scope: Scope | Mapping[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> int:
        """Write ``export_lines`` to the local file ``path`` (replaced only once complete);
        return how many memories it holds."""
        from memex.files import output_file

        count = 0
        with output_file(path) as handle:
            async for line in self.export_lines(
                include_deleted=include_deleted,
                history=history,
                progress=progress,
                ids=ids,
                scope=scope,
                kinds=kinds,
                tags=tags,
                since=since,
                until=until,
            ):
                handle.write(line + "\n")
                count += 1
        return count

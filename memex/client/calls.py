"""Each client method as a request, and each answer as its return value. No I/O.

``Client`` and ``AsyncClient`` differ only in how they send: both turn a method call
into a ``Call`` here (route, query, JSON body, whether it may be sent twice, how to read
the answer), so the two cannot drift apart. Arguments are taken as ``Memex`` takes them
(datetimes or ISO strings, timedeltas or seconds, scopes or mappings, numpy vectors)
and sent as ``docs/http.md`` writes them; the server validates them as ``Memex`` does,
so a bad value is the same ``ValidationError`` either way.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from memex.core import wire
from memex.core.assembled import Context
from memex.core.audit import AuditReport, verification_from_dict
from memex.core.audit import Verification as AuditVerification
from memex.core.ids import stored_id
from memex.core.limits import QuotaReport
from memex.core.models import SCOPE_FIELDS, Hit, Memory, Page, Scope, Stats, parse_time
from memex.core.privacy import Anonymisation, ErasureReceipt, PrivacyExport
from memex.core.versions import KEEP, update_changes
from memex.errors import ScopeError, ValidationError

T = TypeVar("T")

JSON_TYPE = "application/json"
LINES_TYPE = "application/x-ndjson"
TIME_FIELDS = frozenset({"created_at", "expires_at", "valid_from"})
"""The time arguments of ``remember`` (and of each ``remember_many`` item)."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request: what to send, and how to read a successful answer's JSON."""

    method: str
    path: str
    read: Callable[[Any], T]
    params: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] | None = None
    idempotent: bool = False
    """Whether sending it twice does no harm: only then is it sent again after the
    connection failed once the request may have reached the server."""
    tenants: tuple[str, ...] = ()
    """Tenants the arguments' scopes name: each must be the caller's own, or it is a
    ScopeError. The key decides the tenant, so no request carries one: the client
    checks them instead."""

    def check_tenant(self, mine: str | None) -> None:
        """Refuse a scope that names a tenant other than the caller's, as ``Memex`` does."""
        for tenant in self.tenants:
            if tenant != mine:
                raise ScopeError(
                    f"scope tenant is fixed to {mine!r} by the API key; got {tenant!r}"
                )

    def content(self) -> bytes | None:
        """The JSON body, encoded; a value JSON cannot carry is bad input."""
        if self.body is None:
            return None
        try:
            return json.dumps(self.body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"an argument cannot be sent: {exc}") from exc


# -- arguments ---------------------------------------------------------------------------


def memory_path(memory_id: object, tail: str = "") -> str:
    """The route of one memory (``tail`` after it), with the id checked as ``Memex`` does."""
    return f"/v1/memories/{quote(stored_id(memory_id), safe='')}{tail}"


def time_arg(value: object, what: str) -> Any:
    """A time as the API takes it: ISO strings as given (the server reads them as
    ``Memex`` would), datetimes and Unix seconds in ISO 8601."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return parse_time(value, what).isoformat()  # type: ignore[arg-type]


def seconds_arg(value: object) -> Any:
    """A duration as seconds: a timedelta is converted, anything else sent as given."""
    return value.total_seconds() if isinstance(value, timedelta) else value


def scope_arg(value: object) -> dict[str, str] | None:
    """A scope (or mapping) as a dict; an unknown field is refused here, as ``Memex`` does."""
    if value is None:
        return None
    return Scope.of(value).as_dict()  # type: ignore[arg-type]


def without_tenant(body: Any) -> tuple[Any, tuple[str, ...]]:
    """A body whose ``scope`` names no tenant, and the tenant it named (if any)."""
    if not isinstance(body, dict) or not isinstance(body.get("scope"), dict):
        return body, ()
    scope = dict(body["scope"])
    tenant = scope.pop("tenant", None)
    return {**body, "scope": scope}, (tenant,) if tenant is not None else ()


def seq_arg(value: object) -> Any:
    """A sequence as a JSON list; anything else is sent as given, for the server to refuse."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return value
    return list(value)


def map_arg(value: object) -> Any:
    """A mapping as a JSON object; anything else is sent as given, for the server to refuse."""
    return dict(value) if isinstance(value, Mapping) else value


def vector_arg(value: object) -> Any:
    """A query vector (numpy array or sequence of numbers) as a list of numbers."""
    if value is None:
        return None
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else seq_arg(value)


def weights_arg(value: object) -> Any:
    """Fusion weights as a JSON object."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def item_arg(item: object) -> Any:
    """One memory's arguments (``remember``'s, or a ``remember_many`` item) as JSON."""
    if not isinstance(item, Mapping):
        return item
    out: dict[str, Any] = {}
    for name, value in item.items():
        if name in TIME_FIELDS:
            value = time_arg(value, name)
        elif name == "ttl":
            value = seconds_arg(value)
        elif name == "scope":
            value = scope_arg(value)
        elif name == "tags":
            value = seq_arg(value)
        elif name == "metadata":
            value = map_arg(value)
        if value is not None:
            out[name] = value
    return out


def present(**values: Any) -> dict[str, Any]:
    """The arguments given (not None)."""
    return {k: v for k, v in values.items() if v is not None}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def listing_params(
    scope: object,
    kinds: Sequence[str] | None,
    tags: Sequence[str] | None,
    **rest: Any,
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """A listing's filters as query parameters (and the tenant its scope names)."""
    fields = scope_arg(scope) or {}
    params: list[tuple[str, str]] = [("kind", k) for k in seq_arg(kinds) or ()]
    params += [("tag", t) for t in seq_arg(tags) or ()]
    params += [(n, fields[n]) for n in SCOPE_FIELDS if n != "tenant" and n in fields]
    for name, value in rest.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = _flag(value)
        elif name == "metadata":
            value = json.dumps(map_arg(value), ensure_ascii=False, allow_nan=False)
        elif name in ("since", "until", "start", "end"):
            value = time_arg(value, name)
        params.append((name, str(value)))
    tenant = fields.get("tenant")
    return tuple(params), (tenant,) if tenant is not None else ()


# -- the calls ---------------------------------------------------------------------------


def _memory(data: Any) -> Memory:
    return wire.memory_from_dict(data)


def _memories(key: str) -> Callable[[Any], list[Memory]]:
    def read(data: Any) -> list[Memory]:
        return [wire.memory_from_dict(m) for m in data[key]]

    return read


def remember_many(items: Iterable[Mapping[str, Any]]) -> Call[list[Memory]]:
    """``remember_many``: one batch, all or nothing."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ValidationError("remember_many takes an iterable of mappings, one per memory")
    sent = [without_tenant(item_arg(i)) for i in items]
    body = {"items": [item for item, _ in sent]}
    tenants = tuple(dict.fromkeys(t for _, named in sent for t in named))
    return Call("POST", "/v1/memories/batch", _memories("memories"), body=body, tenants=tenants)


def remember(item: Mapping[str, Any]) -> Call[Memory]:
    """``remember``: one memory."""
    body, tenants = without_tenant(item_arg(item))
    return Call("POST", "/v1/memories", _memory, body=body, tenants=tenants)


def supersede(memory_id: str, content: str, fields: Mapping[str, Any]) -> Call[Memory]:
    """``supersede``: a new memory in place of ``memory_id`` (the server carries the rest over)."""
    if "supersedes" in fields:
        raise ValidationError("supersede names the memory it replaces; drop supersedes")
    body, tenants = without_tenant(item_arg({"content": content, **fields}))
    return Call("POST", memory_path(memory_id, "/supersede"), _memory, body=body, tenants=tenants)


def update(memory_id: str, fields: Mapping[str, Any]) -> Call[Memory]:
    """``update``: only the fields given are sent; ``None`` clears expires_at and source."""
    changes = update_changes(fields)
    if "expires_at" in changes:
        changes["expires_at"] = time_arg(changes["expires_at"], "expires_at")
    body = {k: seq_arg(v) if k == "tags" else map_arg(v) for k, v in changes.items()}
    return Call("PATCH", memory_path(memory_id), _memory, body=body)


def get(memory_id: str) -> Call[Memory]:
    """``get``."""
    return Call("GET", memory_path(memory_id), _memory, idempotent=True)


def forget(memory_id: str) -> Call[Memory]:
    """``forget``."""
    return Call("DELETE", memory_path(memory_id), _memory)


def purge(memory_id: str) -> Call[str]:
    """``purge``: the id as stored."""
    return Call("POST", memory_path(memory_id, "/purge"), lambda data: str(data["purged"]))


def history(memory_id: str) -> Call[list[Memory]]:
    """``history``: every version, oldest first."""
    return Call("GET", memory_path(memory_id, "/history"), _memories("versions"), idempotent=True)


def recall(query: str, k: int, options: Mapping[str, Any]) -> Call[list[Hit]]:
    """``recall``: a read, so it may be sent again."""
    o = dict(options)
    scope = scope_arg(o.pop("scope", None))
    body = present(
        query=query,
        k=k,
        scope=scope,
        kinds=seq_arg(o.pop("kinds", None)),
        tags=seq_arg(o.pop("tags", None)),
        metadata=map_arg(o.pop("metadata", None)),
        since=time_arg(o.pop("since", None), "since"),
        until=time_arg(o.pop("until", None), "until"),
        as_of=time_arg(o.pop("as_of", None), "as_of"),
        query_vector=vector_arg(o.pop("query_vector", None)),
        weights=weights_arg(o.pop("weights", None)),
        **o,
    )

    def read(data: Any) -> list[Hit]:
        return [wire.hit_from_dict(h) for h in data["hits"]]

    body, tenants = without_tenant(body)
    return Call("POST", "/v1/recall", read, body=body, idempotent=True, tenants=tenants)


def context(query: str, budget_tokens: int, options: Mapping[str, Any]) -> Call[Context]:
    """``context``: a read (a session's snapshot saved twice is saved once), so it may be
    sent again."""
    o = dict(options)
    scope = scope_arg(o.pop("scope", None))
    body = present(
        query=query,
        budget_tokens=budget_tokens,
        scope=scope,
        sections=seq_arg(o.pop("sections", None)),
        shares=map_arg(o.pop("shares", None)),
        **o,
    )
    body, tenants = without_tenant(body)
    return Call(
        "POST", "/v1/context", wire.context_from_dict, body=body, idempotent=True, tenants=tenants
    )


def list_(options: Mapping[str, Any]) -> Call[Page]:
    """``list``: one page."""
    o = dict(options)
    params, tenants = listing_params(o.pop("scope", None), o.pop("kinds"), o.pop("tags"), **o)
    read = wire.page_from_dict
    return Call("GET", "/v1/memories", read, params, idempotent=True, tenants=tenants)


def range_(options: Mapping[str, Any]) -> Call[list[Memory]]:
    """``range``: current memories in a window, oldest first."""
    o = dict(options)
    params, tenants = listing_params(o.pop("scope", None), o.pop("kinds"), o.pop("tags"), **o)
    return Call("GET", "/v1/range", _memories("items"), params, idempotent=True, tenants=tenants)


def stats(location: str) -> Call[Stats]:
    """``stats``; the server keeps its files to itself, so the store is named by its URL."""

    def read(data: Any) -> Stats:
        found = wire.stats_from_dict(data)
        return dataclasses.replace(found, path=found.path or location)

    return Call("GET", "/v1/stats", read, idempotent=True)


def export(options: Mapping[str, Any]) -> Call[None] | None:
    """``export_lines``: the request (None for an empty list of ids: an export of nothing,
    which no query string can ask for); the answer is read line by line, not as JSON."""
    o = dict(options)
    ids = o.pop("ids", None)
    if isinstance(ids, str | bytes | Mapping) or not (ids is None or isinstance(ids, Iterable)):
        raise ValidationError("ids must be a list of memory ids")
    params, tenants = listing_params(o.pop("scope", None), o.pop("kinds"), o.pop("tags"), **o)
    if ids is not None:
        named = tuple(("id", stored_id(i)) for i in ids)
        if not named:
            return None
        params += named
    read = lambda data: None  # noqa: E731
    return Call("GET", "/v1/export", read, params, idempotent=True, tenants=tenants)


def import_lines() -> Call[list[Memory]]:
    """``import_lines``: the request (its body is the lines, streamed) and the memories
    the answer holds."""
    return Call("POST", "/v1/import", _memories("memories"))


def export_user(user: str) -> Call[PrivacyExport]:
    """``export_user``: a read, so it may be sent again."""
    return Call(
        "POST", "/v1/privacy/export", PrivacyExport.from_dict, body={"user": user}, idempotent=True
    )


def erase(
    user: str | None, project: str | None, tenant: str | None, batch_size: int
) -> Call[ErasureReceipt]:
    """``erase``: sent again after a lost connection, it finishes the job (or finds
    nothing left: not found)."""
    body = present(user=user, project=project, tenant=tenant, batch_size=batch_size)
    return Call("POST", "/v1/privacy/erase", ErasureReceipt.from_dict, body=body)


def anonymise(user: str) -> Call[Anonymisation]:
    """``anonymise``: never sent twice (a second run would find no such user)."""
    return Call("POST", "/v1/privacy/anonymise", Anonymisation.from_dict, body={"user": user})


def me() -> Call[dict[str, Any]]:
    """The calling key, its tenant and role (``GET /v1/me``)."""
    return Call("GET", "/v1/me", lambda data: dict(data), idempotent=True)


def scope_of(me: Mapping[str, Any]) -> Scope:
    """The scope a caller is confined to, from what ``GET /v1/me`` says of it."""
    return Scope(tenant=me["tenant"], user=me.get("user"), project=me.get("project"))


def _quota_path(tenant: str | None) -> str:
    if tenant is None:
        return "/v1/quota"
    if not isinstance(tenant, str) or not tenant:
        raise ValidationError(f"a tenant is a name, not {tenant!r}")
    return f"/v1/tenants/{quote(tenant, safe='')}/quota"


def quota(tenant: str | None) -> Call[QuotaReport]:
    """``quota``: the key's tenant's (or, for owners of the home tenant, another's)."""
    return Call("GET", _quota_path(tenant), QuotaReport.from_dict, idempotent=True)


def set_quota(tenant: str | None, given: Mapping[str, Any], reset: bool) -> Call[QuotaReport]:
    """``set_quota``: only the limits given (``KEEP`` left out) are sent."""
    body: dict[str, Any] = {name: value for name, value in given.items() if value is not KEEP}
    if reset:
        body["reset"] = True
    return Call("PATCH", _quota_path(tenant), QuotaReport.from_dict, body=body, idempotent=True)


def audit_verify(tenant: str | None) -> Call[list[AuditVerification]]:
    """``audit_verify``: the key's tenant's chain (``GET /v1/audit/verify``)."""
    if tenant is not None and not isinstance(tenant, str):
        raise ValidationError("tenant must be a string")
    return Call(
        "GET",
        "/v1/audit/verify",
        lambda data: [verification_from_dict(data)],
        idempotent=True,
        tenants=() if tenant is None else (tenant,),
    )


def audit_export(since: object, until: object, tenant: str | None) -> Call[AuditReport]:
    """``audit_export``: the key's tenant's entries in ``[since, until)`` (``GET /v1/audit``)."""
    if tenant is not None and not isinstance(tenant, str):
        raise ValidationError("tenant must be a string")
    params = tuple(
        (name, str(time_arg(value, name)))
        for name, value in (("since", since), ("until", until))
        if value is not None
    )
    return Call(
        "GET",
        "/v1/audit",
        AuditReport.from_dict,
        params=params,
        idempotent=True,
        tenants=() if tenant is None else (tenant,),
    )

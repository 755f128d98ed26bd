"""What the privacy operations work on and hand back: who is exported, erased or
anonymised (``Selector``), an erasure's receipt, an anonymisation's result and an
export package. Pure: values and decisions, no I/O (docs/security.md, "Privacy").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from memex.core.identity import check_name
from memex.core.models import Memory, Scope, parse_time
from memex.errors import ValidationError

SelectorKind = Literal["user", "project", "tenant"]

ERASED_KINDS = (
    "memories",
    "versions",
    "vectors",
    "sessions",
    "keys",
    "users",
    "projects",
    "tenants",
)
"""What an erasure counts, in the order a receipt lists them."""

ANONYMISED_KINDS = ("memories", "versions", "sessions", "keys", "users")
"""What an anonymisation counts."""

EXPORT_FORMAT = "memex-privacy-export"
EXPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Selector:
    """Whose data an operation covers: one user or one project of a tenant, or the
    whole tenant."""

    tenant: str
    user: str | None = None
    project: str | None = None

    @classmethod
    def of(cls, tenant: str, *, user: str | None = None, project: str | None = None) -> Selector:
        """A checked selector: at most one of ``user`` and ``project``."""
        if user is not None and project is not None:
            raise ValidationError("name a user or a project, not both")
        return cls(
            check_name(tenant, "tenant"),
            None if user is None else check_name(user, "user"),
            None if project is None else check_name(project, "project"),
        )

    @property
    def kind(self) -> SelectorKind:
        """``user``, ``project`` or ``tenant``."""
        if self.user is not None:
            return "user"
        return "project" if self.project is not None else "tenant"

    @property
    def scope(self) -> Scope:
        """The memories it covers, as a scope."""
        return Scope(tenant=self.tenant, user=self.user, project=self.project)

    def describe(self) -> str:
        """For people: ``user 'alice' of tenant 'acme'``."""
        if self.kind == "tenant":
            return f"tenant {self.tenant!r}"
        return f"{self.kind} {self.user or self.project!r} of tenant {self.tenant!r}"

    def to_dict(self) -> dict[str, str]:
        """As JSON: ``tenant`` and the user or project, if any."""
        out = {"tenant": self.tenant}
        if self.user is not None:
            out["user"] = self.user
        if self.project is not None:
            out["project"] = self.project
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selector:
        """Read back ``to_dict``."""
        return cls.of(str(data["tenant"]), user=data.get("user"), project=data.get("project"))


def ids_digest(ids: Iterable[str]) -> str:
    """The SHA-256 (hex) of the ids sorted and joined by newlines: the same set of ids
    always gives the same digest, whatever order they were erased in."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def added(total: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    """Counts summed key by key."""
    out = dict(total)
    for name, count in more.items():
        out[name] = out.get(name, 0) + int(count)
    return out


def ordered_counts(counts: Mapping[str, int], kinds: Sequence[str]) -> dict[str, int]:
    """Every kind of ``kinds``, in that order, with its count (0 if absent)."""
    return {kind: int(counts.get(kind, 0)) for kind in kinds}


# -- saved session contexts ---------------------------------------------------------------
# A session's saved context is keyed by the scope of its context call and the session's
# name: ``project=web&user=alice#chat-1`` (scope values never hold ``&``, ``=`` or ``#``).


def session_scope(key: str) -> dict[str, str]:
    """The scope fields a saved session's key names."""
    scope, _, _ = key.partition("#")
    pairs = (part.partition("=") for part in scope.split("&") if part)
    return {name: value for name, _, value in pairs}


def session_names(key: str, name: str, value: str) -> bool:
    """Whether a saved session's key names scope field ``name`` as ``value``."""
    return session_scope(key).get(name) == value


def renamed_session(key: str, user: str, pseudonym: str) -> str:
    """The key with ``user=<user>`` replaced by ``user=<pseudonym>``; the rest kept."""
    scope, mark, session = key.partition("#")
    parts = [f"user={pseudonym}" if part == f"user={user}" else part for part in scope.split("&")]
    return "&".join(parts) + mark + session


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """What an erasure removed: its selector, when, how many of each kind of thing, and
    the SHA-256 of the sorted ids of the memories it erased.

    ``counts`` are what this run removed, read from the store's own answers to each
    delete. ``notes`` say what the store could not do yet (a write-ahead log a reader
    still holds, say) and when it will.
    """

    selector: Selector
    started_at: datetime
    finished_at: datetime
    counts: dict[str, int]
    ids_sha256: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "selector": self.selector.to_dict(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "counts": ordered_counts(self.counts, ERASED_KINDS),
            "ids_sha256": self.ids_sha256,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErasureReceipt:
        """Read back ``to_dict``."""
        return cls(
            selector=Selector.from_dict(data["selector"]),
            started_at=parse_time(data["started_at"], "started_at"),
            finished_at=parse_time(data["finished_at"], "finished_at"),
            counts={str(k): int(v) for k, v in data["counts"].items()},
            ids_sha256=str(data["ids_sha256"]),
            notes=tuple(str(n) for n in data.get("notes", ())),
        )


@dataclass(frozen=True, slots=True)
class Anonymisation:
    """What an anonymisation changed: the user's new name and how many of each kind of
    thing now carry it instead of the old one."""

    selector: Selector
    pseudonym: str
    at: datetime
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "selector": self.selector.to_dict(),
            "pseudonym": self.pseudonym,
            "at": self.at.isoformat(),
            "counts": ordered_counts(self.counts, ANONYMISED_KINDS),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anonymisation:
        """Read back ``to_dict``."""
        return cls(
            selector=Selector.from_dict(data["selector"]),
            pseudonym=str(data["pseudonym"]),
            at=parse_time(data["at"], "at"),
            counts={str(k): int(v) for k, v in data["counts"].items()},
        )


@dataclass(frozen=True, slots=True)
class PrivacyExport:
    """Everything a store holds about one user of a tenant, as one package: each memory
    (forgotten ones too) with its past versions, and the audit entries that name them.

    ``to_dict`` is the package: the memories, the audit entries and a manifest with
    their counts and the SHA-256 of their canonical JSON, so a reader can check that
    the package is whole.
    """

    selector: Selector
    exported_at: datetime
    memories: tuple[tuple[Memory, tuple[Memory, ...]], ...]
    audit: tuple[dict[str, Any], ...] = field(default=())

    @property
    def versions(self) -> int:
        """Every version: each memory's current one and its past ones."""
        return sum(1 + len(past) for _, past in self.memories)

    def _body(self) -> dict[str, Any]:
        return {
            "memories": [
                {"memory": m.to_dict(), "past_versions": [p.to_dict() for p in past]}
                for m, past in self.memories
            ],
            "audit": list(self.audit),
        }

    def to_dict(self) -> dict[str, Any]:
        """The package as JSON (see the class docstring)."""
        body = self._body()
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "selector": self.selector.to_dict(),
            "exported_at": self.exported_at.isoformat(),
            "manifest": {
                "memories": len(self.memories),
                "versions": self.versions,
                "audit_entries": len(self.audit),
                "sha256": body_digest(body),
            },
            **body,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyExport:
        """Read back a package, checking its format and its manifest's hash."""
        from memex.core.wire import memory_from_dict

        if data.get("format") != EXPORT_FORMAT or data.get("version") != EXPORT_VERSION:
            raise ValidationError(f"not a {EXPORT_FORMAT} package of version {EXPORT_VERSION}")
        body = {"memories": data["memories"], "audit": data["audit"]}
        if body_digest(body) != data["manifest"]["sha256"]:
            raise ValidationError("the package does not match its manifest's sha256")
        return cls(
            selector=Selector.from_dict(data["selector"]),
            exported_at=parse_time(data["exported_at"], "exported_at"),
            memories=tuple(
                (
                    memory_from_dict(item["memory"]),
                    tuple(memory_from_dict(p) for p in item["past_versions"]),
                )
                for item in data["memories"]
            ),
            audit=tuple(dict(entry) for entry in data["audit"]),
        )


def body_digest(body: Mapping[str, Any]) -> str:
    """The SHA-256 of a package's memories and audit entries as canonical JSON (sorted
    keys, no spaces, UTF-8)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

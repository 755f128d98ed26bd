"""The audit trail's values and decisions: entries, their hash chain, and its verification.

Each tenant has one chain: entry *n* holds the hash of entry *n - 1* (the first holds
``GENESIS``), and its own hash is the SHA-256 of a canonical encoding of all its fields
with that previous hash. A chain head (the last sequence number and hash), kept beside
the entries and moved in the same transaction, makes a cut-off tail visible. Requests
refused before any tenant is known (an unknown key) go to the store-wide chain
``STORE_CHAIN``, a name no tenant can have.

An entry names who acted (key id, user, client address, user agent), what (action,
resource type and id, how many memories), and how it ended (outcome, detail): never
memory content, never a key's secret or hash.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from memex.core.models import from_micros, to_micros

GENESIS = "0" * 64
"""The previous hash of a chain's first entry."""
STORE_CHAIN = "*"
"""The chain of refusals that belong to no tenant (a key that is not known); no tenant
name can be ``*``."""
ENCODING = "memex-audit-1"
"""Names the canonical encoding, which is part of what is hashed."""

OK = "ok"
DENIED = "denied"
WARNING = "warning"
OUTCOMES = (OK, DENIED, WARNING)
"""What an entry's ``outcome`` may be: a change made, a request refused, a warning
given (a soft limit reached)."""

_LIMITS = {"key_id": 128, "user": 128, "client": 64, "user_agent": 256, "detail": 256}
_LIMITS.update(action=64, resource_type=32, resource_id=256)


def _bounded(value: str | None, name: str) -> str | None:
    """``value`` cut to its field's length, control characters replaced."""
    if value is None:
        return None
    text = str(value)[: _LIMITS[name]]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a key's id (``local:<os user>`` for the command line on a store),
    the user the key is bound to, and the request's client address and user agent."""

    key_id: str
    user: str | None = None
    client: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something to append to ``tenant``'s chain (the store gives it a number, a time and
    its place in the chain). ``count`` is how many memories a batch touched."""

    tenant: str
    action: str
    resource_type: str
    actor: Actor
    resource_id: str = ""
    outcome: str = OK
    count: int = 1
    detail: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if not self.tenant or not self.action or not self.resource_type:
            raise ValueError("an audit event needs a tenant, an action and a resource type")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of a tenant's chain, as stored."""

    tenant: str
    seq: int
    at: datetime
    key_id: str
    user: str | None
    action: str
    resource_type: str
    resource_id: str
    outcome: str
    client: str | None
    user_agent: str | None
    count: int
    detail: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the time in ISO 8601)."""
        return {
            "tenant": self.tenant,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "key_id": self.key_id,
            "user": self.user,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "outcome": self.outcome,
            "client": self.client,
            "user_agent": self.user_agent,
            "count": self.count,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        """The entry ``to_dict`` made."""
        return cls(
            tenant=str(data["tenant"]),
            seq=int(data["seq"]),
            at=datetime.fromisoformat(str(data["at"])),
            key_id=str(data["key_id"]),
            user=data.get("user"),
            action=str(data["action"]),
            resource_type=str(data["resource_type"]),
            resource_id=str(data["resource_id"]),
            outcome=str(data["outcome"]),
            client=data.get("client"),
            user_agent=data.get("user_agent"),
            count=int(data["count"]),
            detail=str(data["detail"]),
            prev_hash=str(data["prev_hash"]),
            hash=str(data["hash"]),
        )


@dataclass(frozen=True, slots=True)
class AuditHead:
    """Where a tenant's chain ends: the last entry's number and hash (0 and ``GENESIS``
    before the first)."""

    tenant: str
    seq: int = 0
    hash: str = GENESIS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"tenant": self.tenant, "seq": self.seq, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class AuditTrail:
    """A chain's entries read in one transaction (in order, maybe a range of them) and
    its head then; ``head`` is None when the chain has none."""

    tenant: str
    entries: tuple[AuditEntry, ...]
    head: AuditHead | None


def canonical(entry: AuditEntry) -> bytes:
    """The bytes an entry's hash is taken of: every field but the hash, in a fixed order,
    as compact ASCII JSON (times as integer microseconds)."""
    fields = [
        ENCODING,
        entry.tenant,
        entry.seq,
        to_micros(entry.at),
        entry.key_id,
        entry.user,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.outcome,
        entry.client,
        entry.user_agent,
        entry.count,
        entry.detail,
        entry.prev_hash,
    ]
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def entry_hash(entry: AuditEntry) -> str:
    """The SHA-256 (hex) of the entry's canonical encoding."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def next_entry(head: AuditHead | None, event: AuditEvent, at: datetime) -> AuditEntry:
    """The entry that follows ``head`` (None: the chain's first) for ``event``, at ``at``
    (stored to the microsecond)."""
    seq, prev = (0, GENESIS) if head is None else (head.seq, head.hash)
    actor = event.actor
    fields = (
        event.tenant,
        seq + 1,
        from_micros(to_micros(at)),
        _bounded(actor.key_id, "key_id") or "",
        _bounded(actor.user, "user"),
        _bounded(event.action, "action") or "",
        _bounded(event.resource_type, "resource_type") or "",
        _bounded(event.resource_id, "resource_id") or "",
        event.outcome,
        _bounded(actor.client, "client"),
        _bounded(actor.user_agent, "user_agent"),
        max(0, int(event.count)),
        _bounded(event.detail, "detail") or "",
        prev,
    )
    # Made twice rather than copied with dataclasses.replace (slower, on every write).
    return AuditEntry(*fields, hash=entry_hash(AuditEntry(*fields, hash="")))


def head_of(entry: AuditEntry) -> AuditHead:
    """The head of a chain whose last entry is ``entry``."""
    return AuditHead(entry.tenant, entry.seq, entry.hash)


# -- verification ------------------------------------------------------------------------


class Tamper(StrEnum):
    """What was done to a chain."""

    EDITED = "edited"
    """an entry's fields changed (its hash no longer matches, or the next entry's link)"""
    DELETED = "deleted"
    """an entry is missing from the middle of the chain"""
    INSERTED = "inserted"
    """an entry that the chain never linked (or one beyond its head)"""
    REORDERED = "reordered"
    """an intact entry under another entry's sequence number"""
    TRUNCATED = "truncated"
    """entries are missing from the end (the head says the chain is longer)"""
    HEAD = "head"
    """the chain head is missing or does not match the last entry"""


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of ``verify``: at which sequence number, and what kind."""

    seq: int
    kind: Tamper

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"seq": self.seq, "kind": self.kind.value}

    def describe(self) -> str:
        """One line for people."""
        return f"entry {self.seq}: {self.kind.value}"


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found of one chain: problems in chain order (none: intact)."""

    tenant: str
    entries: int
    head: AuditHead | None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether the chain is intact."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "tenant": self.tenant,
            "ok": self.ok,
            "entries": self.entries,
            "head": None if self.head is None else self.head.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
        }


def _valid_at(entry: AuditEntry, seq: int) -> bool:
    return seq >= 1 and entry_hash(replace(entry, seq=seq)) == entry.hash


def _moved_from(entry: AuditEntry, seqs: Iterable[int]) -> int | None:
    """The sequence number the intact ``entry`` was hashed under, among ``seqs``."""
    for seq in seqs:
        if seq != entry.seq and _valid_at(entry, seq):
            return seq
    return None


def _linked_to(entry: AuditEntry, following: AuditEntry | None, head: AuditHead | None) -> bool:
    """Whether the chain links to ``entry`` where it stands: the next entry holds its
    hash, or, the last, the head does at its number."""
    if following is not None:
        return following.prev_hash == entry.hash
    return head is not None and (head.seq, head.hash) == (entry.seq, entry.hash)


def verify(entries: Sequence[AuditEntry], head: AuditHead | None) -> Verification:
    """Check a whole chain, read in sequence order, against its head.

    Detects an edited entry (its hash, or, if it was hashed again, the next entry's
    link), a deleted one (a gap, or later entries renumbered), an inserted one (never
    linked, or beyond the head), reordered ones (intact entries under other numbers) and
    a truncated tail (the head is further on). What it cannot detect: a chain rewritten
    from some entry on, hashes and head included (compare the head with one kept
    elsewhere).
    """
    tenant = head.tenant if head is not None else (entries[0].tenant if entries else "")
    problems: list[Problem] = []
    by_hash = {e.hash: e for e in entries}
    linked = {e.prev_hash for e in entries}
    expected, prev = 1, GENESIS

    def found(seq: int, kind: Tamper) -> None:
        if Problem(seq, kind) not in problems:
            problems.append(Problem(seq, kind))

    offset = 0  # how far later entries were renumbered, once a renumbering is found
    flagged = False  # whether the previous entry was found wrong (its link is moot)
    for index, entry in enumerate(entries):
        following = entries[index + 1] if index + 1 < len(entries) else None
        before = len(problems)
        if entry.seq < expected:
            found(entry.seq, Tamper.INSERTED)
        elif entry.seq > expected:
            found(expected, Tamper.DELETED)
        if entry_hash(entry) != entry.hash:
            if offset and _valid_at(entry, entry.seq + offset):
                expected, prev, flagged = entry.seq + 1, entry.hash, False
                continue  # consistent with the renumbering found already
            origin = by_hash.get(entry.prev_hash)
            guesses = [entry.seq + 1, entry.seq - 1]
            if origin is not None:
                guesses.insert(0, origin.seq + 1)
            moved = _moved_from(entry, guesses)
            if moved is not None and moved > entry.seq and entry.prev_hash not in by_hash:
                found(entry.seq, Tamper.DELETED)  # later entries renumbered over a gap
                offset = moved - entry.seq
            elif moved == entry.seq - 1 and entry.prev_hash != prev and prev not in linked:
                found(entry.seq - 1, Tamper.INSERTED)  # an entry pushed in before it
                offset = -1
            elif moved is not None:
                found(min(entry.seq, moved), Tamper.REORDERED)
            elif _linked_to(entry, following, head):
                found(entry.seq, Tamper.EDITED)
            else:
                found(entry.seq, Tamper.INSERTED)
        elif entry.prev_hash != prev and not flagged and len(problems) == before:
            if following is not None and following.prev_hash == prev:
                found(entry.seq, Tamper.INSERTED)
            elif entry.prev_hash in by_hash:
                found(entry.seq, Tamper.REORDERED)
            else:
                found(max(1, entry.seq - 1), Tamper.EDITED)  # the one before, hashed again
        expected, prev, flagged = entry.seq + 1, entry.hash, len(problems) > before
    last = entries[-1] if entries else None
    if offset:  # the head's number differs by the renumbering found already
        return Verification(tenant, len(entries), head, tuple(problems))
    if head is None:
        if last is not None:
            found(last.seq, Tamper.HEAD)
    elif last is None:
        if head.seq > 0:
            found(1, Tamper.TRUNCATED)
    elif last.seq < head.seq:
        found(last.seq + 1, Tamper.TRUNCATED)
    elif last.seq > head.seq:
        found(head.seq + 1, Tamper.INSERTED)
    elif last.hash != head.hash and not problems:
        found(last.seq, Tamper.EDITED)
    return Verification(tenant, len(entries), head, tuple(problems))


def summary(entries: Iterable[AuditEntry]) -> dict[str, Any]:
    """How many entries, by action, by outcome and by both (``action/outcome``)."""
    by_action: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    both: Counter[str] = Counter()
    total = 0
    for entry in entries:
        total += 1
        by_action[entry.action] += 1
        by_outcome[entry.outcome] += 1
        both[f"{entry.action}/{entry.outcome}"] += 1
    return {
        "entries": total,
        "by_action": dict(sorted(by_action.items())),
        "by_outcome": dict(sorted(by_outcome.items())),
        "by_action_outcome": dict(sorted(both.items())),
    }


def _time_or_none(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def verification_from_dict(data: Mapping[str, Any]) -> Verification:
    """The verification ``Verification.to_dict`` made."""
    head = data.get("head")
    return Verification(
        tenant=str(data["tenant"]),
        entries=int(data["entries"]),
        head=None if head is None else AuditHead(str(head["tenant"]), head["seq"], head["hash"]),
        problems=tuple(Problem(int(p["seq"]), Tamper(p["kind"])) for p in data["problems"]),
    )


@dataclass(frozen=True, slots=True)
class AuditReport:
    """A compliance report: the entries of some chains made in ``[since, until)``, in
    order, with a summary by action and outcome and each chain's head when read."""

    tenants: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    entries: tuple[AuditEntry, ...]
    heads: tuple[AuditHead, ...]

    @property
    def summary(self) -> dict[str, Any]:
        """How many entries, by action, by outcome and by both."""
        return summary(self.entries)

    def header(self) -> dict[str, Any]:
        """Everything but the entries, JSON-ready."""
        return {
            "tenants": list(self.tenants),
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "heads": [h.to_dict() for h in self.heads],
            "summary": self.summary,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**self.header(), "entries": [e.to_dict() for e in self.entries]}

    def lines(self) -> Iterable[str]:
        """The report as JSON Lines: one line per entry, then a line holding the rest
        under ``"report"``."""
        for entry in self.entries:
            yield json.dumps(entry.to_dict(), ensure_ascii=False, separators=(",", ":"))
        yield json.dumps({"report": self.header()}, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditReport:
        """The report ``to_dict`` made."""
        return cls(
            tenants=tuple(str(t) for t in data["tenants"]),
            since=_time_or_none(data.get("since")),
            until=_time_or_none(data.get("until")),
            entries=tuple(AuditEntry.from_dict(e) for e in data["entries"]),
            heads=tuple(AuditHead(str(h["tenant"]), h["seq"], h["hash"]) for h in data["heads"]),
        )

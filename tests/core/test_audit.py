"""The audit chain's pure parts: hashing, chaining, and what ``verify`` says of each
kind of tampering (as raw SQL on the entries table would leave the rows, read in
sequence order)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from memex.core.audit import (
    DENIED,
    GENESIS,
    Actor,
    AuditEntry,
    AuditEvent,
    AuditHead,
    Problem,
    Tamper,
    canonical,
    entry_hash,
    head_of,
    next_entry,
    summary,
    verify,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ACTOR = Actor("k1", user="ana", client="192.0.2.7", user_agent="agent/1")


def chain(n: int = 6, tenant: str = "acme") -> tuple[list[AuditEntry], AuditHead]:
    entries: list[AuditEntry] = []
    head: AuditHead | None = None
    for i in range(n):
        event = AuditEvent(tenant, f"memory.act{i % 3}", "memory", ACTOR, resource_id=f"m{i}")
        entry = next_entry(head, event, T0 + timedelta(seconds=i))
        entries.append(entry)
        head = head_of(entry)
    assert head is not None
    return entries, head


def renumber(entries: list[AuditEntry], at: int, by: int) -> list[AuditEntry]:
    """What ``UPDATE ... SET seq = seq + by WHERE seq >= at`` leaves."""
    return [replace(e, seq=e.seq + by) if e.seq >= at else e for e in entries]


def forged(after: AuditEntry, seq: int, *, valid: bool) -> AuditEntry:
    """An entry made up by someone who knows the encoding (or not)."""
    event = AuditEvent(after.tenant, "memory.forget", "memory", Actor("evil"), "m9")
    entry = replace(next_entry(head_of(after), event, T0), seq=seq)
    return replace(entry, hash=entry_hash(entry) if valid else "f" * 64)


def rehashed(entry: AuditEntry) -> AuditEntry:
    return replace(entry, hash=entry_hash(entry))


Tampering = Callable[[list[AuditEntry], AuditHead], tuple[list[AuditEntry], AuditHead | None]]

CASES: list[tuple[str, Tampering, Problem | None]] = [
    ("intact", lambda e, h: (e, h), None),
    (
        "edit a field of entry 3",
        lambda e, h: ([*e[:2], replace(e[2], outcome=DENIED), *e[3:]], h),
        Problem(3, Tamper.EDITED),
    ),
    (
        "edit entry 3 and hash it again",
        lambda e, h: ([*e[:2], rehashed(replace(e[2], action="x")), *e[3:]], h),
        Problem(3, Tamper.EDITED),
    ),
    (
        "edit the last entry",
        lambda e, h: ([*e[:5], replace(e[5], user="bob")], h),
        Problem(6, Tamper.EDITED),
    ),
    (
        "edit the last entry and hash it again",
        lambda e, h: ([*e[:5], rehashed(replace(e[5], user="bob"))], h),
        Problem(6, Tamper.EDITED),
    ),
    ("delete entry 3", lambda e, h: ([*e[:2], *e[3:]], h), Problem(3, Tamper.DELETED)),
    ("delete entry 1", lambda e, h: (e[1:], h), Problem(1, Tamper.DELETED)),
    (
        "delete entry 3 and renumber the rest",
        lambda e, h: (renumber([*e[:2], *e[3:]], 4, -1), h),
        Problem(3, Tamper.DELETED),
    ),
    (
        "insert an entry beyond the head",
        lambda e, h: ([*e, forged(e[5], 7, valid=True)], h),
        Problem(7, Tamper.INSERTED),
    ),
    (
        "insert a badly hashed entry beyond the head",
        lambda e, h: ([*e, forged(e[5], 7, valid=False)], h),
        Problem(7, Tamper.INSERTED),
    ),
    (
        "insert an entry at 3, renumbering the rest",
        lambda e, h: ([*e[:2], forged(e[1], 3, valid=True), *renumber(e[2:], 3, 1)], h),
        Problem(3, Tamper.INSERTED),
    ),
    (
        "insert a badly hashed entry at 3, renumbering the rest",
        lambda e, h: ([*e[:2], forged(e[1], 3, valid=False), *renumber(e[2:], 3, 1)], h),
        Problem(3, Tamper.INSERTED),
    ),
    (
        "insert an entry before the first",
        lambda e, h: ([forged(e[0], 0, valid=True), *e], h),
        Problem(0, Tamper.INSERTED),
    ),
    (
        "swap entries 2 and 5",
        lambda e, h: (
            [e[0], replace(e[4], seq=2), e[2], e[3], replace(e[1], seq=5), e[5]],
            h,
        ),
        Problem(2, Tamper.REORDERED),
    ),
    (
        "swap entries 3 and 4",
        lambda e, h: ([*e[:2], replace(e[3], seq=3), replace(e[2], seq=4), *e[4:]], h),
        Problem(3, Tamper.REORDERED),
    ),
    ("truncate after entry 4", lambda e, h: (e[:4], h), Problem(5, Tamper.TRUNCATED)),
    ("delete the last entry", lambda e, h: (e[:5], h), Problem(6, Tamper.TRUNCATED)),
    ("delete every entry", lambda e, h: ([], h), Problem(1, Tamper.TRUNCATED)),
    ("delete the head", lambda e, h: (e, None), Problem(6, Tamper.HEAD)),
    (
        "a head that names another hash",
        lambda e, h: (e, replace(h, hash="a" * 64)),
        Problem(6, Tamper.EDITED),
    ),
]


@pytest.mark.parametrize(("what", "tamper", "expected"), CASES, ids=[c[0] for c in CASES])
def test_verify_names_the_first_tampered_entry_and_how(
    what: str, tamper: Tampering, expected: Problem | None
) -> None:
    entries, head = chain()
    tampered, tampered_head = tamper(list(entries), head)
    found = verify(tampered, tampered_head)
    if expected is None:
        assert found.ok, found.problems
    else:
        assert not found.ok
        assert found.problems[0] == expected, found.problems


def test_an_empty_chain_without_a_head_is_intact() -> None:
    assert verify([], None).ok
    assert verify([], AuditHead("acme")).ok


def test_entries_chain_from_genesis_and_hash_every_field() -> None:
    entries, head = chain(3)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert head == AuditHead("acme", 3, entries[2].hash)
    base = entries[1]
    for name, value in [
        ("tenant", "other"), ("seq", 9), ("at", T0), ("key_id", "k2"), ("user", None),
        ("action", "a"), ("resource_type", "key"), ("resource_id", "x"), ("outcome", DENIED),
        ("client", None), ("user_agent", "b"), ("count", 7), ("detail", "d"),
        ("prev_hash", GENESIS),
    ]:  # fmt: skip
        assert entry_hash(replace(base, **{name: value})) != base.hash, name
    assert entry_hash(base) == base.hash


def test_canonical_encoding_is_fixed_ascii() -> None:
    entry = next_entry(None, AuditEvent("t", "a", "memory", Actor("k", user="é")), T0)
    assert canonical(entry).startswith(b'["memex-audit-1","t",1,')
    assert b"\\u00e9" in canonical(entry)


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("user_agent", "x" * 1000, "x" * 256),
        ("user_agent", "a\nb\x00c", "a?b?c"),
        ("client", "1" * 100, "1" * 64),
    ],
)
def test_actor_fields_are_bounded(field: str, value: str, stored: str) -> None:
    actor = replace(Actor("k"), **{field: value})
    entry = next_entry(None, AuditEvent("t", "a", "memory", actor), T0)
    assert getattr(entry, field) == stored


@pytest.mark.parametrize(
    "kwargs",
    [{"outcome": "maybe"}, {"tenant": ""}, {"action": ""}, {"resource_type": ""}],
)
def test_events_refuse_missing_or_unknown_fields(kwargs: dict[str, str]) -> None:
    fields = {"tenant": "t", "action": "a", "resource_type": "memory", **kwargs}
    with pytest.raises(ValueError, match=r"outcome|needs"):
        AuditEvent(actor=ACTOR, **fields)


def test_entries_round_trip_through_dicts() -> None:
    entries, _ = chain(2)
    assert [AuditEntry.from_dict(e.to_dict()) for e in entries] == entries


def test_summary_counts_by_action_and_outcome() -> None:
    entries, _ = chain(4)
    denied = replace(entries[3], outcome=DENIED)
    found = summary([*entries[:3], denied])
    assert found["entries"] == 4
    assert found["by_action"] == {"memory.act0": 2, "memory.act1": 1, "memory.act2": 1}
    assert found["by_outcome"] == {"denied": 1, "ok": 3}
    assert found["by_action_outcome"]["memory.act0/denied"] == 1

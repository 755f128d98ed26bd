"""The contract of every backend's audit chains (``Store.audit()``), run unchanged
against each through the ``backend`` and ``store`` fixtures of tests/conftest.py."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from memex.core.audit import (
    DENIED,
    STORE_CHAIN,
    Actor,
    AuditEvent,
    AuditHead,
    verify,
)
from memex.core.models import utcnow
from memex.errors import ConflictError, StoreReadOnlyError
from memex.storage.audit import AuditLog
from memex.storage.base import Store

if TYPE_CHECKING:
    from conftest import Backend

WHO = Actor("k1", user="ana", client="198.51.100.4", user_agent="test/1")


def event(tenant: str = "acme", action: str = "memory.remember", **fields: object) -> AuditEvent:
    return AuditEvent(tenant, action, "memory", WHO, **fields)  # type: ignore[arg-type]


def test_appends_chain_in_order_per_tenant(store: Store) -> None:
    log = store.audit()
    for i in range(3):
        log.append(event(resource_id=f"m{i}"))
    log.append(event("globex", "key.create", outcome=DENIED))
    log.append(AuditEvent(STORE_CHAIN, "authenticate", "route", Actor("abc")))
    acme = log.trail("acme")
    assert [e.seq for e in acme.entries] == [1, 2, 3]
    assert [e.resource_id for e in acme.entries] == ["m0", "m1", "m2"]
    assert acme.head == AuditHead("acme", 3, acme.entries[-1].hash)
    assert verify(acme.entries, acme.head).ok
    assert [e.outcome for e in log.trail("globex").entries] == [DENIED]
    assert [h.tenant for h in log.heads()] == [STORE_CHAIN, "acme", "globex"]
    assert log.trail("nobody").entries == () and log.trail("nobody").head is None


def test_a_trail_can_be_read_by_time(store: Store) -> None:
    log = store.audit()
    log.append(event(resource_id="a"))
    middle = utcnow()
    log.append(event(resource_id="b"))
    after = log.trail("acme", since=middle)
    before = log.trail("acme", until=middle)
    assert [e.resource_id for e in after.entries] == ["b"]
    assert [e.resource_id for e in before.entries] == ["a"]
    assert after.head == before.head  # the head of the whole chain
    assert log.trail("acme", since=middle + timedelta(days=1)).entries == ()


def test_concurrent_appends_take_turns(store: Store, backend: Backend) -> None:
    """Appends from two handles (as two processes) never fork or lose the chain."""
    other = backend.reopen()
    try:
        logs: list[AuditLog] = [store.audit(), other.audit()]

        def work(n: int) -> None:
            for i in range(10):
                logs[n].append(event(resource_id=f"{n}-{i}"))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        trail = store.audit().trail("acme")
        assert [e.seq for e in trail.entries] == list(range(1, 21))
        assert verify(trail.entries, trail.head).ok
    finally:
        other.close()


def test_copy_appends_what_the_target_lacks(store: Store, backend: Backend) -> None:
    log = store.audit()
    for i in range(4):
        log.append(event(resource_id=f"m{i}"))
    whole = log.trail("acme")
    target = backend.open_backup(backend.folder / "copy.db")
    try:
        part = type(whole)(whole.tenant, whole.entries[:2], None)
        assert target.audit().copy(part) == 2
        assert target.audit().copy(whole) == 2  # resumed
        assert target.audit().copy(whole) == 0
        assert target.audit().trail("acme") == whole
        target.audit().append(event(resource_id="own"))  # the chains fork
        store.audit().append(event(resource_id="fork"))
        with pytest.raises(ConflictError):
            target.audit().copy(store.audit().trail("acme"))
        assert target.audit().trail("acme").entries[-1].resource_id == "own"
    finally:
        target.close()


def test_a_backup_carries_the_chains(store: Store, backend: Backend) -> None:
    log = store.audit()
    log.append(event(resource_id="m1"))
    log.append(event("globex", resource_id="m2"))
    target = backend.backup_target()
    store.backup(target)
    copy = backend.open_backup(target)
    try:
        for tenant in ("acme", "globex"):
            assert copy.audit().trail(tenant) == log.trail(tenant)
        assert copy.audit().heads() == log.heads()
    finally:
        copy.close()


def test_a_read_only_store_reads_the_chains_and_appends_nothing(
    store: Store, backend: Backend
) -> None:
    store.audit().append(event())
    read_only = backend.reopen(read_only=True)
    try:
        assert read_only.audit().trail("acme") == store.audit().trail("acme")
        with pytest.raises(StoreReadOnlyError):
            read_only.audit().append(event())
    finally:
        read_only.close()


def test_the_suite_exercises_every_protocol_method() -> None:
    source = Path(__file__).read_text()
    methods = [name for name in vars(AuditLog) if not name.startswith("_")]
    assert len(methods) == 4
    assert [name for name in methods if f".{name}(" not in source] == []

"""The SQLite store's rows: memories built from them on first use equal memories built the
validated way, and list cursors round-trip and refuse what they never made."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import threading
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memex.core.models import Memory, Scope, from_micros, to_micros
from memex.errors import ValidationError
from memex.storage.sqlite.rows import (
    STORED_COLUMNS,
    decode_cursor,
    encode_cursor,
    memories,
    opened,
)


def _never(tenant: str, memory_id: str, version: int, field: str, value: bytes) -> str:
    raise AssertionError("a plain row has nothing sealed to open")


def stored_memories(rows: list[tuple[Any, ...]]) -> list[Memory]:
    return memories(opened(rows, _never))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stored_memory(row: tuple[Any, ...]) -> Memory:
    return stored_memories([row])[0]


def reference(row: tuple[Any, ...]) -> Memory:
    """The slow path: a validated Memory built eagerly, field by field."""
    (
        _, mid, tenant, project, user, agent, session, kind, content, tags, metadata,
        importance, source, chash, version, created, updated, expires, deleted, accessed,
        count, valid_from, valid_until, superseded_by,
    ) = row  # fmt: skip

    def t(value: int | None) -> datetime | None:
        if value is None:
            return None
        seconds, micros = divmod(value, 1_000_000)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)

    return Memory(
        id=mid,
        content=content,
        kind=kind,
        scope=Scope(tenant=tenant, project=project, user=user, agent=agent, session=session),
        tags=tuple(json.loads(tags)),
        metadata=json.loads(metadata),
        importance=importance,
        created_at=t(created),  # type: ignore[arg-type]
        updated_at=t(updated),  # type: ignore[arg-type]
        expires_at=t(expires),
        last_accessed_at=t(accessed),
        access_count=count,
        source=source,
        content_hash=chash,
        version=version,
        valid_from=t(valid_from if valid_from is not None else created),  # type: ignore[arg-type]
        valid_until=t(valid_until),
        superseded_by=superseded_by,
        deleted_at=t(deleted),
    )


micros = st.integers(min_value=0, max_value=to_micros(datetime(9000, 1, 1, tzinfo=UTC)))
names = st.none() | st.sampled_from(["web", "alice", "a.b:c@d/e", "X1"])
rows = st.tuples(
    st.integers(0, 2**40),
    st.uuids().map(str),
    st.sampled_from(["default", "acme"]),
    names,
    names,
    names,
    names,
    st.sampled_from(["note", "fact", "x.y-z"]),
    st.text(min_size=1),
    st.lists(st.text(min_size=1, max_size=5), max_size=3, unique=True).map(json.dumps),
    st.dictionaries(st.text(max_size=4), st.integers() | st.text() | st.none(), max_size=3).map(
        json.dumps
    ),
    st.floats(0, 1),
    st.none() | st.text(max_size=8),
    st.text(min_size=1, max_size=8),
    st.integers(1, 50),
    micros,
    micros,
    st.none() | micros,
    st.none() | micros,
    st.none() | micros,
    st.integers(0, 1000),
    st.none() | micros,
    st.none() | micros,
    st.none() | st.uuids().map(str),
)


def test_columns_cover_the_fields() -> None:
    scope = {"tenant", "project", "user", "agent", "session"}
    columns = set(STORED_COLUMNS[1:]) - scope | {"scope"}
    assert columns == {f.name for f in fields(Memory)}
    assert STORED_COLUMNS[0] == "key" and len(STORED_COLUMNS) == len(set(STORED_COLUMNS))


@given(rows)
def test_stored_memory_equals_the_validated_one(row: tuple[Any, ...]) -> None:
    expected = reference(row)
    assert stored_memory(row) == expected
    assert repr(stored_memory(row)) == repr(expected)
    assert stored_memory(row).to_dict() == expected.to_dict()
    lazy = stored_memory(row)
    assert lazy.metadata == expected.metadata  # metadata first, then the rest
    assert lazy.created_at.tzinfo is expected.created_at.tzinfo
    assert asdict(lazy) == asdict(expected)


@given(st.lists(rows, max_size=5))
def test_stored_memories_keeps_order(batch: list[tuple[Any, ...]]) -> None:
    assert stored_memories(batch) == [reference(r) for r in batch]


@given(micros)
def test_from_micros_equals_the_calendar_conversion(value: int) -> None:
    seconds, rest = divmod(value, 1_000_000)
    assert from_micros(value) == datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)
    assert from_micros(value) == EPOCH + timedelta(microseconds=value)


def sample_row(**changes: Any) -> tuple[Any, ...]:
    values = dict.fromkeys(STORED_COLUMNS)
    values.update(
        key=7,
        id="0190a0b0-1234-7abc-8def-0123456789ab",
        tenant="default",
        project="web",
        kind="fact",
        content="Deploys happen on Fridays",
        tags='["ops"]',
        metadata='{"n": [1, 2]}',
        importance=0.5,
        content_hash="ab",
        version=1,
        created_at=1_700_000_000_000_000,
        updated_at=1_700_000_000_000_000,
        access_count=0,
    )
    values.update(changes)
    return tuple(values[c] for c in STORED_COLUMNS)


def test_metadata_is_one_dict_per_memory() -> None:
    a, b = stored_memories([sample_row(), sample_row()])
    assert a.metadata is a.metadata
    a.metadata["n"].append(3)
    assert b.metadata == {"n": [1, 2]}  # memories never share mutable values


def test_copies_pickles_and_replacements_are_whole() -> None:
    m = stored_memory(sample_row())
    assert pickle.loads(pickle.dumps(stored_memory(sample_row()))) == m
    assert copy.deepcopy(stored_memory(sample_row())) == m
    assert copy.copy(stored_memory(sample_row())) == m
    assert replace(stored_memory(sample_row()), version=2) == m.with_changes(version=2)
    assert stored_memory(sample_row()) != stored_memory(sample_row(version=2))


def test_unknown_attributes_still_raise() -> None:
    m = stored_memory(sample_row())
    with pytest.raises(AttributeError):
        m.nope  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(m, "__deepcopy_hook__")
    with pytest.raises(AttributeError):
        m.content = "x"  # type: ignore[misc]


def read_together(m: Memory, threads: int) -> list[tuple[object, object]]:
    seen: list[tuple[object, object]] = []
    barrier = threading.Barrier(threads)

    def read() -> None:
        barrier.wait()
        seen.append((m.metadata, m.scope))

    running = [threading.Thread(target=read) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return seen


def test_threads_building_one_memory_agree() -> None:
    for _ in range(50):
        seen = read_together(stored_memory(sample_row()), 4)
        assert len(seen) == 4
        assert all(meta is seen[0][0] and scope == seen[0][1] for meta, scope in seen)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
LONE = "\udcff"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- cursors -------------------------------------------------------------------------------


@given(st.integers(INT64_MIN, INT64_MAX), st.integers(INT64_MIN, INT64_MAX))
def test_cursor_round_trip_over_64_bits(created: int, seq: int) -> None:
    assert decode_cursor(encode_cursor(created, seq)) == (created, seq)


@pytest.mark.parametrize(
    "cursor",
    [
        b64(b"[" * 100_000),
        b64(b"[1" + b"0" * 5000 + b", 1]"),
        b64(json.dumps([INT64_MAX + 1, 1]).encode()),
        b64(json.dumps([1, INT64_MIN - 1]).encode()),
        b64(b"[true, true]"),
        b64(b"[1.0, 2]"),
        b64(b"[1, 2, 3]"),
        b64(b"[NaN, 1]"),
        b64(b'{"a": 1}'),
        b64(b"\xff\xfe"),
        LONE,
        "ü",
        "A" * 10_000,
        5,
        None,
    ],
)
def test_malformed_cursors(cursor: Any) -> None:
    with pytest.raises(ValidationError, match="malformed cursor"):
        decode_cursor(cursor)


def test_sealed_rows_are_opened_and_plain_rows_left_alone() -> None:
    import hashlib

    calls: list[tuple[str, str, int, bytes, bytes]] = []

    def opener(
        tenant: str, memory_id: str, version: int, content: bytes, metadata: bytes
    ) -> tuple[str, str, str]:
        calls.append((tenant, memory_id, version, content, metadata))
        text = "the opened text"
        return text, '{"k": 1}', hashlib.sha256(text.encode()).hexdigest()

    plain = [sample_row(), sample_row(key=8)]
    assert opened(plain, opener) is plain and not calls  # nothing sealed: the same rows
    sealed = sample_row(key=9, content=b"\x01sealed-content", metadata=b"\x01sealed-meta")
    out = opened([plain[0], sealed], opener)
    assert out[0] is plain[0]
    version = sealed[STORED_COLUMNS.index("version")]
    assert calls == [("default", sealed[1], version, b"\x01sealed-content", b"\x01sealed-meta")]
    memory = stored_memories([tuple(out[1])])[0]
    assert memory.content == "the opened text"
    assert memory.metadata == {"k": 1}
    assert memory.content_hash == hashlib.sha256(b"the opened text").hexdigest()

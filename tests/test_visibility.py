"""What each read returns, for a memory in each state: one table, on a real store.

The table is the rule of docs/storage.md ("What a read sees"): every read of a store
holding one memory of each state is checked against it, row by row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex import Memex
from memex.errors import ImportFormatError, NotFoundError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BEFORE = T0 + timedelta(hours=12)  # everything from T0 valid, nothing superseded or expired
AFTER = T0 + timedelta(days=2)  # superseded at T0+1d; expired at T0+1d (or T0+3d)

# A probe word per state: the memory's content, what recall and context look for.
PROBES = {
    "live": "aardvark",
    "forgotten": "bison",
    "expired": "caribou",
    "expired_recorded": "dingo",
    "superseded": "eland",
    "superseded_expired": "ferret",
    "pending": "gazelle",
}

READS = (
    "get", "list", "list_superseded", "list_deleted", "range", "recall_now",
    "recall_before", "recall_after", "context", "export", "history", "state", "stats",
)  # fmt: skip
T, F = True, False
# state: what each read of READS returns for it (True: the memory is in the answer).
RULE: dict[str, tuple[object, ...]] = {
    "live":               (T, T, T, T, T, T, T, T, T, T, T, "current", "memories"),
    "forgotten":          (F, F, F, T, F, F, F, F, F, F, T, "forgotten", "deleted"),
    "expired":            (F, F, F, T, F, F, T, F, F, T, T, "expired", "expired"),
    "expired_recorded":   (F, F, F, T, F, F, T, F, F, T, T, "expired", "expired"),
    "superseded":         (T, F, T, F, F, F, T, F, F, T, T, "superseded", "superseded"),
    "superseded_expired": (F, F, F, F, F, F, T, F, F, T, T, "expired", "expired"),
    "pending":            (T, F, T, F, F, F, F, F, F, T, T, "pending", "memories"),
}  # fmt: skip


def _content(state: str) -> str:
    return f"the {PROBES[state]} memory is {state.replace('_', ' ')}"


def populate(mx: Memex, kind: Callable[[str], str] = lambda _: "fact") -> dict[str, str]:
    """One memory in each state (plus the two memories that supersede); state -> id."""
    one_day = timedelta(days=1)

    def add(state: str, **fields: object) -> str:
        return mx.remember(_content(state), kind=kind(state), **fields).id  # type: ignore[arg-type]

    ids = {"expired_recorded": add("expired_recorded", created_at=T0, expires_at=T0 + one_day)}
    assert mx.expire() == 1
    ids["live"] = add("live", created_at=T0)
    ids["forgotten"] = add("forgotten", created_at=T0)
    mx.forget(ids["forgotten"])
    ids["expired"] = add("expired", created_at=T0, expires_at=T0 + one_day)
    for state in ("superseded", "superseded_expired"):
        ids[state] = add(state, created_at=T0)
        mx.supersede(
            ids[state],
            f"a replacement of the {state.replace('_', ' ')} one",
            kind="replacement",
            created_at=T0 + one_day,
            valid_from=T0 + one_day,
        )
    # A superseded memory is still found by id, so its expiry can still be set.
    mx.update(ids["superseded_expired"], expires_at=T0 + 3 * one_day)
    ids["pending"] = add("pending", valid_from=datetime.now(UTC) + one_day)
    return ids


def answers(mx: Memex, ids: dict[str, str]) -> dict[str, dict[str, object]]:
    """For each state, what each read of READS returns for its memory."""

    def found(state: str) -> bool:
        try:
            return mx.get(ids[state]).id == ids[state]
        except NotFoundError:
            return False

    def recall(state: str, **kw: object) -> bool:
        hits = mx.recall(PROBES[state], k=50, mode="lexical", **kw)  # type: ignore[arg-type]
        return ids[state] in {h.memory.id for h in hits}

    listed = {m.id for m in mx.list(limit=100).items}
    with_superseded = {m.id for m in mx.list(limit=100, include_superseded=True).items}
    with_deleted = {m.id for m in mx.list(limit=100, include_deleted=True).items}
    ranged = {m.id for m in mx.range(T0 - timedelta(days=1), None)}
    # Stable sections read with list, the query's section with recall.
    context = mx.context(" ".join(PROBES.values()), budget_tokens=20_000).text
    exported = {m.id for m in mx.iter_all()}
    out: dict[str, dict[str, object]] = {}
    for state, memory_id in ids.items():
        latest = mx.history(memory_id)[-1]
        out[state] = {
            "get": found(state),
            "list": memory_id in listed,
            "list_superseded": memory_id in with_superseded,
            "list_deleted": memory_id in with_deleted,
            "range": memory_id in ranged,
            "recall_now": recall(state),
            "recall_before": recall(state, as_of=BEFORE),
            "recall_after": recall(state, as_of=AFTER),
            "context": PROBES[state] in context,
            "export": memory_id in exported,
            "history": latest.id == memory_id,
            "state": latest.state(),
        }
    return out


@pytest.fixture
def populated(mx: Memex) -> tuple[Memex, dict[str, str]]:
    return mx, populate(mx)


def test_every_read_follows_the_rule(populated: tuple[Memex, dict[str, str]]) -> None:
    mx, ids = populated
    got = answers(mx, ids)
    for state, row in RULE.items():
        expected = dict(zip(READS[:-1], row[:-1], strict=True))
        assert got[state] == expected, state


def test_stats_partition_the_memories_as_the_rule_says(mx: Memex) -> None:
    ids = populate(mx, kind=lambda state: state.replace("_", "-"))
    stats = mx.stats()
    counts = {"memories": 2, "deleted": 0, "superseded": 0, "expired": 0}  # two replacements
    kinds = {"replacement": 2}
    for state in ids:
        bucket = str(RULE[state][-1])
        counts[bucket] += 1
        if bucket == "memories":
            kinds[state.replace("_", "-")] = 1
    assert (stats.memories, stats.deleted, stats.superseded, stats.expired) == (
        counts["memories"],
        counts["deleted"],
        counts["superseded"],
        counts["expired"],
    )
    # The superseded-and-expired memory is counted once, as expired.
    assert counts == {"memories": 4, "deleted": 1, "superseded": 1, "expired": 3}
    assert stats.by_kind == dict(sorted(kinds.items()))
    assert sum(stats.by_kind.values()) == stats.memories
    # Export writes every memory but the forgotten one; with include_deleted, all of them.
    assert len(list(mx.iter_all())) == stats.memories + stats.superseded + stats.expired
    assert len(list(mx.iter_all(include_deleted=True))) == len(ids) + 2


def test_expire_changes_no_answer(mx: Memex) -> None:
    brief = mx.remember("the okapi is brief", created_at=T0, expires_at=T0 + timedelta(days=1))

    def seen() -> tuple[bool, bool, int, int]:
        then = mx.recall("okapi", mode="lexical", as_of=BEFORE)
        now = mx.recall("okapi", mode="lexical")
        stats = mx.stats()
        return [h.memory.id for h in then] == [brief.id], bool(now), stats.expired, stats.memories

    before = seen()
    assert before == (True, False, 1, 0)
    assert mx.expire() == 1
    assert seen() == before
    assert mx.history(brief.id)[-1].deleted_at is not None


def test_writes_to_an_expired_memory_are_not_found(mx: Memex) -> None:
    gone = mx.remember("the quagga has expired", created_at=T0, expires_at=T0 + timedelta(days=1))
    for write in (
        lambda: mx.update(gone.id, content="revived"),
        lambda: mx.update(gone.id, expires_at=None),
        lambda: mx.forget(gone.id),
        lambda: mx.supersede(gone.id, "a newer quagga"),
        lambda: mx.remember("another quagga", supersedes=gone.id),
    ):
        with pytest.raises(NotFoundError):
            write()
    assert [v.version for v in mx.history(gone.id)] == [1]  # nothing was written
    mx.purge(gone.id)  # purge removes a memory in any state
    with pytest.raises(NotFoundError):
        mx.history(gone.id)


def test_a_recorded_expiry_survives_export_and_import(mx: Memex, tmp_path: Path) -> None:
    brief = mx.remember("the tapir expired", created_at=T0, expires_at=T0 + timedelta(days=1))
    later = datetime.now(UTC) + timedelta(days=9)
    gone = mx.remember("the urial was forgotten", created_at=T0, expires_at=later)
    mx.forget(gone.id)
    mx.expire()
    lines = [json.dumps(m.to_dict()) for m in mx.iter_all(include_deleted=True)]
    copy = mx.scoped(tenant="copy")
    copy.import_lines(lines)
    assert copy.stats().expired == 1 and copy.stats().deleted == 1
    for memory_id in (brief.id, gone.id):
        with pytest.raises(NotFoundError):
            copy.get(memory_id)
    then = {h.memory.id for h in copy.recall("tapir urial", mode="lexical", as_of=BEFORE)}
    assert then == {brief.id}  # the expiry is an expiry, the forget is a forget


def test_a_deletion_dated_ahead_is_refused_on_import(mx: Memex) -> None:
    ahead = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    record = {"content": "from the future", "deleted_at": ahead, "expires_at": ahead}
    with pytest.raises(ImportFormatError, match="line 2: deleted_at must not be in the future"):
        mx.import_lines(["", json.dumps(record)])
    assert mx.stats().memories == 0


@pytest.mark.parametrize(
    "given",
    [
        datetime(2024, 5, 1, 10, 0),  # naive: UTC
        "2024-05-01T10:00:00",  # no offset: UTC
        "2024-05-01T10:00:00Z",
        "2024-05-01T12:00:00+02:00",
        datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp(),  # Unix seconds
    ],
)
def test_a_time_without_a_zone_is_utc_and_every_time_returned_is_utc(
    mx: Memex, given: object
) -> None:
    m = mx.remember("the xerus basks", created_at=given, expires_at="2999-01-01")  # type: ignore[arg-type]
    utc = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert m.created_at == utc and m.created_at.utcoffset() == timedelta(0)
    assert m.to_dict()["created_at"] == "2024-05-01T10:00:00+00:00"
    read = [mx.get(m.id), *mx.list().items, *mx.history(m.id)]
    read += [h.memory for h in mx.recall("xerus", mode="lexical")]
    for memory in read:
        record = memory.to_dict()
        for name in ("created_at", "updated_at", "valid_from", "expires_at"):
            assert str(record[name]).endswith("+00:00"), (name, record[name])
    assert record["created_at"] == "2024-05-01T10:00:00+00:00"
    # Filters read times the same way.
    assert [x.id for x in mx.list(since="2024-05-01T10:00:00").items] == [m.id]
    assert mx.list(since="2024-05-01T10:00:01").items == []
    assert [x.id for x in mx.range(datetime(2024, 5, 1, 10), "2024-05-01T10:00:01")] == [m.id]
    assert mx.recall("xerus", mode="lexical", as_of=datetime(2024, 5, 1, 9, 59)) == []
    assert len(mx.recall("xerus", mode="lexical", as_of="2024-05-01T10:00:00")) == 1
    # So does the pure rule.
    assert not m.is_current(datetime(2024, 5, 1, 9, 59)) and m.is_current(datetime(2024, 5, 2))


@pytest.mark.parametrize("indexed", [False, True])
def test_recall_drops_a_memory_once_its_time_comes_without_any_write(
    tmp_path: Path, indexed: bool
) -> None:
    """What recall keeps in memory about visibility is judged at the time of each recall:
    a memory expires, and another becomes valid, with no write in between."""
    from memex import Settings

    settings = Settings(lexical_index_min=1, ann_min_vectors=64) if indexed else Settings()
    with Memex.open(tmp_path / "timed.db", settings=settings) as mx:
        for i in range(80):
            mx.remember(f"filler note number {i} about the harbour")
        soon = datetime.now(UTC) + timedelta(seconds=2)
        leaving = mx.remember("the okapi leaves soon", expires_at=soon).id
        arriving = mx.remember("the okapi arrives soon", valid_from=soon).id

        def found() -> set[str]:
            return {h.memory.id for h in mx.recall("okapi", k=5)}

        assert leaving in found() and arriving not in found()
        while datetime.now(UTC) <= soon:
            time.sleep(0.1)
        assert leaving not in found() and arriving in found()

"""Token buckets, the hourly call quota and tenants' quotas, as pure decisions: tables."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memex.core.limits import (
    DEFAULT_QUOTAS,
    UNLIMITED,
    Bucket,
    Limit,
    QuotaReport,
    Rate,
    Taken,
    Verdict,
    admit,
    changed_quotas,
    crossed_soft,
    hour_window,
    judge,
    parse_rate,
    rate_fields,
    take,
    warning_text,
)
from memex.errors import ValidationError

SLOW = Rate(1.0, 3)  # one token a second, three at most


@pytest.mark.parametrize(
    ("bucket", "now", "allowed", "tokens_after", "remaining", "reset", "retry"),
    [
        (None, 0.0, True, 2.0, 2, 1.0, 0.0),  # a new bucket is full
        (Bucket(1.0, 0.0), 0.0, True, 0.0, 0, 3.0, 0.0),  # the last token
        (Bucket(0.0, 0.0), 0.0, False, 0.0, 0, 3.0, 1.0),  # empty: wait a second
        (Bucket(0.0, 0.0), 0.5, False, 0.5, 0, 2.5, 0.5),  # half a token: half a second
        (Bucket(0.0, 0.0), 1.0, True, 0.0, 0, 3.0, 0.0),  # refilled one
        (Bucket(0.0, 0.0), 100.0, True, 2.0, 2, 1.0, 0.0),  # never past the burst
        (Bucket(2.0, 10.0), 5.0, True, 1.0, 1, 2.0, 0.0),  # a clock that stepped back
    ],
)
def test_one_bucket(
    bucket: Bucket | None,
    now: float,
    allowed: bool,
    tokens_after: float,
    remaining: int,
    reset: float,
    retry: float,
) -> None:
    [state], taken = take([bucket], [SLOW], now)
    assert taken == Taken(allowed, 3, remaining, reset, retry)
    assert state == Bucket(tokens_after, now)


@pytest.mark.parametrize(
    ("key_tokens", "tenant_tokens", "allowed", "key_after", "tenant_after", "limit"),
    [
        (5.0, 50.0, True, 4.0, 49.0, 10),  # both have room: the key's is tighter
        (0.0, 50.0, False, 0.0, 50.0, 10),  # the key is empty: nothing taken from either
        (5.0, 0.0, False, 5.0, 0.0, 100),  # the tenant is empty: nothing taken from the key
        (10.0, 5.0, True, 9.0, 4.0, 100),  # the tenant's share is lower: its fields shown
    ],
)
def test_key_and_tenant_buckets_are_taken_from_together(
    key_tokens: float,
    tenant_tokens: float,
    allowed: bool,
    key_after: float,
    tenant_after: float,
    limit: int,
) -> None:
    rates = [Rate(1.0, 10), Rate(1.0, 100)]
    states, taken = take([Bucket(key_tokens, 0.0), Bucket(tenant_tokens, 0.0)], rates, 0.0)
    assert [s.tokens for s in states] == [key_after, tenant_after]
    assert taken.allowed is allowed and taken.limit == limit


@pytest.mark.parametrize(
    ("calls", "limit", "tokens", "allowed", "calls_after", "calls_refused", "tokens_after"),
    [
        (0, 1000, 3.0, True, 1, False, 2.0),
        (999, 1000, 3.0, True, 1000, False, 2.0),
        (1000, 1000, 3.0, False, 1000, True, 3.0),  # over the quota: no token taken
        (5, None, 3.0, True, 6, False, 2.0),  # no call quota
        (5, 1000, 0.0, False, 5, False, 0.0),  # rate limited: not counted as a call
    ],
)
def test_admission_with_the_hourly_call_quota(
    calls: int,
    limit: int | None,
    tokens: float,
    allowed: bool,
    calls_after: int,
    calls_refused: bool,
    tokens_after: float,
) -> None:
    [state], found = admit([Bucket(tokens, 7200.0)], [SLOW], calls, limit, 7200.0)
    assert found.allowed is allowed
    assert (found.calls, found.calls_refused) == (calls_after, calls_refused)
    assert state.tokens == tokens_after
    assert found.next_hour == 3600.0


def test_admission_without_rate_limits_counts_calls_only() -> None:
    states, found = admit([], [], 3, 10, 100.0)
    assert states == [] and found.taken is None and found.allowed and found.calls == 4


@pytest.mark.parametrize(
    ("now", "window", "left"), [(0.0, 0, 3600.0), (3599.5, 0, 0.5), (7200.0, 2, 3600.0)]
)
def test_hour_window(now: float, window: int, left: float) -> None:
    assert hour_window(now) == (window, left)


@pytest.mark.parametrize(
    ("taken", "headers"),
    [
        (
            Taken(True, 100, 42, 57.2, 0.0),
            {b"ratelimit-limit": b"100", b"ratelimit-remaining": b"42", b"ratelimit-reset": b"58"},
        ),
        (
            Taken(False, 10, 0, 10.0, 0.2),
            {
                b"ratelimit-limit": b"10",
                b"ratelimit-remaining": b"0",
                b"ratelimit-reset": b"10",
                b"retry-after": b"1",  # whole seconds, at least one
            },
        ),
    ],
)
def test_rate_fields(taken: Taken, headers: dict[bytes, bytes]) -> None:
    fields = rate_fields(taken)
    assert dict(fields) == headers
    assert len(fields) == len(headers)  # each field once


@pytest.mark.parametrize(
    ("text", "per_second"), [("20/s", 20.0), ("600/m", 10.0), ("36/h", 0.01), (" 1.5 / s ", 1.5)]
)
def test_parse_rate(text: str, per_second: float) -> None:
    assert parse_rate(text, "--key-rate") == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "20", "0/s", "-1/s", "20/d", "x/s"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ValidationError, match="--key-rate"):
        parse_rate(text, "--key-rate")


@pytest.mark.parametrize(
    ("limit", "used", "adding", "unit", "verdict"),
    [
        (Limit(10, 8), 0, 1, 1, Verdict.OK),
        (Limit(10, 8), 7, 1, 1, Verdict.WARN),  # reaches the soft limit
        (Limit(10, 8), 9, 1, 1, Verdict.WARN),  # reaches the hard one: allowed
        (Limit(10, 8), 10, 1, 1, Verdict.REFUSE),
        (Limit(10, 8), 5, 6, 1, Verdict.REFUSE),  # a batch that would cross it, whole
        (Limit(10, 8), 12, 0, 1, Verdict.WARN),  # over already (set lower): warns
        (Limit(None, None), 10**9, 10**9, 1, Verdict.OK),
        (Limit(None, 5), 4, 1, 1, Verdict.WARN),
        (Limit(0, 0), 0, 1, 1, Verdict.REFUSE),
        (Limit(2, 1), 1_500_000, 600_000, 1_000_000, Verdict.REFUSE),  # megabytes
        (Limit(2, 1), 500_000, 400_000, 1_000_000, Verdict.OK),
    ],
)
def test_judge(limit: Limit, used: int, adding: int, unit: int, verdict: Verdict) -> None:
    assert judge(limit, used, adding, unit) is verdict


@pytest.mark.parametrize(
    ("before", "after", "crossed"), [(7, 8, True), (8, 9, False), (0, 20, True), (3, 4, False)]
)
def test_a_soft_limit_is_crossed_once(before: int, after: int, crossed: bool) -> None:
    assert crossed_soft(Limit(10, 8), before, after) is crossed


@pytest.mark.parametrize(
    ("changes", "memories", "users"),
    [
        ({}, Limit(10_000, 8_000), Limit(5, 4)),
        ({"memories": 20_000, "memories_soft": 15_000}, Limit(20_000, 15_000), Limit(5, 4)),
        ({"memories": 100}, Limit(100, 100), Limit(5, 4)),  # the soft limit follows down
        ({"memories": 20_000}, Limit(20_000, 8_000), Limit(5, 4)),  # not up
        ({"users": None, "users_soft": None}, Limit(10_000, 8_000), Limit(None, None)),
    ],
)
def test_changed_quotas(changes: dict[str, int | None], memories: Limit, users: Limit) -> None:
    found = changed_quotas(DEFAULT_QUOTAS, changes)
    assert (found.memories, found.users) == (memories, users)
    assert found.projects == DEFAULT_QUOTAS.projects


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"memories": 10, "memories_soft": 20}, "soft limit"),
        ({"memories": -1}, "whole number"),
        ({"tokens": 5}, "no quota 'tokens'"),
        ({"users": True}, "whole number"),
    ],
)
def test_changed_quotas_refuses(changes: dict[str, int | None], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        changed_quotas(DEFAULT_QUOTAS, changes)


def test_warning_text_and_report_round_trip() -> None:
    assert warning_text("memories", 8123, Limit(10_000, 8_000)) == "memories 8123/10000"
    assert warning_text("storage_mb", 812_300_001, Limit(1_000, 800)) == "storage_mb 813/1000"
    report = QuotaReport("acme", UNLIMITED, {"memories": 3, "calls_per_hour": None}, True)
    assert QuotaReport.from_dict(report.to_dict()).to_dict() == report.to_dict()


_limits = st.tuples(st.integers(0, 4), st.integers(0, 4)).map(
    lambda pair: Limit(max(pair), min(pair))  # a soft limit at most the hard one
) | st.builds(Limit, st.none(), st.one_of(st.none(), st.integers(0, 4)))
_bytes = st.sampled_from(
    sorted({max(0, mb * 1_000_000 + d) for mb in range(6) for d in (-1, 0, 1)})
)


@settings(max_examples=1000)  # cheap: enough to land on each soft line from both sides
@given(
    memories=_limits,
    storage=_limits,
    calls_limit=_limits,
    memories_used=st.integers(0, 6),  # small: often on a soft line, or either side of it
    bytes_used=_bytes,
    calls_used=st.integers(0, 6),
)
def test_the_quick_warning_check_agrees_with_judge(
    memories: Limit,
    storage: Limit,
    calls_limit: Limit,
    memories_used: int,
    bytes_used: int,
    calls_used: int,
) -> None:
    """``QuotaBook.warnings`` answers at once below every soft line: only when ``judge``
    would warn of none."""
    from memex.core.limits import UNITS, Quotas, Verdict, judge
    from memex.security.quotas import LimitEvents, QuotaBook, _Usage

    book = QuotaBook(None, lambda _: (0, 0), "home", LimitEvents())  # type: ignore[arg-type]
    quotas = Quotas(memories, storage, calls_limit, Limit(None, None), Limit(None, None))
    book._quotas["t"] = (quotas, False)
    book._usage["t"] = _Usage(memories_used, bytes_used, 0.0, calls_used, float("inf"))
    warned = [
        name
        for name, used, limit in (
            ("memories", memories_used, memories),
            ("storage_mb", bytes_used, storage),
            ("calls_per_hour", calls_used, calls_limit),
        )
        if judge(limit, used, 0, UNITS.get(name, 1)) is Verdict.WARN
    ]
    found = book.warnings("t")
    assert (found is None) == (not warned)
    if found is not None:
        assert [part.split()[0] for part in found.split(", ")] == warned

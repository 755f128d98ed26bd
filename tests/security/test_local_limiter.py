"""The in-process limiter decides as ``core.limits.admit`` does, request after request,
for callers that share buckets and call counts; and letting go of idle buckets keeps
the busy ones as they were."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memex.security.limits as limits_module
from memex.core.limits import HOUR, Admission, Bucket, Rate, admit
from memex.security.limits import LocalLimiter, Metered

KEY = Rate(2.0, 3)
TENANT = Rate(0.5, 5)
CALLERS = {  # name: (buckets, call count); keys of one tenant share its bucket and count
    "a": ([("k:a", KEY), ("t:x", TENANT)], "c:x"),
    "b": ([("k:b", KEY), ("t:x", TENANT)], "c:x"),
    "c": ([("t:y", TENANT)], "c:y"),
    "d": ([], "c:z"),  # calls only
    "e": ([("k:e", Rate(1.0, 1))], None),  # no call quota: nothing counted
}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


steps = st.lists(
    st.tuples(
        st.sampled_from(sorted(CALLERS)),
        # seconds the clock moves first: often none, sometimes back, sometimes hours
        st.one_of(
            st.just(0.0),
            st.floats(-2.0, 3.0),
            st.sampled_from([0.25, 0.5, 1.0, HOUR / 2, HOUR]),
        ),
        st.one_of(st.none(), st.integers(0, 6)),  # the hourly call quota
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(steps=steps, start=st.sampled_from([0.0, HOUR - 1.0, 10 * HOUR + 0.5]))
def test_it_decides_as_the_core_does(
    steps: list[tuple[str, float, int | None]], start: float
) -> None:
    clock = Clock(start)
    limiter = LocalLimiter(clock)
    callers = {name: Metered(*spec) for name, spec in CALLERS.items()}
    buckets: dict[str, Bucket | None] = {}
    counts: dict[str, tuple[int, int]] = {}  # name: (hour, calls)
    for name, moved, calls_limit in steps:
        clock.now += moved
        now = clock.now
        caller = callers[name]
        found = limiter.admit(caller, calls_limit)

        names = [bucket for bucket, _ in caller.buckets]
        hour = int(now // HOUR)
        made = 0
        if caller.calls is not None and counts.get(caller.calls, (None, 0))[0] == hour:
            made = counts[caller.calls][1]
        states, expected = admit(
            [buckets.get(n) for n in names],
            [rate for _, rate in caller.buckets],
            made,
            calls_limit if caller.calls is not None else None,
            now,
        )
        buckets.update(zip(names, states, strict=True))
        if caller.calls is not None:
            counts[caller.calls] = (hour, expected.calls)
        assert found == expected


def remaining(found: Admission) -> int:
    assert found.taken is not None
    return found.taken.remaining


def test_idle_buckets_are_let_go_and_busy_ones_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits_module, "_MAX_BUCKETS", 4)
    clock = Clock(0.0)
    limiter = LocalLimiter(clock)
    slow = Rate(1 / HOUR / 10, 3)  # nothing refills while the test runs
    busy = Metered([("k:busy", slow)], None)
    assert remaining(limiter.admit(busy, None)) == 2
    clock.now = 2 * HOUR  # the three below are used once, then left idle
    idle = [Metered([(f"k:{i}", slow)], None) for i in range(3)]
    for caller in idle:
        limiter.admit(caller, None)
    assert remaining(limiter.admit(busy, None)) == 1
    clock.now = 4 * HOUR + 1
    assert remaining(limiter.admit(busy, None)) == 0
    # A fifth bucket passes the limit: the three idle for over an hour are let go (a
    # caller that held one finds it full again); the busy one is kept as it was.
    fresh = Metered([("k:fresh", slow)], None)
    assert remaining(limiter.admit(fresh, None)) == 2
    assert sorted(limiter._levels) == ["k:busy", "k:fresh"]
    assert not limiter.admit(busy, None).allowed
    assert remaining(limiter.admit(idle[0], None)) == 2

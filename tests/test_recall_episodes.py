"""Episode lift in recall, on a real store: words spread over one conversation's turns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memex import Memex

DAY0 = datetime(2025, 3, 1, 18, 0, tzinfo=UTC)
FILLER = [
    "the weather was grey all week",
    "work has been busy with the quarterly report",
    "I started a new book about gardening",
    "the dog needs a walk before dinner",
    "we should plan a dinner with the neighbours",
    "my sister called about the holidays",
]


def fill(mx: Memex) -> None:
    """Ten evenings of small talk; on day 3 Melanie's camping plans, spread over turns."""
    items = []
    for day in range(10):
        start = DAY0 + timedelta(days=day)
        turns = [f"{FILLER[(day + i) % len(FILLER)]} (day {day})" for i in range(6)]
        if day == 3:
            turns[1] = "Melanie: guess what, the lake weekend is booked"
            turns[3] = "Caroline: will you go camping there?"
        if day == 7:
            turns[2] = "Melanie: a quiet evening at home"
        items += [
            {
                "content": text,
                "kind": "message",
                "scope": {"project": "chat"},
                "created_at": start + timedelta(minutes=2 * i),
            }
            for i, text in enumerate(turns)
        ]
    mx.remember_many(items)


def test_an_episode_holding_every_query_word_lifts_its_turns(tmp_path: Path) -> None:
    question = "Where did Melanie go camping?"
    path = tmp_path / "m.db"
    with Memex.open(path) as mx:
        fill(mx)
        hits = mx.recall(question, k=10, scope={"project": "chat"})
    with Memex.open(path, episode_minutes=0) as plain:
        before = plain.recall(question, k=10, scope={"project": "chat"})
    quiet = "Melanie: a quiet evening at home"
    top = [h.memory.content for h in hits]
    # day 3 holds both words between two turns: its whole evening comes before day 7's
    # turn, which matches "Melanie" better than any single turn of day 3 does
    assert top.index(quiet) == 6
    assert all("(day 3)" in t or t.startswith(("Melanie: guess", "Caroline:")) for t in top[:6])
    lift = {h.memory.content: h.explain["episode"] for h in hits}
    assert lift["Melanie: guess what, the lake weekend is booked"] == pytest.approx(0.3 + 0.5)
    assert lift["Caroline: will you go camping there?"] == pytest.approx(0.3 + 0.5)
    assert 0.5 / 2 < lift[quiet] < 0.3 + 0.5 / 2  # one word of two, a lower best score
    # without episodes, day 7's turn ranks above day 3's small talk
    assert all("episode" not in h.explain for h in before)
    plain_top = [h.memory.content for h in before]
    assert plain_top.index(quiet) == 2

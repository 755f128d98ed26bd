"""Episode scoring: word finding, the window, and the lift, against plain references."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memex.core.episodes import EpisodeWeights, lift_episodes, word_masks
from memex.core.ranking import Facts, Fused, _fused, with_extra
from memex.core.text import query_terms

MINUTE = 60_000_000
HOUR = 60 * MINUTE


def f(key: int, score: float) -> Fused:
    return _fused(key, score, None, None, 0.0, 0.0, 0.0)


def place(at: int, text: str = "", thread: str = "t") -> Facts:
    return Facts(thread, at, 0.0, text)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("We went camping", {"camping"}),
        ("CAMPING with Melanie!", {"camping", "melanie"}),
        ("Melanie's tent", {"melanie"}),  # the possessive is cut off, as in query_terms
        ("decamping, campings", set()),  # inside or at the start of a longer word: no
        ("melanie:camping", {"melanie", "camping"}),
        ("", set()),
        ("camping camping melanie", {"camping", "melanie"}),
        ("café camping", {"café", "camping"}),
        ("cafés", set()),
    ],
)
def test_word_masks_find_whole_words(text: str, found: set[str]) -> None:
    terms = ["melanie", "camping", "café"]
    mask = word_masks([text], terms)[0]
    assert {t for i, t in enumerate(terms) if mask >> i & 1} == found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["camp", "camping", "trip", "melanie", "x1"]), min_size=1),
    st.lists(
        st.sampled_from(["camp", "Camping", "trip's", "MELANIE", "x1", "decamp", "triple"])
        | st.sampled_from([" ", ", ", ".", "-", "_", "\n", "é"]),
        max_size=12,
    ),
)
def test_word_masks_agree_with_query_terms(terms: list[str], parts: list[str]) -> None:
    """A word is found exactly when query_terms would take it from the text."""
    text = "".join(parts)
    unique = list(dict.fromkeys(terms))
    mask = word_masks([text], terms)[0]
    words = set(query_terms(text, keep_stop_words=True))
    assert {t for i, t in enumerate(unique) if mask >> i & 1} == words & set(unique)


def test_episode_members_lift_each_other() -> None:
    """Three memories of one conversation hold the query's two words between them; a
    lone memory scoring as high as the best of them ends below it, above the others."""
    fused = [f(1, 1.0), f(2, 1.0), f(3, 0.4), f(4, 0.2)]
    placements = {
        1: place(0, "a lone camping memory", thread="other"),
        2: place(10 * HOUR, "we went camping"),
        3: place(10 * HOUR + MINUTE, "with melanie"),
        4: place(10 * HOUR + 2 * MINUTE, "nothing in common"),
    }
    out = lift_episodes(fused, placements, ["melanie", "camping"], EpisodeWeights())
    assert [x.key for x in out] == [2, 1, 3, 4]
    lifts = {x.key: x.episode for x in out}
    # 2, 3, 4 share an episode: best 1.0 (share 0.3), both words (share 0.5)
    assert lifts[2] == pytest.approx(0.8)
    assert lifts[3] == pytest.approx(0.8)
    assert lifts[4] == pytest.approx(0.8)
    # 1 is alone: its own score (0.3) and one word of two (0.25)
    assert lifts[1] == pytest.approx(0.3 + 0.25)
    for x in out:
        assert x.score == pytest.approx(next(y.score for y in fused if y.key == x.key) + x.episode)


def test_the_window_is_centred_on_each_memory_and_inclusive() -> None:
    weights = EpisodeWeights(window_us=HOUR, best=1.0, coverage=0.0)
    fused = [f(1, 1.0), f(2, 0.1), f(3, 0.1)]
    placements = {1: place(0), 2: place(HOUR), 3: place(2 * HOUR)}
    lifts = {x.key: x.episode for x in lift_episodes(fused, placements, [], weights)}
    # 2 is an hour from 1 (inside), 3 two hours from 1 (outside) but an hour from 2
    assert lifts == pytest.approx({1: 1.0, 2: 1.0, 3: 0.1})


def test_threads_do_not_mix_and_unplaced_candidates_keep_their_score() -> None:
    weights = EpisodeWeights(window_us=HOUR, best=1.0, coverage=0.0)
    fused = [f(1, 1.0), f(2, 0.5), f(3, 0.5)]
    placements = {1: place(0, thread="a"), 2: place(0, thread="b")}
    out = {x.key: x for x in lift_episodes(fused, placements, ["x"], weights)}
    assert out[2].episode == pytest.approx(0.5)  # its own score, not 1's
    assert out[3].episode == 0.0 and out[3].score == 0.5


def test_no_candidates_or_no_weights_change_nothing() -> None:
    assert lift_episodes([], {}, ["a"], EpisodeWeights()) == []
    fused = [f(2, 1.0), f(1, 0.5)]
    placements = {1: place(0, "a"), 2: place(0, "a")}
    off = EpisodeWeights(best=0.0, coverage=0.0)
    assert lift_episodes(fused, placements, ["a"], off) == fused


def test_with_extra_adds_to_the_score_and_to_its_part() -> None:
    base = _fused(7, 1.0, 1, 2, 0.5, 0.25, 0.0)
    lifted = with_extra(with_extra(base, neighbours=0.5), episode=0.25)
    assert lifted == Fused(7, 1.75, 1, 2, 0.5, 0.25, neighbours=0.5, episode=0.25)


def reference(
    fused: list[Fused], placements: dict[int, Facts], terms: list[str], w: EpisodeWeights
) -> dict[int, float]:
    """The lift of each candidate, computed pair by pair."""
    top = max(x.score for x in fused)
    best: dict[int, float] = {}
    cover: dict[int, int] = {}
    for x in fused:
        if x.key not in placements:
            continue
        px = placements[x.key]
        mates = [
            y
            for y in fused
            if y.key in placements
            and placements[y.key].thread == px.thread
            and abs(placements[y.key].created_us - px.created_us) <= w.window_us
        ]
        best[x.key] = max(y.score for y in mates)
        mask = 0
        for y in mates:
            mask |= word_masks([placements[y.key].text], terms)[0]
        cover[x.key] = mask.bit_count()
    top_cover = max(cover.values(), default=0)
    return {
        key: w.best * best[key] / top + (w.coverage * cover[key] / top_cover if top_cover else 0)
        for key in best
    }


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.01, 2.0),
            st.integers(0, 5 * HOUR),
            st.sampled_from(["a", "b"]),
            st.lists(st.sampled_from(["red", "green", "blue", "other"]), max_size=3),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_lift_matches_a_pairwise_reference(
    rows: list[tuple[float, int, str, list[str]]],
) -> None:
    fused = sorted(
        (f(i, s) for i, (s, _, _, _) in enumerate(rows)), key=lambda x: (-x.score, x.key)
    )
    placements = {
        i: Facts(thread, at, 0.0, " ".join(words))
        for i, (_, at, thread, words) in enumerate(rows)
        if i % 7 != 3  # a few candidates have no placement
    }
    terms = ["red", "green", "blue"]
    weights = EpisodeWeights(window_us=HOUR)
    out = lift_episodes(fused, placements, terms, weights)
    expected = reference(fused, placements, terms, weights)
    assert sorted(x.key for x in out) == sorted(x.key for x in fused)
    assert [(-x.score, x.key) for x in out] == sorted((-x.score, x.key) for x in out)
    for x in out:
        assert x.episode == pytest.approx(expected.get(x.key, 0.0))
        assert x.episode >= 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["camp", "trip", " ", "İ", "ß", "\n", "s", "'"])).map("".join),
        max_size=8,
    )
)
def test_word_masks_of_many_texts_are_those_of_each_alone(texts: list[str]) -> None:
    """Searching the texts as one string never lets a word run across two of them,
    even where lowercasing changes a text's length ("İ" becomes two characters)."""
    terms = ["camp", "trip", "camptrip", "s"]
    assert word_masks(texts, terms) == [word_masks([t], terms)[0] for t in texts]

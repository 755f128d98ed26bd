"""Episode scoring: memories written close together in one thread are read as one episode.

A conversation, a work session or an agent run is stored as many short memories, and a
question is often about the episode as a whole: it names a place in one turn and a
person in another, or asks about a day whose best-matching turn says little by itself.
Each candidate is lifted by what its episode offers: the best fused score in it, and
how many of the query's words its candidates hold between them. Pure functions only.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import or_

from memex.core.ranking import Facts, Fused, with_extra


@dataclass(frozen=True, slots=True)
class EpisodeWeights:
    """How much an episode lifts its members.

    ``window_us``: two memories of a thread written at most this far apart share an
    episode. ``best``: share of the best fused score (relative to the top candidate)
    within the episode. ``coverage``: share of the query words the episode's candidates
    hold between them (relative to the best-covered episode).
    """

    window_us: int = 3_600_000_000
    best: float = 0.3
    coverage: float = 0.5


def word_masks(texts: Sequence[str], terms: Sequence[str]) -> list[int]:
    """The query words each text holds, as one bit per word of ``terms``.

    A word counts where it stands whole in the text, case ignored: "camp" is found in
    "Camp!" and "camp's", not in "camping". The texts are searched as one lowercased
    string, a substring search per word with a look at the characters either side:
    several times cheaper than splitting every candidate's text into words.
    """
    masks = [0] * len(texts)
    words = list(dict.fromkeys(terms))
    if not texts or not words:
        return masks
    lowered = [t.lower() for t in texts]
    starts = []
    at = 0
    for low in lowered:
        starts.append(at)
        at += len(low) + 1
    joined = "\n".join(lowered)  # a line break is no letter: texts do not run together
    end = len(joined)
    for i, word in enumerate(words):
        bit, size = 1 << i, len(word)
        at = joined.find(word)
        while at >= 0:
            after = at + size
            if (at == 0 or not joined[at - 1].isalnum()) and (
                after == end or not joined[after].isalnum()
            ):
                n = bisect_right(starts, at) - 1
                masks[n] |= bit
                if n + 1 == len(starts):
                    break
                at = joined.find(word, starts[n + 1])  # the next text
            else:
                at = joined.find(word, at + 1)
    return masks


def lift_episodes(
    fused: Sequence[Fused],
    placements: Mapping[int, Facts],
    terms: Sequence[str],
    weights: EpisodeWeights,
) -> list[Fused]:
    """Add each candidate's episode lift to its score; return the list re-ranked.

    A candidate's episode is the candidates of its thread created within
    ``weights.window_us`` of it (a window, not a partition: it is centred on each
    candidate). Candidates without a placement (gone, or filtered out) keep their score.
    Ties break on the key, as in ``fuse``.
    """
    if not fused or (weights.best <= 0 and weights.coverage <= 0):
        return list(fused)
    score = {f.key: f.score for f in fused}
    placed = [(f.key, p) for f in fused if (p := placements.get(f.key)) is not None]
    masks = word_masks([p.text for _, p in placed], terms)
    threads: dict[Hashable, list[tuple[int, int, int]]] = {}
    for (key, place), mask in zip(placed, masks, strict=True):
        threads.setdefault(place.thread, []).append((place.created_us, key, mask))
    best: dict[int, float] = {}
    cover: dict[int, int] = {}
    for members in threads.values():
        members.sort()
        _window_reduce(members, score, weights.window_us, best, cover)
    top = max(score.values(), default=0.0)
    top_cover = max(cover.values(), default=0)
    out: list[Fused] = []
    for f in fused:
        if f.key not in best:
            out.append(f)
            continue
        extra = weights.best * best[f.key] / top if top > 0 else 0.0
        if top_cover:
            extra += weights.coverage * cover[f.key] / top_cover
        out.append(with_extra(f, episode=extra) if extra else f)
    out.sort(key=lambda f: (-f.score, f.key))
    return out


def _window_reduce(
    members: Sequence[tuple[int, int, int]],
    score: Mapping[int, float],
    window: int,
    best: dict[int, float],
    cover: dict[int, int],
) -> None:
    """For each member (time-sorted), the best score and the number of query words
    among the members within ``window`` of it.

    The window's ends only move forward; each window is then reduced by ``max`` and an
    OR over its slice, which for the few dozen candidates of a recall is cheaper than
    keeping running counts.
    """
    scores = [score[key] for _, key, _ in members]
    masks = [mask for _, _, mask in members]
    lo = hi = 0
    n = len(members)
    for at, key, _ in members:
        while hi < n and members[hi][0] - at <= window:
            hi += 1
        while at - members[lo][0] > window:
            lo += 1
        best[key] = max(scores[lo:hi])
        cover[key] = reduce(or_, masks[lo:hi], 0).bit_count()

"""Token counting: the piecewise count of the default tokenizer equals encoding whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memex.tokens import HeuristicCounter, HFTokenCounter, _max_token_chars, llama2_tokenizer_file

TOKENIZER = llama2_tokenizer_file()
pytestmark = pytest.mark.skipif(TOKENIZER is None, reason="wordllama's tokenizer file missing")

# Characters the piece boundaries care about (spaces, the word mark itself, line breaks,
# the start of an added token), beside ordinary and multi-byte ones.
PIECES = st.sampled_from(
    [" ", "  ", "\n", "\n\n", "\r\n", "\t", "\u2581", "<", "<s>", "</s>", "<unk>", "- [", "] ",
     "## ", "the", "Caroline", "LGBTQ", "é", "中文", "😀", "don't", "2023-05-01", "x"]
)  # fmt: skip
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=6)), max_size=30).map("".join)


def whole(counter: HFTokenCounter, text: str) -> int:
    """The count of the text encoded at once, as the tokenizer itself does it."""
    return len(counter._tokenizer.encode(text, add_special_tokens=False).ids)


@pytest.fixture(scope="module")
def counter() -> HFTokenCounter:
    assert TOKENIZER is not None
    made = HFTokenCounter(TOKENIZER, "llama2")
    assert made._lines is not None, "the default tokenizer should be counted piecewise"
    return made


@settings(max_examples=400, deadline=None)
@given(text=TEXTS)
def test_piecewise_count_equals_the_whole_encoding(counter: HFTokenCounter, text: str) -> None:
    assert counter.count(text) == whole(counter, text)
    assert counter.count(text) == whole(counter, text)  # and again, from the caches


def test_a_context_sized_text_counts_the_same(counter: HFTokenCounter) -> None:
    lines = [
        f"- [2023-05-{i % 28 + 1:02d}] Caroline said line {i}, 'don't' é😀\n" for i in range(300)
    ]
    text = "## Project facts\n" + "".join(lines) + "\n## Relevant memories\n" + "".join(lines[:40])
    assert counter.count(text) == whole(counter, text) > 3000
    assert counter.count_many([text, text[1:], ""]) == [
        whole(counter, text),
        whole(counter, text[1:]),
        0,
    ]


def test_a_tokenizer_that_can_merge_across_words_is_counted_whole(tmp_path: Path) -> None:
    """A file with a pre-tokenizer (or any other shape) is not counted piecewise."""
    assert TOKENIZER is not None
    config = json.loads(TOKENIZER.read_text(encoding="utf-8"))
    config["pre_tokenizer"] = {"type": "Whitespace"}
    changed = tmp_path / "tokenizer.json"
    changed.write_text(json.dumps(config), encoding="utf-8")
    other = HFTokenCounter(changed, "changed")
    assert other._lines is None
    text = "two words\nand a line"
    assert other.count(text) == whole(other, text)


def test_the_longest_token_bounds_the_count(counter: HFTokenCounter) -> None:
    assert TOKENIZER is not None
    vocab = json.loads(TOKENIZER.read_text(encoding="utf-8"))["model"]["vocab"]
    assert counter.max_token_chars == max(map(len, vocab)) == 16
    assert HeuristicCounter().max_token_chars == 4


LONG_WORDS = st.lists(
    st.sampled_from(["straightforward", "addEventListener", "/" * 40, "." * 33, "é" * 9, "x"]),
    max_size=20,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(TEXTS, LONG_WORDS))
def test_no_text_is_fewer_tokens_than_its_length_allows(counter: HFTokenCounter, text: str) -> None:
    """What lets a long memory go uncounted: ``n * max_token_chars`` characters or more
    never fit in fewer than ``n`` tokens."""
    for made in (counter, HeuristicCounter()):
        per_token = made.max_token_chars
        assert per_token is not None and made.count(text) * per_token >= len(text)


def changed(**edits: Any) -> dict[str, Any]:
    assert TOKENIZER is not None
    config: dict[str, Any] = json.loads(TOKENIZER.read_text(encoding="utf-8"))
    for path, value in edits.items():
        *parents, last = path.split("__")
        target = config
        for key in parents:
            target = target[key]
        target[last] = value
    return config


@pytest.mark.parametrize(
    ("edits", "bound"),
    [
        ({}, 16),
        ({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}, 16),
        ({"normalizer": None}, 16),
        ({"added_tokens": [{"content": "<|a very long added token|>"}]}, 27),
        # spaces dropped or merged away, and unknown runs fused into one token: no bound
        ({"pre_tokenizer": {"type": "Whitespace"}}, None),
        ({"normalizer": {"type": "NFKC"}}, None),
        ({"model__byte_fallback": False}, None),  # fuse_unk stays on
        ({"added_tokens": [{"content": "<s>", "rstrip": True}]}, None),
        ({"model__type": "WordPiece"}, None),
    ],
)
def test_the_bound_is_known_only_where_it_is_safe(edits: dict[str, Any], bound: int | None) -> None:
    assert _max_token_chars(changed(**edits)) == bound


def test_a_long_line_is_counted_but_not_kept(counter: HFTokenCounter) -> None:
    line = "- [2024-01-01] " + "word " * 2_000 + "x" * 5_000
    assert counter.count(line) == whole(counter, line)
    short = "- [2024-01-01] a short line"
    assert counter.count(line + "\n" + short) == whole(counter, line + "\n" + short)
    kept = counter._lines
    assert kept is not None and short in kept
    assert "\n" + line not in kept and line not in kept and "x" * 5_000 not in kept

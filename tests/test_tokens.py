"""Token counting: the piecewise count of the default tokenizer equals encoding whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memex.tokens import HFTokenCounter, llama2_tokenizer_file

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

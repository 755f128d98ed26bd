"""The pure input checks: text, limits, numbers, times, JSON, cursors and import lines."""

from __future__ import annotations

import base64
import enum
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from memex.core.build import ttl_delta
from memex.core.context import resolve_sections
from memex.core.models import Scope, parse_time, to_micros
from memex.core.ranking import FusionWeights, validate_weights
from memex.core.records import parse_lines
from memex.core.validate import (
    INT64_MAX,
    INT64_MIN,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_SOURCE_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    check_text,
    decode_text,
    parse_meta_value,
    validate_importance,
    validate_kind,
    validate_metadata,
    validate_metadata_filter,
    validate_positive,
    validate_source,
    validate_tags,
)
from memex.errors import ImportFormatError, ValidationError

LONE = "\udcff"  # how Python hands over a byte that was not UTF-8 (argv, file names)


def nested(depth: int, leaf: Any = 1) -> Any:
    """A value ``depth`` containers deep (alternating objects and arrays)."""
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- text --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "plain", "naïve café", "emoji 😀", "tab\tnewline\n"])
def test_valid_text_passes(text: str) -> None:
    assert check_text(text, "x") is text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LONE, "tags must be valid UTF-8 text"),
        ("ok" + "\ud800", "tags must be valid UTF-8 text"),
        ("\ud83d\ude00", "tags must be valid UTF-8 text"),  # a pair as two code points
        ("a\x00b", "tags must not contain NUL characters"),
    ],
)
def test_invalid_text_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_text(text, "tags")


def test_decode_text_is_strict() -> None:
    assert decode_text("héllo".encode(), "standard input") == "héllo"
    with pytest.raises(ValidationError, match=r"standard input is not valid UTF-8 \(byte 0xff"):
        decode_text(b"ok \xff", "standard input")
    with pytest.raises(ValidationError, match="not valid UTF-8"):
        decode_text("\udcff".encode("utf-8", "surrogateescape"), "standard input")


# -- tags, source, kind --------------------------------------------------------------------


def test_tag_limits_are_exact() -> None:
    most = [f"{i:02d}".ljust(MAX_TAG_CHARS, "x") for i in range(MAX_TAGS)]
    assert validate_tags(most) == tuple(most)
    assert validate_tags([*most, most[0], f" {most[1]} "]) == tuple(most)  # duplicates: one tag
    with pytest.raises(ValidationError, match=f"at most {MAX_TAGS} tags, not {MAX_TAGS + 1}"):
        validate_tags([*most, "one more"])
    with pytest.raises(ValidationError, match=f"1-{MAX_TAG_CHARS} characters"):
        validate_tags(["x" * (MAX_TAG_CHARS + 1)])


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ([LONE], "tags must be valid UTF-8"),
        (["a\x00b"], "NUL"),
        ([5], "a tag must be a string"),
        ([""], "1-64 characters"),
        (["a,b"], "commas"),
        ({"a": 1}, "list of strings"),
        ("abc", "list of strings"),
    ],
)
def test_bad_tags(tags: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_tags(tags)


def test_source_limits() -> None:
    assert validate_source(None) is None
    assert validate_source("") == ""
    assert validate_source("s" * MAX_SOURCE_CHARS) == "s" * MAX_SOURCE_CHARS
    for bad, message in [
        ("s" * (MAX_SOURCE_CHARS + 1), "at most 512 characters"),
        (5, "at most 512 characters"),
        (LONE, "source must be valid UTF-8"),
        ("a\x00", "source must not contain NUL"),
    ]:
        with pytest.raises(ValidationError, match=message):
            validate_source(bad)


@pytest.mark.parametrize(
    "call",
    [
        lambda: validate_kind("note\n"),
        lambda: Scope(project="web\n"),
        lambda: validate_metadata({"key\n": 1}),
    ],
)
def test_names_match_whole_not_before_a_final_newline(call: Any) -> None:
    with pytest.raises(ValidationError):
        call()


# -- metadata ------------------------------------------------------------------------------


def test_metadata_depth_limit() -> None:
    deepest = {"k": nested(MAX_METADATA_DEPTH - 1)}  # the object itself is the first level
    assert validate_metadata(deepest) == deepest
    with pytest.raises(ValidationError, match=f"nested more than {MAX_METADATA_DEPTH} levels"):
        validate_metadata({"k": nested(MAX_METADATA_DEPTH)})
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValidationError, match="nested more than"):
        validate_metadata({"k": looped})


def test_metadata_size_limit_counts_compact_utf8_json() -> None:
    room = MAX_METADATA_BYTES - len('{"k":""}')
    assert validate_metadata({"k": "x" * room})
    with pytest.raises(ValidationError, match=f"over the limit of {MAX_METADATA_BYTES}"):
        validate_metadata({"k": "x" * (room + 1)})
    wide = "é" * (room // 2)  # two bytes a character in UTF-8
    assert validate_metadata({"k": wide})
    with pytest.raises(ValidationError, match=f"{MAX_METADATA_BYTES + 2} bytes"):
        validate_metadata({"k": wide + "é"})


@pytest.mark.parametrize("value", [INT64_MAX, INT64_MIN, [INT64_MAX], {"a": [INT64_MIN]}])
def test_metadata_ints_within_64_bits_pass(value: Any) -> None:
    assert validate_metadata({"n": value}) == {"n": value}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (INT64_MAX + 1, "64 bits"),
        (INT64_MIN - 1, "64 bits"),
        ([1, [2, INT64_MAX + 1]], "64 bits"),
        ({"a": {"b": -(10**400)}}, "64 bits"),
        ([math.inf], "NaN or infinity"),
        ({"a": math.nan}, "NaN or infinity"),
        ({"a": LONE}, "metadata strings must be valid UTF-8"),
        ({LONE: 1}, "metadata keys must be valid UTF-8"),
        (["a\x00"], "NUL"),
        ({1: "x"}, "keys must be strings"),
        ({"a": {1, 2}}, "only JSON values"),
        (b"bytes", "only JSON values"),
    ],
)
def test_bad_metadata_values_at_any_depth(value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate_metadata({"k": value})


def test_metadata_subclasses_become_what_json_writes() -> None:
    class Level(enum.IntEnum):
        HIGH = 5

    class Loud(str):
        def __str__(self) -> str:
            return "not what JSON writes"

    metadata = {"a": Level.HIGH, "b": Loud("yes"), "c": {Loud("k"): (True, None)}}
    got = validate_metadata(metadata)
    assert got == json.loads(json.dumps(metadata))
    assert [type(v) for v in got.values()] == [int, str, dict]
    assert [type(k) for k in got["c"]] == [str]


def test_metadata_filter_values_are_64_bit_scalars() -> None:
    assert validate_metadata_filter({"n": INT64_MAX, "b": True}) == {"n": INT64_MAX, "b": True}
    with pytest.raises(ValidationError, match="64 bits"):
        validate_metadata_filter({"n": INT64_MAX + 1})
    with pytest.raises(ValidationError, match="valid UTF-8"):
        validate_metadata_filter({"s": LONE})
    with pytest.raises(ValidationError, match="scalar"):
        validate_metadata_filter({"l": [1]})


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("42", 42),
        ("-1.5", -1.5),
        ("true", True),
        ("null", None),
        ('"quoted"', "quoted"),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("plain words", "plain words"),
        ("", ""),
        ("NaN", "NaN"),  # not JSON: kept as the text
        ("[1, 2", "[1, 2"),
        (str(INT64_MAX), INT64_MAX),
    ],
)
def test_meta_value_is_json_when_it_parses(raw: str, value: Any) -> None:
    assert parse_meta_value(raw) == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[" * 100_000, "nested too deeply"),
        (json.dumps(nested(MAX_METADATA_DEPTH)), "nested more than"),
        ("1" + "0" * 5000, "too many digits"),
        (str(INT64_MAX + 1), "64 bits"),
        ("[1e999]", "NaN or infinity"),
        (LONE, "valid UTF-8"),
        ('"\\udcff"', "valid UTF-8"),
        ('"\\u0000"', "NUL"),
        ("x" * (MAX_METADATA_BYTES + 1), "over the limit"),
    ],
)
def test_meta_value_refuses_what_metadata_cannot_hold(raw: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_meta_value(raw)


def test_meta_value_leaves_room_for_its_key() -> None:
    within = json.dumps(nested(MAX_METADATA_DEPTH - 1))
    assert validate_metadata({"k": parse_meta_value(within)})


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [10**400, -(10**400), 2, -1, math.nan, math.inf, True, "0.5"])
def test_bad_importance(value: Any) -> None:
    with pytest.raises(ValidationError, match="importance must be"):
        validate_importance(value)


@pytest.mark.parametrize(
    "value", [10**400, math.inf, math.nan, True, 0, -1, "60", timedelta(days=365 * 101)]
)
def test_bad_ttl(value: Any) -> None:
    with pytest.raises(ValidationError, match="ttl must be"):
        ttl_delta(value)


def test_ttl_edges() -> None:
    assert ttl_delta(100 * 365 * 86_400) == timedelta(days=36_500)
    assert ttl_delta(0.5) == timedelta(seconds=0.5)


@pytest.mark.parametrize("value", [10**400, math.inf, math.nan, 0, -1, True, "5"])
def test_bad_positive_numbers(value: Any) -> None:
    with pytest.raises(ValidationError, match="time_limit_ms must be"):
        validate_positive(value, "time_limit_ms")


@pytest.mark.parametrize(
    "weights",
    [
        FusionWeights(vector_weight=math.nan),
        FusionWeights(vector_weight=2.0),
        FusionWeights(importance_weight=10**400),
        FusionWeights(recency_weight=math.inf),
        FusionWeights(recency_half_life_days=0),
        "weights",
    ],
)
def test_bad_fusion_weights(weights: Any) -> None:
    with pytest.raises(ValidationError):
        validate_weights(weights)


@pytest.mark.parametrize(
    ("sections", "shares", "message"),
    [
        (None, {"recall": 10**400}, "share of recall"),
        (None, {"recall": "half"}, "share of recall"),
        (None, {"recall": math.nan}, "share of recall"),
        (None, [("recall", 0.5)], "shares must map"),
        ([["recall"]], None, "unknown section"),
        (5, None, "list of section names"),
    ],
)
def test_bad_context_sections(sections: Any, shares: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        resolve_sections(sections, shares)


# -- times ---------------------------------------------------------------------------------

EAST, WEST = timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:00:00-05:00",
        "0001-01-01T00:30:00+01:00",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00",
        datetime(9999, 12, 31, 23, tzinfo=WEST),
        datetime(1, 1, 1, 0, 30, tzinfo=EAST),
        datetime(1, 1, 1),
        10**400,
        -(10**400),
        math.nan,
        math.inf,
    ],
)
def test_times_outside_the_years_are_validation_errors(value: Any) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        parse_time(value, "created_at")


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("9999-12-31T23:59:59.999999Z", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("9999-12-31T18:59:59-05:00", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("1970-01-01T01:00:00+01:00", datetime(1970, 1, 1, tzinfo=UTC)),
        (datetime(9999, 12, 31, 23, 59, 59), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_times_at_the_edges_pass_and_fit_the_store(value: Any, utc: datetime) -> None:
    parsed = parse_time(value)
    assert parsed == utc and parsed.tzinfo is UTC
    assert 0 <= to_micros(parsed) <= INT64_MAX


# -- import lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"content": "x", "metadata": ' + "[" * 100_000 + "}", "nested too deeply"),
        ('{"content": "x", "importance": 1' + "0" * 5000 + "}", "too many digits"),
        ('{"content": "x", "importance": NaN}', r"invalid JSON \(NaN is not a JSON number\)"),
        ('{"content": "x", "importance": -Infinity}', "invalid JSON"),
        (b'{"content": "\xff"}', "not valid UTF-8"),
        (5, "a line must be text"),
    ],
)
def test_lines_python_cannot_hold_are_import_errors_with_their_number(
    line: Any, message: str
) -> None:
    with pytest.raises(ImportFormatError, match=f"line 2: .*{message}") as info:
        list(parse_lines(['{"content": "fine"}', line]))
    assert info.value.line == 2


def test_lines_may_be_utf8_bytes() -> None:
    lines: list[str | bytes] = [b'{"content": "caf\xc3\xa9"}\n', b"\n", '{"content": "x"}']
    assert list(parse_lines(lines)) == [(1, {"content": "café"}), (3, {"content": "x"})]

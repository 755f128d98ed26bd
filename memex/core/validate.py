"""Input checks every edge of the API shares: limits, text, numbers and JSON values. Pure.

Every write path (``remember``, ``update``, ``supersede``, ``import``) and every read
argument goes through these functions, so what one path accepts the others accept too,
and whatever is stored can be exported and imported back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from memex.errors import ValidationError

KNOWN_KINDS: tuple[str, ...] = (
    "decision",
    "event",
    "fact",
    "message",
    "note",
    "pattern",
    "preference",
    "reference",
    "summary",
)
"""Kinds memex knows; any other lowercase name of the same form is accepted too."""

MAX_TAGS = 64
"""Tags one memory may carry (and one filter may ask for)."""
MAX_TAG_CHARS = 64
"""Characters in one tag."""
MAX_SOURCE_CHARS = 512
"""Characters in a memory's ``source``."""
MAX_METADATA_BYTES = 16 * 1024
"""Metadata as compact JSON (no spaces, UTF-8): at most 16 KiB."""
MAX_METADATA_DEPTH = 16
"""Levels of nesting in metadata, the metadata object itself being the first."""
MAX_SESSION_CHARS = 256
"""Characters in a context session name."""
MAX_TTL_SECONDS = 100 * 365 * 86_400
"""The longest time to live: 100 years."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The whole numbers metadata (and filters on it) may hold: SQLite's JSON functions, which
metadata filters use, turn anything larger into an inexact float."""

_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_TAG_RE = re.compile(rf"[^\s,][^,]{{0,{MAX_TAG_CHARS - 1}}}")
_META_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_SHOWN_CHARS = 60


def shown(value: object) -> str:
    """``repr(value)`` cut to a length an error message can carry on one line."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


# -- text ----------------------------------------------------------------------------------


def check_text(value: str, what: str) -> str:
    """Refuse a string SQLite cannot store faithfully: lone surrogates or NUL characters.

    Lone surrogates are how Python hands over bytes that were not UTF-8 (command-line
    arguments, file names); SQLite cannot encode them. SQLite's text functions (the tag
    index, ``json_extract``) stop at a NUL, so a string holding one would be stored whole
    but found by its first part only.
    """
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError(f"{what} must be valid UTF-8 text") from exc
    if "\x00" in value:
        raise ValidationError(f"{what} must not contain NUL characters")
    return value


def validate_text(value: object, what: str, max_chars: int | None = None) -> str:
    """A string that passes ``check_text``, of at most ``max_chars`` characters."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    if max_chars is not None and len(value) > max_chars:
        raise ValidationError(f"{what} must be at most {max_chars} characters, not {len(value)}")
    return check_text(value, what)


def decode_text(data: bytes, what: str) -> str:
    """Bytes (standard input, a file) as UTF-8 text; anything else is refused, not replaced."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{what} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


# -- numbers -------------------------------------------------------------------------------


def validate_count(value: int, what: str, low: int, high: int | None = None) -> int:
    """Check a whole number within [low, high] (no upper bound if ``high`` is None)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValidationError(f"{what} must be a whole number {bound}")
    return value


def validate_fraction(value: object, what: str) -> float:
    """A number from 0 to 1. Compared before any conversion, so a huge int cannot overflow."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{what} must be a number from 0 to 1, not {shown(value)}")
    if not 0 <= value <= 1:  # NaN fails too
        raise ValidationError(f"{what} must be from 0 to 1, not {shown(value)}")
    return float(value)


def validate_finite(value: object, what: str) -> float:
    """A finite number (an int too large for a float is refused, not overflowed)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{what} must be a number, not {shown(value)}")
    try:
        number = float(value)
    except OverflowError as exc:
        raise ValidationError(f"{what} must be a finite number, not {shown(value)}") from exc
    if not math.isfinite(number):
        raise ValidationError(f"{what} must be a finite number, not {shown(value)}")
    return number


def validate_positive(value: object, what: str) -> float:
    """A finite number above zero."""
    number = validate_finite(value, what)
    if not number > 0:
        raise ValidationError(f"{what} must be a positive number, not {shown(value)}")
    return number


def validate_importance(importance: float) -> float:
    """Check an importance: a number from 0 to 1."""
    return validate_fraction(importance, "importance")


# -- memory fields -------------------------------------------------------------------------


def validate_content(content: str, max_bytes: int) -> str:
    """Check content: a non-blank string no longer than ``max_bytes`` in UTF-8."""
    if not isinstance(content, str):
        raise ValidationError(f"content must be a string, not {type(content).__name__}")
    if not content.strip():
        raise ValidationError("content must not be empty")
    size = len(content.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise ValidationError(
            f"content is {size} bytes, over the limit of {max_bytes} "
            "(raise it with MEMEX_MAX_CONTENT_BYTES)"
        )
    return check_text(content, "content")


def validate_kind(kind: str) -> str:
    """Check a memory kind: a known kind or a lowercase name of up to 64 characters."""
    if not isinstance(kind, str) or not _NAME_RE.fullmatch(kind):
        examples = ", ".join(KNOWN_KINDS[:4])
        raise ValidationError(
            f"kind must be a lowercase name such as {examples}, not {shown(kind)}"
        )
    return kind


def validate_tags(tags: Sequence[str] | None) -> tuple[str, ...]:
    """Check and normalise tags: at most 64 strings of at most 64 characters without commas,
    stripped and deduplicated."""
    if tags is None:
        return ()
    if isinstance(tags, str) or not isinstance(tags, Sequence):
        raise ValidationError("tags must be a list of strings")
    seen: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str):
            raise ValidationError(f"a tag must be a string, not {shown(tag)}")
        text = check_text(tag, "tags").strip()
        if not _TAG_RE.fullmatch(text):
            raise ValidationError(
                f"a tag must be 1-{MAX_TAG_CHARS} characters without commas, not {shown(tag)}"
            )
        seen.setdefault(text, None)
    if len(seen) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags, not {len(seen)}")
    return tuple(seen)


def validate_source(source: object) -> str | None:
    """Check a source: None, or a string of at most 512 characters."""
    if source is None:
        return None
    if not isinstance(source, str) or len(source) > MAX_SOURCE_CHARS:
        raise ValidationError(f"source must be a string of at most {MAX_SOURCE_CHARS} characters")
    return check_text(source, "source")


# -- JSON values ---------------------------------------------------------------------------


def validate_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check metadata and return it as plain JSON values (what a JSON round trip gives).

    A JSON object whose top-level keys are simple names, at most 16 levels deep and
    16 KiB as compact JSON; whole numbers within 64 bits, no NaN or infinity, text as
    ``check_text`` wants it.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError("metadata must be a JSON object")
    for key in metadata:
        if not isinstance(key, str) or not _META_KEY_RE.fullmatch(key):
            raise ValidationError(
                f"metadata key must be a name of letters, digits and _.- , not {shown(key)}"
            )
    bound, result = _plain(metadata, "metadata", 1)
    _check_size(result, bound)
    return cast(dict[str, Any], result)


def validate_metadata_filter(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a metadata filter: simple keys, scalar values compared for equality."""
    result = validate_metadata(metadata)
    for key, value in result.items():
        if isinstance(value, dict | list):
            raise ValidationError(f"metadata filter {key!r} must be a scalar value")
    return result


def parse_meta_value(raw: str) -> Any:
    """A metadata value given as text (``--meta KEY=VALUE``): JSON when it parses, else the
    text itself; either way checked as a value inside metadata."""
    try:
        value = loads_json(raw)
    except json.JSONDecodeError:
        value = raw
    bound, result = _plain(value, "metadata value", 2)
    _check_size(result, bound)
    return result


class _NotJSON(json.JSONDecodeError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not a JSON number", name, 0)


def _no_constants(name: str) -> Any:
    raise _NotJSON(name)


_decoder = json.JSONDecoder(parse_constant=_no_constants)


def loads_json(text: str | bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity).

    Raises ``json.JSONDecodeError`` for text that is not JSON and ValidationError for
    JSON that Python cannot hold: nested too deeply for its parser, or a whole number
    with more digits than it converts.
    """
    if isinstance(text, bytes | bytearray):
        text = decode_text(bytes(text), "JSON")
    try:
        return _decoder.decode(text)
    except RecursionError as exc:
        raise ValidationError("JSON nested too deeply") from exc
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # int() refuses literals of more than 4300 digits
        raise ValidationError("a whole number in the JSON has too many digits") from exc


def check_int64(value: int, what: str) -> int:
    """A whole number that fits SQLite's 64-bit integers."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValidationError(
            f"{what} whole numbers must fit in 64 bits (-2**63 to 2**63-1), not {shown(value)}"
        )
    return value


def _plain(value: Any, what: str, depth: int) -> tuple[int, Any]:
    """Check one JSON value; return an upper bound of its compact JSON size in bytes and
    the value as plain dicts, lists, strings, numbers, booleans and None."""
    kind = type(value)
    if kind is str:
        if not value.isascii() or "\x00" in value:  # the common case skips check_text
            check_text(value, f"{what} strings")
        return 2 + 6 * len(value), value  # at most 6 bytes a character (\u001f)
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            check_int64(value, what)
        return 20, value
    if kind is float:
        if not math.isfinite(value):
            raise ValidationError(f"{what} must not hold NaN or infinity, which JSON lacks")
        return 24, value
    if value is None or kind is bool:
        return 5, value
    if isinstance(value, Mapping | list | tuple):
        if depth > MAX_METADATA_DEPTH:
            raise ValidationError(f"{what} is nested more than {MAX_METADATA_DEPTH} levels deep")
        size = 2
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValidationError(f"{what} keys must be strings, not {shown(key)}")
                if not key.isascii() or "\x00" in key:
                    check_text(key, f"{what} keys")
                item_size, out[str.__str__(key)] = _plain(item, what, depth + 1)
                size += 6 * len(key) + 4 + item_size
            return size, out
        items: list[Any] = []
        for item in value:
            item_size, plain = _plain(item, what, depth + 1)
            items.append(plain)
            size += item_size + 1
        return size, items
    # Subclasses (an IntEnum, a str subclass) become the plain value JSON writes for them:
    # the base type's own conversion, whatever the subclass overrides.
    for base, plain in _BASES:
        if isinstance(value, base):
            return _plain(plain(value), what, depth)
    raise ValidationError(
        f"{what} must hold only JSON values (objects, arrays, strings, numbers, booleans, "
        f"null), not {type(value).__name__}"
    )


_BASES: tuple[tuple[type, Any], ...] = (
    (str, str.__str__),
    (int, int.__int__),
    (float, float.__float__),
)


def _check_size(value: Any, bound: int) -> None:
    if bound <= MAX_METADATA_BYTES:
        return
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValidationError(
            f"metadata is {size} bytes as JSON, over the limit of {MAX_METADATA_BYTES}"
        )

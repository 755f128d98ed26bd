"""JSON Lines records: what ``import`` reads and ``export`` writes. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from memex.core.models import Memory
from memex.core.validate import decode_text, loads_json, shown
from memex.errors import ImportFormatError, ValidationError

# Fields a record may carry on import; the rest of an exported record (versions,
# access statistics, hashes) is derived again by the importing store.
IMPORT_FIELDS = frozenset(
    {
        "id",
        "content",
        "kind",
        "scope",
        "tags",
        "metadata",
        "importance",
        "created_at",
        "expires_at",
        "source",
        "valid_from",
        "valid_until",
        "superseded_by",
        "deleted_at",
    }
)
IGNORED_FIELDS = frozenset(
    {
        "updated_at",
        "last_accessed_at",
        "access_count",
        "content_hash",
        "version",
    }
)


def parse_lines(lines: Iterable[str | bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each non-blank line as (line number, record); a malformed line raises with its number.

    Lines may be text or UTF-8 bytes. JSON that Python cannot hold (nested past its
    parser's depth, whole numbers of thousands of digits) is a malformed line too.
    """
    if isinstance(lines, str | bytes) or not isinstance(lines, Iterable):
        raise ValidationError("an import takes an iterable of lines, not one string")
    for number, line in enumerate(lines, start=1):
        try:
            text = decode_text(line, "the record") if isinstance(line, bytes) else line
            if not isinstance(text, str):
                raise ValidationError(f"a line must be text, not {type(line).__name__}")
            text = text.strip()
            if not text:
                continue
            record = loads_json(text)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(number, f"invalid JSON ({exc.msg})") from exc
        except ValidationError as exc:
            raise with_line(number, exc) from exc
        if not isinstance(record, dict):
            raise ImportFormatError(number, "a record must be a JSON object")
        unknown = set(record) - IMPORT_FIELDS - IGNORED_FIELDS
        if unknown:
            raise ImportFormatError(number, f"unknown field {shown(min(unknown))}")
        if "content" not in record:
            raise ImportFormatError(number, "missing field 'content'")
        yield number, {k: v for k, v in record.items() if k in IMPORT_FIELDS}


def with_line(number: int, exc: ValidationError) -> ImportFormatError:
    """A validation error of one record, as an import error naming its line."""
    return ImportFormatError(number, str(exc))


def to_line(memory: Memory) -> str:
    """One memory as a JSON Lines record."""
    return json.dumps(memory.to_dict(), ensure_ascii=False, sort_keys=True)

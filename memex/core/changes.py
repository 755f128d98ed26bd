"""What changed between two versions of a memory: the fields that differ, each shown as
text, and a line diff of the content (what a memory inspector shows of its history)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memex.core.models import Memory, Scope

COMPARED = (
    "kind",
    "scope",
    "tags",
    "metadata",
    "importance",
    "source",
    "expires_at",
    "valid_from",
    "valid_until",
    "superseded_by",
    "deleted_at",
)
"""The fields compared besides the content, in the order they are shown. Bookkeeping
that every version changes (``version``, ``updated_at``, ``content_hash``) and read
statistics (which belong to the memory, not a version) are left out."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs between two versions, both values as text."""

    name: str
    before: str
    after: str


def shown(value: Any) -> str:
    """A field's value as text: times in ISO 8601, tags comma-separated, a scope and
    metadata as JSON, an absent value as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Scope):
        return json.dumps(value.as_dict(), ensure_ascii=False, sort_keys=True)
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def field_changes(before: Memory, after: Memory) -> list[FieldChange]:
    """The fields of ``COMPARED`` whose values differ from ``before`` to ``after``."""
    changes: list[FieldChange] = []
    for name in COMPARED:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes.append(FieldChange(name, shown(old), shown(new)))
    return changes


def content_diff(before: str, after: str, context: int = 2) -> list[str]:
    """A line diff of two contents: lines starting ``-`` (removed), ``+`` (added), `` ``
    (kept, around a change) and ``@@`` (where a hunk starts); empty when equal."""
    if before == after:
        return []
    lines = list(
        difflib.unified_diff(before.splitlines(), after.splitlines(), n=context, lineterm="")
    )
    return lines[2:]  # past the "---" and "+++" header lines


def version_changes(versions: Sequence[Memory]) -> list[tuple[list[FieldChange], list[str]]]:
    """For each version, oldest first, what changed from the one before it (nothing for
    the first): its field changes and its content diff."""
    out: list[tuple[list[FieldChange], list[str]]] = []
    previous: Memory | None = None
    for version in versions:
        if previous is None:
            out.append(([], []))
        else:
            out.append(
                (field_changes(previous, version), content_diff(previous.content, version.content))
            )
        previous = version
    return out

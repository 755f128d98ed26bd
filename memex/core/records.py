"""JSON Lines records: what ``import`` reads and ``export`` writes. Pure functions.

A record is a memory as ``Memory.to_dict`` gives it. An export made with history adds
``history``: the memory's past versions, oldest first, each a record without the fields
a past version shares with its memory (``id``, ``scope``) or never has (access
statistics). Importing such a record restores the memory with its version number, its
times, its access statistics and its past versions, so ``history`` reads the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from memex.core.build import REMEMBER_FIELDS, build_memory, opt_time
from memex.core.models import Memory, Scope
from memex.core.validate import decode_text, loads_json, shown, validate_count
from memex.errors import ImportFormatError, ValidationError

# Fields restored after the record is validated as a new memory would be.
_RESTORED = frozenset({"version", "updated_at", "last_accessed_at", "access_count", "history"})
# Fields a record may carry on import: what remember takes but the two that are requests
# rather than facts (a time to live, a memory to supersede), and what is restored. The
# content hash is recomputed.
IMPORT_FIELDS = (REMEMBER_FIELDS - {"ttl", "supersedes"}) | _RESTORED
IGNORED_FIELDS = frozenset({"content_hash"})
# A past version may carry any field of a memory; these say nothing a past version stores.
_PAST_FIELDS = frozenset(f.name for f in fields(Memory))
_PAST_IGNORED = frozenset({"content_hash", "last_accessed_at", "access_count"})
_PAST_OMITTED = ("id", "scope", "last_accessed_at", "access_count")


@dataclass(frozen=True, slots=True)
class Record:
    """An imported memory and its past versions, oldest first."""

    memory: Memory
    past: tuple[Memory, ...] = ()


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


def build_record(
    record: Mapping[str, Any], *, within: Scope, now: datetime, max_content_bytes: int
) -> Record:
    """Validate one parsed record into a memory inside ``within`` and its past versions.

    Without ``version`` the memory is version 1; without ``updated_at``, updated now.
    Past versions must have versions below the memory's, each once.
    """
    fresh = {k: v for k, v in record.items() if k not in _RESTORED and k not in IGNORED_FIELDS}
    if "scope" in fresh:
        fresh["scope"] = _untenanted(fresh["scope"])
    memory, _ = build_memory(fresh, within=within, now=now, max_content_bytes=max_content_bytes)
    memory = memory.with_changes(
        version=_version(record.get("version", 1), "version"),
        updated_at=opt_time(record.get("updated_at"), "updated_at") or now,
        last_accessed_at=opt_time(record.get("last_accessed_at"), "last_accessed_at"),
        access_count=validate_count(record.get("access_count", 0), "access_count", 0, 2**62),
    )
    history = record.get("history")
    if history is None:
        return Record(memory)
    if not isinstance(history, list):
        raise ValidationError("history must be a list of past versions")
    past = [
        _past_version(entry, number, memory, within, now, max_content_bytes)
        for number, entry in enumerate(history, start=1)
    ]
    seen: set[int] = set()
    for version in (m.version for m in past):
        if version in seen:
            raise ValidationError(f"history holds version {version} twice")
        seen.add(version)
    return Record(memory, tuple(sorted(past, key=lambda m: m.version)))


def _past_version(
    entry: Any, number: int, memory: Memory, within: Scope, now: datetime, max_bytes: int
) -> Memory:
    where = f"history entry {number}"
    if not isinstance(entry, Mapping):
        raise ValidationError(f"{where} must be an object")
    unknown = set(entry) - _PAST_FIELDS
    if unknown:
        raise ValidationError(f"{where}: unknown field {shown(min(unknown, key=str))}")
    if "id" in entry and str(entry["id"]).lower() != memory.id:
        raise ValidationError(f"{where} belongs to another memory ({shown(entry['id'])})")
    if "version" not in entry:
        raise ValidationError(f"{where}: missing field 'version'")
    version = _version(entry["version"], f"{where}: version")
    if version >= memory.version:
        raise ValidationError(
            f"{where}: version {version} is not below the memory's version {memory.version}"
        )
    item = {
        k: v
        for k, v in entry.items()
        if k not in _PAST_IGNORED and k not in ("version", "updated_at", "id", "scope")
    }
    item.setdefault("created_at", memory.created_at)
    try:
        if "scope" in entry and _scope(within, entry["scope"]) != memory.scope:
            raise ValidationError("its scope differs from the memory's")
        past, _ = build_memory(
            {**item, "id": memory.id, "scope": memory.scope},
            within=within,
            now=now,
            max_content_bytes=max_bytes,
        )
        updated = opt_time(entry.get("updated_at"), "updated_at") or past.created_at
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from exc
    return past.with_changes(version=version, updated_at=updated)


def _untenanted(value: Any) -> Any:
    """A record's scope without its tenant: records belong to whichever tenant imports
    them (anything but a mapping is left for validation to refuse)."""
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k != "tenant"}
    return value


def _scope(within: Scope, value: Any) -> Scope:
    return within.narrow(Scope.of(_untenanted(value)))


def _version(value: Any, what: str) -> int:
    return validate_count(value, what, 1, 2**62)


def reassign_ids(records: Sequence[Record], fresh: Callable[[Memory], str]) -> list[Record]:
    """The records under new ids (``fresh(memory)``), their links to each other following.

    A ``superseded_by`` naming a memory of the records is rewritten to its new id; one
    naming a memory outside them is left as it is.
    """
    new_ids: dict[str, str] = {}
    for record in records:
        old = record.memory.id
        if old in new_ids:
            raise ValidationError(f"id {old} appears twice")
        new_ids[old] = fresh(record.memory)

    def moved(memory: Memory) -> Memory:
        link = memory.superseded_by
        return memory.with_changes(
            id=new_ids[memory.id], superseded_by=new_ids.get(link, link) if link else link
        )

    return [Record(moved(r.memory), tuple(moved(p) for p in r.past)) for r in records]


def with_line(number: int, exc: ValidationError) -> ImportFormatError:
    """A validation error of one record, as an import error naming its line."""
    return ImportFormatError(number, str(exc))


def to_line(memory: Memory, history: Sequence[Memory] | None = None) -> str:
    """One memory as a JSON Lines record; with ``history``, its past versions too."""
    data = memory.to_dict()
    if history is not None:
        data["history"] = [_past_record(past) for past in history]
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _past_record(past: Memory) -> dict[str, Any]:
    data = past.to_dict()
    for name in _PAST_OMITTED:
        del data[name]
    return data

"""Plain-text renderings of memex values for people at a terminal.

Stored text is untrusted: a memory may hold markup, terminal control sequences or
bidirectional overrides copied from a chat or a web page. Everything here prints it
literally (no markup language is interpreted) and shows control characters as visible
escapes (``\\x1b``), so nothing stored can restyle, retitle or rewrite the terminal.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TextIO

from memex.core.literal import escape_controls as escape_controls
from memex.core.literal import json_safe as json_safe
from memex.core.literal import one_line as one_line

if TYPE_CHECKING:
    from datetime import datetime

    from memex.core.migration import MigrationReport
    from memex.core.models import Hit, Memory, Stats


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return total


def clip(text: str, columns: int) -> str:
    """``text`` cut to at most ``columns`` columns, ending in "…" when cut."""
    if width(text) <= columns:
        return text
    if columns <= 1:
        return "…"[:columns]
    out: list[str] = []
    used = 0
    for char in text:
        step = width(char)
        if used + step > columns - 1:
            break
        out.append(char)
        used += step
    return "".join(out) + "…"


def when(value: datetime | None) -> str:
    """A time to the minute, with its zone (memex keeps times in UTC)."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M") + ("Z" if value.utcoffset() is not None else "")


def terminal_columns() -> int:
    """The terminal's width ($COLUMNS first), 100 when there is none."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(1).columns
        except OSError:
            columns = 100
    return max(40, columns)


def table(
    out: TextIO, header: Sequence[str], rows: Iterable[Sequence[str]], *, flexible: int
) -> None:
    """Columns padded to their widest cell; column ``flexible`` takes the room left."""
    cells = [[one_line(c) for c in row] for row in rows]
    widths = [max([width(h), *(width(r[i]) for r in cells)]) for i, h in enumerate(header)]
    fixed = sum(w for i, w in enumerate(widths) if i != flexible) + 2 * (len(header) - 1)
    widths[flexible] = max(12, min(widths[flexible], terminal_columns() - fixed))
    for row in [list(header), *cells]:
        parts = []
        for i, cell in enumerate(row):
            text = clip(cell, widths[i])
            pad = widths[i] - width(text)
            last = i == len(row) - 1
            parts.append(text if last else text + " " * pad)
        out.write("  ".join(parts).rstrip() + "\n")


def hits(out: TextIO, found: Sequence[Hit]) -> None:
    """A table of recall hits, best first."""
    if not found:
        out.write("no memories found\n")
        return
    rows = [(f"{h.score:.3f}", h.memory.kind, h.memory.content, h.memory.id) for h in found]
    table(out, ("score", "kind", "content", "id"), rows, flexible=2)


def memories(out: TextIO, items: Sequence[Memory]) -> None:
    """A table of memories."""
    if not items:
        out.write("no memories\n")
        return
    rows = [(when(m.created_at), m.kind, m.content, m.id) for m in items]
    table(out, ("created", "kind", "content", "id"), rows, flexible=2)


def memory(out: TextIO, m: Memory) -> None:
    """Every field of one memory, one per line; the content in full, as it is."""
    fields = m.to_dict()
    content = fields.pop("content")
    label = max(len(k) for k in fields)
    for key, value in fields.items():
        if value in (None, [], {}):
            continue
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = str(value)
        out.write(f"{key.ljust(label)}  {one_line(shown)}\n")
    out.write("\n" + escape_controls(content).rstrip("\n") + "\n")


def versions(out: TextIO, items: Sequence[Memory]) -> None:
    """A memory's versions, oldest first."""
    rows = []
    for m in items:
        state = m.state(m.updated_at)  # what this version said when it was written
        shown: str
        if state in ("forgotten", "expired"):
            shown = state
        elif m.superseded_by:
            shown = f"superseded by {m.superseded_by}"
        else:
            shown = "pending" if state == "pending" else "live"
        rows.append((str(m.version), when(m.updated_at), shown, m.content))
    table(out, ("version", "updated", "state", "content"), rows, flexible=3)


def stats(out: TextIO, s: Stats) -> None:
    """Store statistics."""
    rows = [
        ("store", s.path),
        ("memories", str(s.memories)),
        ("forgotten", str(s.deleted)),
        ("superseded", str(s.superseded)),
        ("expired", str(s.expired)),
        ("versions", str(s.versions)),
        *((f"  {kind}", str(count)) for kind, count in s.by_kind.items()),
        ("embedder", f"{s.embedder} ({s.dimensions or '?'} dimensions)"),
        ("vectors", str(s.vectors)),
        ("schema", str(s.schema_version)),
        ("size", f"{s.size_bytes / 1_048_576:.1f} MiB"),
    ]
    label = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key.ljust(label)}  {one_line(value)}\n")


def migration(report: MigrationReport) -> list[str]:
    """A migration's report: what was copied, one line per tenant, one for the directory,
    and the verdict."""
    lines = [
        f"copied {report.copied} memories from {report.source} to {report.target}"
        + (f", {report.skipped} already there" if report.skipped else "")
        + (f", {report.replaced} replaced" if report.replaced else "")
    ]
    for check in report.tenants:
        s, t = check.source, check.target
        verdict = "ok" if check.ok else f"MISMATCH: {check.problem()}"
        lines.append(
            f"tenant {check.tenant}: {t.memories}/{s.memories} memories, "
            f"{t.versions}/{s.versions} versions, {verdict}"
        )
    d = report.directory
    lines.append(
        f"directory: {d.source - d.missing}/{d.source} entries (tenants, users, projects, keys)"
        + (f", {d.extra} only in the target" if d.extra else "")
        + (", ok" if d.ok else f", MISMATCH: {d.problem()}")
    )
    tenants = len(report.tenants)
    failed = sum(not check.ok for check in report.tenants)
    lines.append(
        f"verified: {tenants} tenant(s) match (counts, content and vector hashes)"
        if report.ok
        else f"verification FAILED for {failed} of {tenants} tenant(s)"
        + ("" if d.ok else " and the directory")
    )
    return lines

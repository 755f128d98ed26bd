"""Rich renderings of memex values for people at a terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from memex.core.models import Hit, Memory, Stats


def _scope(memory: Memory) -> str:
    return " ".join(f"{k}={v}" for k, v in memory.scope.items() if k != "tenant")


def _short(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def hits(console: Console, found: Sequence[Hit]) -> None:
    """A table of recall hits, best first."""
    if not found:
        console.print("no memories found")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("score", justify="right")
    table.add_column("kind")
    table.add_column("content")
    table.add_column("id", style="dim", no_wrap=True)
    for hit in found:
        table.add_row(
            f"{hit.score:.3f}", hit.memory.kind, _short(hit.memory.content), hit.memory.id
        )
    console.print(table)


def memories(console: Console, items: Sequence[Memory]) -> None:
    """A table of memories."""
    if not items:
        console.print("no memories")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("created", no_wrap=True)
    table.add_column("kind")
    table.add_column("content")
    table.add_column("id", style="dim", no_wrap=True)
    for m in items:
        table.add_row(m.created_at.strftime("%Y-%m-%d %H:%M"), m.kind, _short(m.content), m.id)
    console.print(table)


def memory(console: Console, m: Memory) -> None:
    """Every field of one memory."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in m.to_dict().items():
        if value in (None, [], {}):
            continue
        table.add_row(key, str(value))
    console.print(table)


def versions(console: Console, items: Sequence[Memory]) -> None:
    """A memory's versions, oldest first."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("version", justify="right")
    table.add_column("updated", no_wrap=True)
    table.add_column("state")
    table.add_column("content")
    for m in items:
        if m.deleted_at:
            state = "forgotten"
        elif m.superseded_by:
            state = f"superseded by {m.superseded_by}"
        else:
            state = "live"
        table.add_row(
            str(m.version), m.updated_at.strftime("%Y-%m-%d %H:%M:%S"), state, _short(m.content)
        )
    console.print(table)


def stats(console: Console, s: Stats) -> None:
    """Store statistics."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("store", s.path)
    table.add_row("memories", str(s.memories))
    table.add_row("forgotten", str(s.deleted))
    table.add_row("superseded", str(s.superseded))
    table.add_row("expired", str(s.expired))
    table.add_row("versions", str(s.versions))
    for kind, count in s.by_kind.items():
        table.add_row(f"  {kind}", str(count))
    table.add_row("embedder", f"{s.embedder} ({s.dimensions or '?'} dimensions)")
    table.add_row("vectors", str(s.vectors))
    table.add_row("schema", str(s.schema_version))
    table.add_row("size", f"{s.size_bytes / 1_048_576:.1f} MiB")
    console.print(table)

"""Progress bars for long commands, shown only when standard error is a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress_bar(
    console: Console, label: str, total: int | None, *, show: bool = True
) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` callback; draw a bar on a terminal, do nothing elsewhere."""
    if not show or not console.is_terminal:
        yield lambda n: None
        return
    with Progress(
        TextColumn(f"{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)

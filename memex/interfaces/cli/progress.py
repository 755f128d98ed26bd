"""Progress bars for long commands, drawn only when standard error is a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from memex.core.progress import Progress, Step


@contextmanager
def progress_bar(stream: TextIO, *, show: bool = True) -> Iterator[Progress]:
    """Yield a progress callback: one bar per stage on a terminal, nothing elsewhere."""
    if not show or not stream.isatty():
        yield lambda step: None
        return
    # Imported here: rich costs tens of milliseconds, which only long commands repay.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    with Bars(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream, highlight=False, markup=False, emoji=False),
        transient=True,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def report(step: Step) -> None:
            task = tasks.get(step.stage)
            if task is None:
                task = tasks[step.stage] = bars.add_task(step.stage, total=step.total)
            bars.update(task, completed=step.done, total=step.total)

        yield report

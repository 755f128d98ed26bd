"""Progress bars for long commands, shown only when standard error is a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from memex.core.progress import Progress as ProgressFn
from memex.core.progress import Step


@contextmanager
def progress_bar(console: Console, *, show: bool = True) -> Iterator[ProgressFn]:
    """Yield a progress callback; draw one bar per stage on a terminal, nothing elsewhere."""
    if not show or not console.is_terminal:
        yield lambda step: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def report(step: Step) -> None:
            task = tasks.get(step.stage)
            if task is None:
                task = tasks[step.stage] = bar.add_task(step.stage, total=step.total)
            bar.update(task, completed=step.done, total=step.total)

        yield report

"""Progress of long operations, reported to whatever shows it (a bar, a log, a client)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """Where a long operation stands: ``done`` of ``total`` units of its current ``stage``.

    ``done`` counts from 0 within each stage; ``total`` is None when it is not known in
    advance. Stages are short lower-case phrases ("embedding", "indexing full text").
    """

    stage: str
    done: int
    total: int | None = None


Progress = Callable[[Step], None]
"""Called with each step of a long operation, for progress bars."""


class Tally:
    """Counts the finished units of one stage and reports each advance."""

    __slots__ = ("_done", "_progress", "_stage", "_total")

    def __init__(self, progress: Progress | None, stage: str, total: int | None = None) -> None:
        self._progress = progress
        self._stage = stage
        self._total = total
        self._done = 0
        if progress is not None:
            progress(Step(stage, 0, total))

    @property
    def done(self) -> int:
        """Units finished so far."""
        return self._done

    def advance(self, units: int) -> None:
        """Record ``units`` more finished units (and report them)."""
        if units <= 0:
            return
        self._done += units
        if self._progress is not None:
            self._progress(Step(self._stage, self._done, self._total))

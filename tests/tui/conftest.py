"""Driving the inspector with Textual's pilot, on real stores."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

from memex.interfaces.tui.app import Inspector

SIZE = (120, 36)


async def settle(pilot: Pilot[None]) -> None:
    """Wait until every worker (store call) has answered and the screen is up to date."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def drive(app: Inspector, script: Callable[[Pilot[None]], Awaitable[Any]]) -> Any:
    """Run the app headless at ``SIZE``, the first page and counts loaded, then ``script``."""

    async def main() -> Any:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            return await script(pilot)

    return asyncio.run(main())


def contents(app: Inspector) -> list[str]:
    """The memory column of every row, as shown (plain text)."""
    table = app.table
    return [table.get_row_at(i)[-1].plain for i in range(table.row_count)]


def row_ids(app: Inspector) -> list[str]:
    """The ids of the rows, top to bottom."""
    table = app.table
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def errors(app: Inspector) -> list[str]:
    """The error notifications shown."""
    return [n.message for n in app._notifications if n.severity == "error"]

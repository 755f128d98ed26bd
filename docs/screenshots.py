"""Render the screenshots in docs/tui.md from the current code: `python docs/screenshots.py`.

Each screen is drawn by the inspector itself (Textual's pilot, headless, 110 columns) on a
demo store made afresh from fixed records (ids, times and versions given), so the SVGs
change only when the code does. tests/tui/test_screenshots.py renders them again and
compares them with the committed files.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Input  # noqa: E402

from memex import Memex  # noqa: E402
from memex.interfaces.tui.app import Inspector  # noqa: E402

FOLDER = ROOT / "docs" / "screenshots"
SIZE = (110, 32)
TALL = (110, 46)
"""The details screen, tall enough for every version of the demo memory."""
TEXTUAL = "8.2.8"
"""The Textual version the committed SVGs were drawn with (another draws differently)."""


def _memory(n: int, content: str, kind: str, tags: list[str], day: int, **more: Any) -> str:
    when = f"2024-05-{day:02d}T09:{n:02d}:00+00:00"
    record = {
        "id": f"018f3a00-0000-7000-8000-{n:012d}",
        "content": content,
        "kind": kind,
        "tags": tags,
        "created_at": when,
        "updated_at": when,
        "valid_from": when,
        **more,
    }
    return json.dumps(record)


DEMO = [
    _memory(1, "The user prefers tabs over spaces and a dark terminal theme.", "preference",
            ["editor"], 1, scope={"user": "ana"}),
    _memory(2, "We store embeddings as float32 blobs next to each memory.", "decision",
            ["storage"], 2, scope={"project": "memex"}),
    _memory(3, "CI runs the test suite on every push; deploys happen on Thursdays.", "fact",
            ["ops"], 3, scope={"project": "memex"}, version=3,
            updated_at="2024-05-20T16:30:00+00:00",
            history=[
                {"content": "CI runs the test suite on every push; deploys happen on Fridays.",
                 "kind": "note", "tags": ["ops"], "version": 1,
                 "created_at": "2024-05-03T09:03:00+00:00",
                 "updated_at": "2024-05-03T09:03:00+00:00",
                 "valid_from": "2024-05-03T09:03:00+00:00"},
                {"content": "CI runs the test suite on every push; deploys happen on Fridays.",
                 "kind": "fact", "tags": ["ops"], "version": 2,
                 "created_at": "2024-05-03T09:03:00+00:00",
                 "updated_at": "2024-05-12T11:00:00+00:00",
                 "valid_from": "2024-05-03T09:03:00+00:00"},
            ]),
    _memory(4, "Bob asked to be paged only for production incidents, never staging.",
            "preference", ["oncall"], 4, scope={"user": "bob"}),
    _memory(5, "The billing service times out when an invoice batch exceeds 10,000 rows.",
            "event", ["billing", "incident"], 5, scope={"project": "billing"}),
    _memory(6, "Use the staging database for load tests; production is off limits.",
            "decision", ["ops"], 6, scope={"project": "memex"}),
    _memory(7, "Release notes are drafted from merged pull requests every Wednesday.",
            "fact", ["release"], 7, scope={"project": "memex"}),
    _memory(8, "Markup is shown as it is: [bold]not bold[/bold] and \x1b[31mno colour.",
            "note", ["safety"], 8),
]  # fmt: skip

Script = Callable[[Inspector, Pilot[None]], Awaitable[None]]


async def _settle(pilot: Pilot[None]) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def _main_list(app: Inspector, pilot: Pilot[None]) -> None:
    await pilot.press("j", "space", "j", "j", "space")


async def _search(app: Inspector, pilot: Pilot[None]) -> None:
    await pilot.press("slash", *"when do we deploy", "enter")
    await _settle(pilot)


async def _details(app: Inspector, pilot: Pilot[None]) -> None:
    await pilot.press("j", "j", "j", "j", "j", "enter")
    await _settle(pilot)


async def _delete(app: Inspector, pilot: Pilot[None]) -> None:
    await pilot.press("j", "d")
    await _settle(pilot)


async def _export(app: Inspector, pilot: Pilot[None]) -> None:
    await pilot.press("space", "j", "space", "e")
    await _settle(pilot)


SCREENS: dict[str, Script] = {
    "main": _main_list,
    "search": _search,
    "details": _details,
    "delete": _delete,
    "export": _export,
}


async def _shoot(folder: Path, script: Script) -> str:
    with Memex.open(folder / "demo.db") as mx:
        mx.import_lines(DEMO)
        app = Inspector(mx, title="demo.db", export_path="memex-export.jsonl")
        size = TALL if script is _details else SIZE
        async with app.run_test(size=size) as pilot:
            await _settle(pilot)
            await script(app, pilot)
            await _settle(pilot)
            for box in app.screen.query(Input):
                box.cursor_blink = False  # a still picture: the cursor always shown
            await pilot.pause()
            return app.export_screenshot(title="memex tui")


def render() -> dict[str, str]:
    """Every screenshot's SVG, by name, drawn from a fresh demo store each."""
    out: dict[str, str] = {}
    for name, script in SCREENS.items():
        with tempfile.TemporaryDirectory() as folder:
            out[name] = asyncio.run(_shoot(Path(folder), script))
    return out


def main() -> None:
    """Write docs/screenshots/<screen>.svg."""
    FOLDER.mkdir(exist_ok=True)
    for name, svg in render().items():
        (FOLDER / f"{name}.svg").write_text(svg, encoding="utf-8")
        print(f"wrote docs/screenshots/{name}.svg")


if __name__ == "__main__":
    main()

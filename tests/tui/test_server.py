"""The inspector on a memex server (``memex.Client``), and when the server is down."""

from __future__ import annotations

import socket
from pathlib import Path

from textual.pilot import Pilot

from memex import Client, NotFoundError
from memex.interfaces.tui.app import Inspector
from memex.interfaces.tui.screens import DetailsScreen
from tests.memexserver import MemexServer
from tests.tui.conftest import contents, drive, errors, row_ids, settle


def test_the_inspector_works_on_a_real_server(memex_server: MemexServer, tmp_path: Path) -> None:
    _, key = memex_server.new_tenant()
    out = tmp_path / "from-server.jsonl"
    with Client(memex_server.url, key) as client:
        kept = client.remember("The invoice batch limit is 10,000 rows.", kind="fact")
        gone = client.remember("Staging is the place for load tests.", kind="decision")
        client.update(kept.id, content="The invoice batch limit is 20,000 rows.")
        app = Inspector(client, export_path=str(out), debounce=0.05)

        async def script(pilot: Pilot[None]) -> None:
            assert row_ids(app) == [gone.id, kept.id]
            assert app.counts is not None and app.counts.by_kind == {"fact": 1, "decision": 1}
            await pilot.press("slash", *"invoice limit", "enter")
            await settle(pilot)
            assert row_ids(app)[0] == kept.id
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, DetailsScreen)
            details = app.screen.query_one("#details").render().plain  # type: ignore[attr-defined]
            assert "-The invoice batch limit is 10,000 rows." in details
            assert "+The invoice batch limit is 20,000 rows." in details
            await pilot.press("escape", "slash", "end", "ctrl+u", "enter")
            await settle(pilot)
            assert row_ids(app) == [gone.id, kept.id]
            await pilot.press("d", "f")
            await settle(pilot)
            assert row_ids(app) == [kept.id]
            await pilot.press("space", "e", "enter")
            await settle(pilot)

        drive(app, script)
        try:
            client.get(gone.id)
            raise AssertionError("forgotten on the server, it is not found")
        except NotFoundError:
            pass
    assert [line.count(kept.id) > 0 for line in out.read_text().splitlines()] == [True]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_is_down_is_a_notification(tmp_path: Path) -> None:
    """Nothing listens: every call fails, each as a notification; the app goes on."""
    with Client(f"http://127.0.0.1:{free_port()}", "mxk_not_a_real_key", max_retries=0) as client:
        app = Inspector(client, debounce=0.05)

        async def script(pilot: Pilot[None]) -> None:
            assert errors(app), "the first page's failure is shown"
            assert any("127.0.0.1" in e for e in errors(app))
            await pilot.press("slash", *"anything", "enter")
            await settle(pilot)
            assert len(errors(app)) >= 3 and app.is_running
            assert contents(app) == []

        drive(app, script)

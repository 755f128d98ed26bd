"""The memory inspector (``memex tui``) through Textual's pilot, on real SQLite stores:
search, navigation, details with versions, delete, purge, export, filters, paging, literal
text and errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from memex import Memex, NotFoundError
from memex.interfaces.tui.app import Inspector
from memex.interfaces.tui.screens import ConfirmDelete, DetailsScreen, ExportDialog
from memex.interfaces.tui.widgets import Selection
from tests.tui.conftest import contents, drive, errors, row_ids, settle

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
MEMORIES = [
    {"content": "The user prefers tabs over spaces.", "kind": "preference", "tags": ["editor"]},
    {"content": "Deploys happen on Fridays after the CI run.", "kind": "fact", "tags": ["ops"]},
    {"content": "The billing service times out above 10,000 invoice rows.", "kind": "event",
     "tags": ["billing", "incident"], "scope": {"project": "billing"}},
    {"content": "Use the staging database for load tests.", "kind": "decision", "tags": ["ops"],
     "scope": {"project": "infra", "user": "bob"}},
    {"content": "Bob wants pages for production incidents only.", "kind": "preference",
     "tags": ["oncall"], "scope": {"user": "bob"}},
]  # fmt: skip


@pytest.fixture
def store(mx: Memex) -> Memex:
    """Five memories, a day apart, the newest last."""
    mx.remember_many([{**m, "created_at": T0 + timedelta(days=i)} for i, m in enumerate(MEMORIES)])
    return mx


def shown(app: Inspector, selector: str) -> str:
    """The plain text a widget of the current screen shows."""
    return app.screen.query_one(selector, Static).render().plain  # type: ignore[union-attr]


def ids_by_content(mx: Memex) -> dict[str, str]:
    return {m.content: m.id for m in mx.list(limit=100).items}


def test_the_list_shows_the_newest_first_and_the_counts_by_kind(store: Memex) -> None:
    app = Inspector(store, title="test")

    async def script(pilot: Pilot[None]) -> None:
        assert contents(app) == [m["content"] for m in reversed(MEMORIES)]
        counts = shown(app, "#counts")
        assert "5 memories" in counts and "preference 2" in counts
        assert "decision 1" in counts

    drive(app, script)


def test_typing_recalls_after_the_debounce(store: Memex) -> None:
    # A pause long enough that no keystroke of a loaded machine takes as long.
    app = Inspector(store, debounce=1.0)
    billing = ids_by_content(store)[MEMORIES[2]["content"]]  # type: ignore[index]

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("slash")
        assert app.focused is app.query_one("#search", Input)
        await pilot.press(*"billing timeout")
        # Typing is not searching: until the pause, the list is the plain listing.
        assert app.search_text == "" and len(contents(app)) == 5
        await pilot.pause(1.5)
        await settle(pilot)
        assert app.search_text == "billing timeout"
        assert row_ids(app)[0] == billing
        assert contents(app)[0].endswith(MEMORIES[2]["content"])  # after its score
        # Clearing the box goes back to the listing.
        app.query_one("#search", Input).value = ""
        await pilot.pause(1.5)
        await settle(pilot)
        assert contents(app) == [m["content"] for m in reversed(MEMORIES)]

    drive(app, script)


def test_a_newer_query_wins_over_older_answers(store: Memex) -> None:
    """With a debounce shorter than a keystroke, every keystroke searches; only the last query's hits stay."""
    app = Inspector(store, debounce=0.01)
    staging = ids_by_content(store)[MEMORIES[3]["content"]]  # type: ignore[index]

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("slash", *"tabs", "backspace", "backspace", "backspace", "backspace")
        await pilot.press(*"staging database")
        await pilot.pause(0.2)
        await settle(pilot)
        assert app.search_text == "staging database"
        assert row_ids(app)[0] == staging

    drive(app, script)


def test_j_and_k_move_and_enter_opens_details_with_every_version(store: Memex) -> None:
    ids = ids_by_content(store)
    target = ids[MEMORIES[3]["content"]]  # type: ignore[index]
    store.update(target, content="Use the staging database for load tests.\nNever prod.")
    store.update(target, kind="fact", tags=["ops", "db"])
    app = Inspector(store)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("j", "j", "j", "k")
        assert app.table.cursor_row == 2
        await pilot.press("k")
        assert app.table.current_id() == target
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailsScreen)
        text = shown(app, "#details")
        assert "version 3 of 3" in text
        assert "v1" in text and "v2" in text and "v3" in text
        assert "+Never prod." in text  # v2: the content diff
        assert "kind: decision → fact" in text  # v3: the field diff
        assert "tags: ops → ops, db" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailsScreen)

    drive(app, script)


def test_delete_asks_first_cancel_keeps_and_confirm_forgets(store: Memex) -> None:
    app = Inspector(store)

    async def script(pilot: Pilot[None]) -> str:
        first = row_ids(app)[0]
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDelete)
        await pilot.press("escape")
        await settle(pilot)
        assert store.get(first).id == first and row_ids(app)[0] == first
        await pilot.press("d")
        await pilot.click("#cancel")
        await settle(pilot)
        assert store.get(first).id == first
        await pilot.press("d", "f")
        await settle(pilot)
        assert first not in row_ids(app) and len(row_ids(app)) == 4
        assert app.counts is not None and app.counts.memories == 4
        return first

    first = drive(app, script)
    with pytest.raises(NotFoundError):
        store.get(first)
    assert store.history(first)[-1].deleted_at is not None  # forgotten, not purged


def test_purge_erases_the_marked_memories(store: Memex) -> None:
    app = Inspector(store)

    async def script(pilot: Pilot[None]) -> list[str]:
        chosen = row_ids(app)[:2]
        await pilot.press("space", "space")  # marks the row and moves on
        assert app.marked == set(chosen)
        await pilot.press("d")
        assert "these 2 memories" in shown(app, "#question")
        await pilot.press("p")
        await settle(pilot)
        assert not set(chosen) & set(row_ids(app)) and app.marked == set()
        return chosen

    for memory_id in drive(app, script):
        with pytest.raises(NotFoundError):
            store.history(memory_id)
    assert store.stats().memories == 3 and store.stats().deleted == 0


def exported(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_export_writes_exactly_the_marked_memories(store: Memex, tmp_path: Path) -> None:
    out = tmp_path / "marked.jsonl"
    app = Inspector(store, export_path=str(out))

    async def script(pilot: Pilot[None]) -> list[str]:
        chosen = [row_ids(app)[0], row_ids(app)[2]]
        await pilot.press("space", "j", "space")
        await pilot.press("e")
        assert isinstance(app.screen, ExportDialog)
        await pilot.press("enter")
        await settle(pilot)
        return chosen

    chosen = drive(app, script)
    assert sorted(exported(out)) == sorted(chosen)


def test_export_of_the_current_filter(store: Memex, tmp_path: Path) -> None:
    out = tmp_path / "filtered.jsonl"
    app = Inspector(store, export_path=str(out))
    ops = [m.id for m in store.list(tags=["ops"], order="asc").items]

    async def script(pilot: Pilot[None]) -> None:
        app.query_one("#filter-tag", Input).value = "ops"
        await pilot.pause(0.4)
        await settle(pilot)
        assert len(row_ids(app)) == 2
        await pilot.press("e")
        assert "tag=ops" in shown(app, "#previews")
        await pilot.click("#export")
        await settle(pilot)

    drive(app, script)
    assert exported(out) == ops


def test_export_refuses_the_stores_own_file(store: Memex, store_path: Path) -> None:
    app = Inspector(store, export_path=str(store_path))

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("e", "enter")
        await settle(pilot)
        assert errors(app) and "store" in errors(app)[0]
        assert app.is_running

    drive(app, script)
    assert store.stats().memories == 5


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("kind", "preference", [4, 0]),
        ("kind", "fact, decision", [3, 1]),
        ("project", "billing", [2]),
        ("user", "bob", [4, 3]),
        ("tag", "ops", [3, 1]),
        ("since", "2024-03-03", [4, 3, 2]),
        ("until", "2024-03-02", [0]),
    ],
)
def test_filters(store: Memex, field: str, value: str, expected: list[int]) -> None:
    app = Inspector(store)

    async def script(pilot: Pilot[None]) -> None:
        app.query_one(f"#filter-{field}", Input).value = value
        await pilot.pause(0.4)
        await settle(pilot)
        assert contents(app) == [MEMORIES[i]["content"] for i in expected]

    drive(app, script)


def test_the_command_lines_filters_fill_the_bar(store: Memex) -> None:
    app = Inspector(store, selection=Selection(scope={"user": "bob"}, kinds=("preference",)))

    async def script(pilot: Pilot[None]) -> None:
        assert contents(app) == [MEMORIES[4]["content"]]
        assert app.query_one("#filter-user", Input).value == "bob"
        assert app.query_one("#filter-kind", Input).value == "preference"

    drive(app, script)


def test_a_bad_filter_is_a_notification_and_the_app_goes_on(store: Memex) -> None:
    app = Inspector(store)

    async def script(pilot: Pilot[None]) -> None:
        app.query_one("#filter-since", Input).value = "last tuesday"
        await pilot.pause(0.4)
        await settle(pilot)
        assert errors(app) and "since" in errors(app)[0]
        app.query_one("#filter-since", Input).value = ""
        await pilot.pause(0.4)
        await settle(pilot)
        assert len(contents(app)) == 5

    drive(app, script)


def test_the_list_reads_a_large_store_a_page_at_a_time(mx: Memex) -> None:
    mx.remember_many({"content": f"memory number {i}", "kind": "note"} for i in range(3000))
    app = Inspector(mx, page_size=100)

    async def script(pilot: Pilot[None]) -> None:
        assert app.table.row_count == 100 and app.list_calls == 1
        app.table.move_cursor(row=70)  # well within the first page: nothing more is read
        await pilot.press("j", "k")
        await settle(pilot)
        assert app.table.row_count == 100 and app.list_calls == 1
        app.table.move_cursor(row=79)
        await pilot.press("j")  # near its end: the next page
        await settle(pilot)
        assert app.table.row_count == 200 and app.list_calls == 2
        await pilot.press("ctrl+end")  # the last row read: one page more, never the whole store
        await settle(pilot)
        assert app.table.row_count == 300 and app.list_calls == 3
        app.table.scroll_end(animate=False)
        await settle(pilot)
        assert app.table.row_count == 400 and app.list_calls == 4
        assert contents(app)[399] == "memory number 2600"

    drive(app, script)


def test_stored_text_is_shown_literally(mx: Memex) -> None:
    nasty = "[bold red]not bold[/] \x1b[31mred\x1b[0m [link=http://x]y[/link] \u202egnp"
    memory = mx.remember(nasty, kind="note", tags=["[i]tag[/i]"])
    app = Inspector(mx)

    async def script(pilot: Pilot[None]) -> None:
        row = contents(app)[0]
        assert row == (
            "[bold red]not bold[/] \\x1b[31mred\\x1b[0m [link=http://x]y[/link] \\u202egnp"
        )
        assert app.table.get_row_at(0)[4].plain == "[i]tag[/i]"
        await pilot.press("enter")
        await settle(pilot)
        details = shown(app, "#details")
        assert "[bold red]not bold[/]" in details and "\x1b" not in details
        assert memory.id in details
        svg = app.export_screenshot()
        assert "[bold&#160;red]not&#160;bold[/]" in svg or "[bold red]not bold[/]" in svg

    drive(app, script)


def test_a_read_only_store_refuses_a_forget_in_a_notification(
    store: Memex, store_path: Path
) -> None:
    with Memex.open(store_path, read_only=True) as reader:
        app = Inspector(reader)

        async def script(pilot: Pilot[None]) -> None:
            assert "read-only" in shown(app, "#counts")
            await pilot.press("d", "f")
            await settle(pilot)
            assert errors(app) and "read-only" in errors(app)[0]
            assert len(row_ids(app)) == 5 and app.is_running

        drive(app, script)
    assert store.stats().memories == 5

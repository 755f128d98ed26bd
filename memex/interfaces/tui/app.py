"""The inspector (``Inspector``): search as you type, a filtered list paged as it
scrolls, details, forget and purge, export, and counts by kind.

Every store call runs in a worker thread and answers through ``call_from_thread``; each
answer carries the generation it was asked for, and one that a newer query or filter
has made stale is dropped, so a slow old search never overwrites a newer one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input

from memex.core.literal import one_line
from memex.errors import MemexError
from memex.interfaces.tui.screens import ConfirmDelete, DetailsScreen, ExportDialog, previews
from memex.interfaces.tui.widgets import CountsBar, FilterBar, MemoryTable, Selection

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.timer import Timer

    from memex.client.sync import Client
    from memex.core.models import Hit, Page, Stats
    from memex.service import Memex

PAGE = 100
"""Memories asked for per list call."""
HITS = 50
"""Memories a search shows."""
DEBOUNCE = 0.25
"""Seconds of quiet typing before a search (or a filter change) runs."""

CSS = """
#counts { height: 1; padding: 0 1; background: $boost; }
#search { margin: 0 0; }
#filters { height: 3; }
.filter { width: 1fr; }
#memories { height: 1fr; }
#details-title { height: 1; padding: 0 1; background: $boost; }
#details { padding: 0 1; }
ConfirmDelete, ExportDialog { align: center middle; }
#dialog {
    grid-size: 1; grid-rows: auto auto auto auto; grid-gutter: 1;
    padding: 1 2; width: 80; height: auto; border: thick $primary; background: $surface;
}
#buttons { height: 3; align: center middle; }
#buttons Button { margin: 0 1; }
"""


class Inspector(App[None]):
    """The memory inspector over one ``Memex`` or ``Client`` (the API the two share)."""

    TITLE = "memex"
    CSS = CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("slash", "focus_search", "Search"),
        Binding("space", "mark", "Mark"),
        Binding("d", "delete", "Delete"),
        Binding("e", "export", "Export"),
        Binding("escape", "leave_input", "List", show=False),
    ]

    def __init__(
        self,
        mx: Memex | Client,
        *,
        selection: Selection | None = None,
        title: str | None = None,
        export_path: str = "memex-export.jsonl",
        page_size: int = PAGE,
        debounce: float = DEBOUNCE,
    ) -> None:
        super().__init__()
        self.mx = mx
        self.selection = selection or Selection()
        self._base_scope = {
            k: v for k, v in self.selection.scope.items() if k not in ("project", "user")
        }
        self.store_title = title if title is not None else mx.location
        self.export_path = export_path
        self.page_size = page_size
        self.debounce = debounce
        self.marked: set[str] = set()
        self.search_text = ""
        self.counts: Stats | None = None
        self.list_calls = 0
        """How many pages the list has asked for (a large store is read as it scrolls)."""
        self._generation = 0
        self._cursor: str | None = None
        self._more = False
        self._loading = False
        self._timer: Timer | None = None

    # -- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Counts, search, filters, the list and the keys."""
        yield CountsBar(id="counts")
        yield Input(placeholder="/ search (hybrid recall as you type)", id="search")
        yield FilterBar(self.selection)
        yield MemoryTable(id="memories")
        yield Footer()

    def on_mount(self) -> None:
        """Show the first page and the counts; the list has the keys."""
        self._show_counts()
        self.table.focus()
        self.refresh_counts()
        self.reload()

    @property
    def table(self) -> MemoryTable:
        """The memory list."""
        return self.query_one("#memories", MemoryTable)

    # -- work in threads -------------------------------------------------------------

    def _in_thread(
        self, name: str, call: Callable[[], Any], done: Callable[[Any], None], gen: int = 0
    ) -> None:
        """Run ``call`` in a worker thread, then ``done`` with its result on the app's
        thread unless a newer generation has begun; a memex error becomes a notification."""

        def work() -> None:
            try:
                result = call()
            except MemexError as exc:
                self.call_from_thread(self._failed, gen, exc)
                return
            self.call_from_thread(self._answer, gen, done, result)

        self.run_worker(work, thread=True, group=name, name=name)

    def _answer(self, gen: int, done: Callable[[Any], None], result: Any) -> None:
        if gen in (0, self._generation):
            done(result)

    def _failed(self, gen: int, exc: MemexError) -> None:
        if gen == self._generation:
            self._loading = False
        message = one_line(str(exc)) or type(exc).__name__
        self.notify(message, title="error", severity="error", markup=False, timeout=8)

    # -- counts ----------------------------------------------------------------------

    def refresh_counts(self) -> None:
        """Read the counts by kind again (``stats``: once at start and after a removal)."""
        self._in_thread("stats", self.mx.stats, self._got_stats)

    def _got_stats(self, stats: Stats) -> None:
        self.counts = stats
        self._show_counts()

    def _show_counts(self) -> None:
        self.query_one(CountsBar).show(self.store_title, self.counts, len(self.marked))

    # -- the list and search ---------------------------------------------------------

    def reload(self) -> None:
        """Show the first page of the selection, or the hits of the query."""
        self._generation += 1
        gen = self._generation
        arguments = self.selection.arguments()
        if self.search_text:
            query = self.search_text
            self._loading = False

            def search() -> list[Hit]:
                return self.mx.recall(query, k=HITS, **arguments)

            self._in_thread("search", search, self._show_hits, gen)
            return
        self._cursor, self._more = None, False
        self._load_page(gen, None)

    def _load_page(self, gen: int, cursor: str | None) -> None:
        self._loading = True
        self.list_calls += 1
        arguments = self.selection.arguments()

        def page() -> Page:
            return self.mx.list(limit=self.page_size, cursor=cursor, **arguments)

        self._in_thread("list", page, lambda p: self._show_page(p, cursor is None), gen)

    def _show_page(self, page: Page, first: bool) -> None:
        table = self.table
        if first:
            table.clear()
        for memory in page.items:
            table.add_memory(memory, memory.id in self.marked)
        self._cursor, self._more = page.next_cursor, page.next_cursor is not None
        self._loading = False
        if table.row_count and table.near_end():
            self.more()

    def _show_hits(self, hits: list[Hit]) -> None:
        table = self.table
        table.clear()
        for hit in hits:
            table.add_memory(hit.memory, hit.memory.id in self.marked, hit.score)

    def more(self) -> None:
        """Ask for the next page, if the list has one and is not already asking."""
        if self.search_text or not self._more or self._loading:
            return
        self._load_page(self._generation, self._cursor)

    def on_memory_table_near_end(self, message: MemoryTable.NearEnd) -> None:
        """The list scrolled near its end: read on (unless a page read since the message
        was posted moved the end away)."""
        if self.table.near_end():
            self.more()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Typing in the search box or a filter runs it once typing pauses."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(self.debounce, self._apply)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter runs it at once and goes to the list."""
        if self._timer is not None:
            self._timer.stop()
        self._apply()
        self.table.focus()

    def _apply(self) -> None:
        self._timer = None
        query = self.query_one("#search", Input).value.strip()
        selection = self.query_one(FilterBar).selection(self._base_scope)
        if query == self.search_text and selection == self.selection:
            return
        self.search_text, self.selection = query, selection
        self.reload()

    # -- actions ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The list's keys work on the list's screen only, not over details or a dialog."""
        if action in ("focus_search", "mark", "delete", "export", "leave_input"):
            return self.screen is self.screen_stack[0]
        return True

    def action_focus_search(self) -> None:
        """Go to the search box."""
        self.query_one("#search", Input).focus()

    def action_leave_input(self) -> None:
        """Back to the list."""
        self.table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click on the selected row) opens the details."""
        self.action_open()

    def action_open(self) -> None:
        """Show the memory under the cursor with every version."""
        memory_id = self.table.current_id()
        if memory_id is not None:
            self.push_screen(DetailsScreen(memory_id, self.mx.history))

    def action_mark(self) -> None:
        """Mark or unmark the memory under the cursor (delete and export take the marked)."""
        memory_id = self.table.current_id()
        if memory_id is None:
            return
        marked = memory_id not in self.marked
        if marked:
            self.marked.add(memory_id)
        else:
            self.marked.discard(memory_id)
        self.table.set_mark(memory_id, marked)
        self._show_counts()
        self.table.action_cursor_down()

    def _targets(self) -> list[str]:
        if self.marked:
            return sorted(self.marked)
        current = self.table.current_id()
        return [] if current is None else [current]

    def action_delete(self) -> None:
        """Forget (or purge) the marked memories, else the one under the cursor, once confirmed."""
        targets = self._targets()
        if not targets:
            return

        def chosen(choice: str | None) -> None:
            if choice in ("forget", "purge"):
                self._remove(targets, purge=choice == "purge")

        self.push_screen(ConfirmDelete(previews(self.table, targets), len(targets)), chosen)

    def _remove(self, ids: Sequence[str], *, purge: bool) -> None:
        mx = self.mx

        def remove() -> list[str]:
            done: list[str] = []
            for memory_id in ids:
                if purge:
                    mx.purge(memory_id)
                else:
                    mx.forget(memory_id)
                done.append(memory_id)
            return done

        def removed(done: list[str]) -> None:
            for memory_id in done:
                self.marked.discard(memory_id)
                if memory_id in self.table.rows:
                    self.table.remove_row(memory_id)
            verb = "purged" if purge else "forgot"
            self.notify(f"{verb} {len(done)} memor{'y' if len(done) == 1 else 'ies'}")
            self.refresh_counts()

        self._in_thread("remove", remove, removed)

    def action_export(self) -> None:
        """Export the marked memories, else the current filter, to a JSON Lines file."""
        if self.marked:
            what = f"the {len(self.marked)} marked memories"
            options: Mapping[str, Any] = {"ids": sorted(self.marked)}
        else:
            what = f"the current filter: {self.selection.describe()}"
            options = self.selection.arguments()

        def chosen(path: str | None) -> None:
            if path:
                self._in_thread(
                    "export", lambda: self.mx.export(path, **options), lambda n: exported(path, n)
                )

        def exported(path: str, count: int) -> None:
            self.notify(f"exported {count} memories to {one_line(path)}", markup=False)

        self.push_screen(ExportDialog(what, self.export_path), chosen)


def run(mx: Memex | Client, selection: Selection) -> None:
    """Run the inspector in this terminal until it is quit."""
    Inspector(mx, selection=selection).run()

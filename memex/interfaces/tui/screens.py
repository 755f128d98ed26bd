"""The inspector's screens: a memory's details and versions, the delete confirmation and
the export dialog. Stored text goes into ``rich.text.Text`` as it is: never markup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Static

from memex.core.changes import shown, version_changes
from memex.core.literal import escape_controls, one_line
from memex.errors import MemexError

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from memex.core.models import Memory

DETAIL_FIELDS = ("id", "kind", "scope", "tags", "metadata", "importance", "source")
TIME_FIELDS = ("created_at", "updated_at", "valid_from", "valid_until", "expires_at")
LINK_FIELDS = ("superseded_by", "deleted_at", "access_count", "last_accessed_at")


def details_text(versions: Sequence[Memory]) -> Text:
    """A memory's fields (its latest version) and every version, each with what changed
    from the one before: changed fields, and a line diff of the content."""
    latest = versions[-1]
    out = Text()
    out.append(f"version {latest.version} of {len(versions)}", style="bold")
    out.append(f"  ·  {latest.state()}\n\n", style="bold")
    for name in (*DETAIL_FIELDS, *TIME_FIELDS, *LINK_FIELDS):
        out.append(f"{name:>16}  ", style="dim")
        out.append(one_line(shown(getattr(latest, name))) + "\n")
    out.append("\n")
    out.append(escape_controls(latest.content) + "\n\n")
    out.append(f"versions ({len(versions)}), oldest first\n", style="bold underline")
    for version, (fields, diff) in zip(versions, version_changes(versions), strict=True):
        out.append(f"\nv{version.version}", style="bold")
        out.append(f"  {version.updated_at.strftime('%Y-%m-%d %H:%M:%S')} UTC\n", style="dim")
        if version is versions[0]:
            out.append("  created: ", style="dim")
            out.append(one_line(version.content) + "\n")
            continue
        if not fields and not diff:
            out.append("  no change to its fields or content\n", style="dim")
        for change in fields:
            out.append(f"  {change.name}: ", style="bold")
            out.append(one_line(change.before), style="red")
            out.append(" → ")
            out.append(one_line(change.after) + "\n", style="green")
        if diff:
            out.append("  content:\n", style="bold")
        for line in diff:
            style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
            out.append("    " + one_line(line) + "\n", style=style)
    return out


class DetailsScreen(Screen[None]):
    """One memory: its metadata and every version, with what each changed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, memory_id: str, load: Callable[[str], list[Memory]]) -> None:
        super().__init__()
        self.memory_id = memory_id
        self._load = load

    def compose(self) -> ComposeResult:
        """A title line, the details (loading first), the keys."""
        yield Static(Text(f"memory {self.memory_id}", style="bold"), id="details-title")
        with VerticalScroll(id="details-scroll"):
            yield Static(Text("loading…", style="dim"), id="details")
        yield Footer()

    def on_mount(self) -> None:
        """Read the versions in a worker thread."""
        self.run_worker(self._read, thread=True, group="details")

    def _read(self) -> None:
        try:
            versions = self._load(self.memory_id)
        except MemexError as exc:
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self._show, versions)

    def _show(self, versions: list[Memory]) -> None:
        self.query_one("#details", Static).update(details_text(versions))

    def _failed(self, exc: MemexError) -> None:
        self.query_one("#details", Static).update(Text(one_line(str(exc)), style="red"))
        self.app.notify(one_line(str(exc)), severity="error", markup=False)


class ConfirmDelete(ModalScreen[str | None]):
    """Asks before removing: forget (soft), purge (for good) or cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "choose('forget')", "Forget"),
        Binding("p", "choose('purge')", "Purge"),
        Binding("escape,n", "choose(None)", "Cancel"),
    ]

    def __init__(self, previews: Sequence[str], total: int) -> None:
        super().__init__()
        self._previews = list(previews)
        self._total = total

    def compose(self) -> ComposeResult:
        """The memories named, and the three choices."""
        with Grid(id="dialog"):
            noun = "this memory" if self._total == 1 else f"these {self._total} memories"
            yield Label(Text(f"Delete {noun}?", style="bold"), id="question")
            lines = Text()
            for preview in self._previews:
                lines.append("• " + preview[:70] + "\n")
            if self._total > len(self._previews):
                lines.append(f"… and {self._total - len(self._previews)} more\n", style="dim")
            lines.append(
                "Forget hides it from every read but history; purge erases it and "
                "its history for good.",
                style="dim",
            )
            yield Static(lines, id="previews")
            with Horizontal(id="buttons"):
                yield Button("Forget (f)", variant="warning", id="forget")
                yield Button("Purge (p)", variant="error", id="purge")
                yield Button("Cancel (esc)", variant="primary", id="cancel")

    def on_mount(self) -> None:
        """Cancel is the safe default."""
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button chooses."""
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        """A key chooses."""
        self.dismiss(choice)


class ExportDialog(ModalScreen[str | None]):
    """Asks where to write an export of the selection (JSON Lines)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, default_path: str) -> None:
        super().__init__()
        self._what = what
        self._default = default_path

    def compose(self) -> ComposeResult:
        """What is exported, the file, and the choices."""
        with Grid(id="dialog"):
            yield Label(Text("Export to JSON Lines", style="bold"), id="question")
            yield Static(Text(one_line(self._what)), id="previews")
            yield Input(self._default, placeholder="file to write", id="export-path")
            with Horizontal(id="buttons"):
                yield Button("Export", variant="success", id="export")
                yield Button("Cancel (esc)", variant="primary", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the file name exports."""
        self._done()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button chooses."""
        if event.button.id == "export":
            self._done()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Escape cancels."""
        self.dismiss(None)

    def _done(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        self.dismiss(path or None)


def previews(table: Any, ids: Sequence[str], limit: int = 5) -> list[str]:
    """The first few rows' texts (as the table shows them) of the memories ``ids``."""
    out: list[str] = []
    for memory_id in ids[:limit]:
        if memory_id in table.rows:
            cell = table.get_cell(memory_id, "content")
            out.append(cell.plain if isinstance(cell, Text) else str(cell))
        else:
            out.append(memory_id)
    return out

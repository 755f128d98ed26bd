"""The inspector's widgets: the memory table (paged as it scrolls), the counts line and the
filter bar, and how memories become cells (literal text, never markup)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from memex.core.literal import one_line

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from memex.core.models import Memory, Stats

CONTENT_COLUMNS = 200
"""Columns of a memory's text shown in its row (the details show all of it)."""
MARK = "●"


def literal(text: str) -> Text:
    """Stored text on one line, as it is: no markup read, control characters escaped."""
    return Text(one_line(text), no_wrap=True)


def clipped(text: str, columns: int) -> str:
    """``text`` cut to ``columns`` characters, ending in "…" when cut."""
    return text if len(text) <= columns else text[: columns - 1] + "…"


def when(memory: Memory) -> str:
    """A memory's creation time, to the minute, in UTC."""
    return memory.created_at.strftime("%Y-%m-%d %H:%M")


def where(memory: Memory) -> str:
    """A memory's scope below its tenant, as ``project/user`` (``-`` for none)."""
    parts = [memory.scope.project or "-", memory.scope.user or "-"]
    return "/".join(parts)


@dataclass(frozen=True, slots=True)
class Selection:
    """What the list shows and an export of the current filter covers: a scope below the
    tenant, kinds, tags and a creation-time window (raw text, checked by the store)."""

    scope: Mapping[str, str] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments ``list``, ``recall`` and ``export`` take for it."""
        return {
            "scope": dict(self.scope) or None,
            "kinds": list(self.kinds) or None,
            "tags": list(self.tags) or None,
            "since": self.since,
            "until": self.until,
        }

    def describe(self) -> str:
        """The selection in a few words."""
        parts = [f"{name}={value}" for name, value in self.scope.items()]
        parts += [f"kind={k}" for k in self.kinds] + [f"tag={t}" for t in self.tags]
        parts += [f"since={self.since}"] if self.since else []
        parts += [f"until={self.until}"] if self.until else []
        return ", ".join(parts) or "every memory"


class MemoryTable(DataTable[Any]):
    """The memories, a row each, keyed by id; tells the app when the end is near."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down"),
        Binding("k", "cursor_up", "Up"),
        Binding("enter", "select_cursor", "Details"),
    ]
    NEAR = 20
    """Rows from the end at which the next page is asked for."""

    class NearEnd(Message):
        """The cursor or the view came within ``NEAR`` rows of the last row."""

    def on_mount(self) -> None:
        """Set up the columns."""
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_column(" ", key="mark", width=1)
        self.add_column("created (UTC)", key="created", width=16)
        self.add_column("kind", key="kind", width=10)
        self.add_column("project/user", key="where", width=14)
        self.add_column("tags", key="tags", width=14)
        self.add_column("memory", key="content")

    def add_memory(self, memory: Memory, marked: bool, score: float | None = None) -> None:
        """Add a row for ``memory`` (once: a memory already shown is skipped)."""
        if memory.id in self.rows:
            return
        text = clipped(one_line(memory.content), CONTENT_COLUMNS)
        content = Text(text, no_wrap=True)
        if score is not None:
            content = Text.assemble((f"{score:.3f} ", "dim"), content)
        self.add_row(
            Text(MARK if marked else ""),
            Text(when(memory)),
            literal(memory.kind),
            literal(clipped(where(memory), 14)),
            literal(clipped(", ".join(memory.tags), 14)),
            content,
            key=memory.id,
        )

    def set_mark(self, memory_id: str, marked: bool) -> None:
        """Show or clear the mark of a row."""
        self.update_cell(memory_id, "mark", Text(MARK if marked else ""))

    def current_id(self) -> str | None:
        """The id of the row under the cursor, if any."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return None if key.value is None else str(key.value)

    def near_end(self) -> bool:
        """Whether the cursor or the view is within ``NEAR`` rows of the last row."""
        if self.cursor_row >= self.row_count - self.NEAR:
            return True
        # Rows are one line high: the last row in view is about scroll_y + height.
        return self.row_count - (self.scroll_y + self.size.height) <= self.NEAR

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Scrolling (by the wheel too) near the end asks for the next page."""
        super().watch_scroll_y(old_value, new_value)
        if new_value > old_value and self.near_end():
            self.post_message(self.NearEnd())

    def watch_cursor_coordinate(self, old: Any, new: Any) -> None:
        """Moving the cursor near the end asks for the next page."""
        super().watch_cursor_coordinate(old, new)
        if new.row > old.row and self.near_end():
            self.post_message(self.NearEnd())


class CountsBar(Static):
    """One line: the store, and its memories by kind (from ``stats``)."""

    def show(self, title: str, stats: Stats | None, marked: int) -> None:
        """Show the counts (None: not read yet)."""
        line = Text()
        line.append(clipped(one_line(title), 40), style="bold")
        if stats is None:
            line.append("  counting…", style="dim")
        else:
            line.append(f"  {stats.memories:,} memories")
            for kind, count in sorted(stats.by_kind.items(), key=lambda kc: (-kc[1], kc[0])):
                line.append("  ·  ")
                line.append(f"{one_line(kind)} {count:,}")
            if stats.read_only:
                line.append(f"  (read-only: {one_line(stats.read_only)})", style="yellow")
        if marked:
            line.append(f"  ·  {marked} marked", style="bold")
        self.update(line)


FILTER_FIELDS = ("kind", "project", "user", "tag", "since", "until")


class FilterBar(Horizontal):
    """An input per filter; kinds and tags take comma-separated lists."""

    def __init__(self, selection: Selection) -> None:
        super().__init__(id="filters")
        self._initial = selection

    def compose(self) -> ComposeResult:
        """An input per filter, filled in from the command line's options."""
        s = self._initial
        values = {
            "kind": ",".join(s.kinds),
            "project": s.scope.get("project", ""),
            "user": s.scope.get("user", ""),
            "tag": ",".join(s.tags),
            "since": s.since or "",
            "until": s.until or "",
        }
        for name in FILTER_FIELDS:
            yield Input(values[name], placeholder=name, id=f"filter-{name}", classes="filter")

    def selection(self, base: Mapping[str, str]) -> Selection:
        """The selection the inputs describe, within the ``base`` scope (agent, session)."""
        value = {
            name: self.query_one(f"#filter-{name}", Input).value.strip() for name in FILTER_FIELDS
        }
        scope = dict(base)
        for name in ("project", "user"):
            scope.pop(name, None)
            if value[name]:
                scope[name] = value[name]
        return Selection(
            scope=scope,
            kinds=_listed(value["kind"]),
            tags=_listed(value["tag"]),
            since=value["since"] or None,
            until=value["until"] or None,
        )


def _listed(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())

"""A keyed table that renders each row once into a cached strip and repaints only what changed.

Textual's DataTable renders every cell through Rich's console machinery (about 0.3 ms a cell
here) and keys all its caches on one table-wide counter and on the table's focus state, so a
figure that changes, a focus change (opening the filter, a dialog) or a scroll re-renders every
visible cell: 130 ms for a 180x50 screen of containers, and 30 ms even with every cell cached.
That was most of the console's CPU at rest and of its key latency. This table keeps one strip
per (row, look) and builds a row's strip from its cells' own segments (a few hundred µs), so a
full repaint of a screen of rows costs a few milliseconds and an updated figure repaints one
line. It covers what the console uses: keyed rows in a given order, a row cursor moved by keys
and mouse, a header, zebra stripes, right-justified cells, and vertical / horizontal scrolling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

if TYPE_CHECKING:
    from typing_extensions import Self

Cell = str | Text
Cells = tuple[Cell, ...]

#: The looks a row strip can have (cached separately: moving the cursor swaps two rows' looks).
_ODD, _EVEN, _CURSOR = 0, 1, 2


@dataclass(slots=True)
class Column:
    key: str
    label: Text
    #: Widest cell (or label) seen in the rows shown; the column is this plus one space a side.
    content_width: int


class RowDoesNotExist(KeyError):
    """No row with that key (mirrors DataTable's error, so callers can catch one name)."""


def as_text(cell: Cell) -> Text:
    """Plain strings stay plain: a container or image name is not Rich markup."""
    return cell if isinstance(cell, Text) else Text(cell)


class FastTable(ScrollView, can_focus=True):
    """Rows keyed by string, shown in the order given, with a row cursor."""

    #: Moving the cursor; a table whose screen binds enter itself uses these alone.
    NAV_BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first_row", "First row", show=False),
        Binding("end,ctrl+end", "last_row", "Last row", show=False),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        *NAV_BINDINGS,
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "fast-table--header",
        "fast-table--cursor",
        "fast-table--even-row",
        "fast-table--odd-row",
    }

    # The look of Textual's DataTable, minus its focus tint: tinting the whole table on focus
    # repaints every row whenever the filter or a dialog takes the focus.
    DEFAULT_CSS = """
    FastTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        & > .fast-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .fast-table--odd-row { }
        & > .fast-table--even-row { background: $surface-lighten-1 50%; }
        &:dark > .fast-table--even-row { background: $surface-darken-1 40%; }
        & > .fast-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .fast-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    class CursorMoved(Message):
        """The cursor is on another row (keys or a click)."""

        def __init__(self, table: FastTable, row_key: str) -> None:
            super().__init__()
            self.table = table
            self.row_key = row_key

        @property
        def control(self) -> FastTable:
            return self.table

    class RowSelected(Message):
        """Enter on the cursor row, or a click on the row the cursor is already on."""

        def __init__(self, table: FastTable, row_key: str, cursor_row: int) -> None:
            super().__init__()
            self.table = table
            self.row_key = row_key
            self.cursor_row = cursor_row

        @property
        def control(self) -> FastTable:
            return self.table

    def __init__(self, *, zebra_stripes: bool = True, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.zebra_stripes = zebra_stripes
        self._columns: list[Column] = []
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, Cells] = {}
        self._strips: dict[tuple[str, int], Strip] = {}
        self._styles: dict[str, Style] | None = None
        self._header: Strip | None = None
        self._cursor = 0
        #: Set between a focus change and Textual's whole-widget repaint that follows it.
        self._quiet = False
        self._sized_for: tuple[Size, Size, Size] | None = None
        #: The content width at the last paint (a full repaint follows any resize).
        self._width = 0
        #: Row strips built so far: what a repaint cost (tests and benches read it).
        self.strips_built = 0

    # -- columns and rows -----------------------------------------------------------------

    def add_column(self, label: str, *, key: str | None = None) -> None:
        text = Text(label)
        self._columns.append(Column(key or label, text, text.cell_len))
        self._relayout()

    @property
    def columns(self) -> dict[str, Column]:
        return {c.key: c for c in self._columns}

    def column_keys(self) -> list[str]:
        return [c.key for c in self._columns]

    @property
    def row_count(self) -> int:
        return len(self._order)

    def put_rows(self, rows: Mapping[str, Cells]) -> bool:
        """Show exactly ``rows``, in their order; only rows whose cells changed (or moved) are
        repainted. Returns whether the set or order of rows changed."""
        order = list(rows)
        reordered = order != self._order
        changed: list[str] = []
        for key, cells in rows.items():
            old = self._cells.get(key)
            if old is not cells and old != cells:
                self._cells[key] = cells
                changed.append(key)
        before, cursor_before = self._order, self._cursor
        if reordered:
            gone = set(self._cells) - set(rows)
            for key in gone:
                del self._cells[key]
            if gone:
                self._strips = {k: v for k, v in self._strips.items() if k[0] not in gone}
            selected = self.selected_key
            self._order = order
            self._index = {key: i for i, key in enumerate(order)}
            if selected in self._index:
                self._cursor = self._index[selected]
            self._cursor = max(0, min(self._cursor, len(order) - 1))
        for key in changed:
            for look in (_ODD, _EVEN, _CURSOR):
                self._strips.pop((key, look), None)
        if changed and self._widen(changed):
            return reordered
        if reordered:
            self._moved(before, cursor_before)
        for key in changed:  # new cells where the row stands (or stood: moved rows are above)
            self.refresh_line(self._index[key] + 1)
        return reordered

    def _moved(self, before: Sequence[str], cursor_before: int) -> None:
        """The rows' set or order changed, the columns did not: every row keeps its strips
        (a strip does not depend on where its row is), and only the lines on screen that now
        show another row, or another look, are repainted. Filtering or clearing a filter
        moved rows that were mostly off screen, and rebuilding and repainting every visible
        row was most of what the key cost."""
        total = sum(c.content_width + 2 for c in self._columns)
        self.virtual_size = Size(total, len(self._order) + 1)  # a layout only if it changed
        visible = self.scrollable_content_region.height - 1 if self.is_mounted else 0
        if visible <= 0 or not self._width:  # not laid out or painted yet: all of it
            self.refresh()
            return
        top = round(self.scroll_y)
        order = self._order
        for index in range(top, top + visible):
            was = before[index] if index < len(before) else None
            now = order[index] if index < len(order) else None
            if was != now or (index == cursor_before) != (index == self._cursor):
                self.refresh_line(index + 1)

    def clear(self, columns: bool = False) -> None:
        self._order, self._index, self._cells = [], {}, {}
        self._cursor = 0
        if columns:
            self._columns = []
        self._relayout()

    def get_row(self, key: str) -> list[Cell]:
        try:
            return list(self._cells[key])
        except KeyError:
            raise RowDoesNotExist(key) from None

    def get_row_at(self, index: int) -> list[Cell]:
        return self.get_row(self._order[index])

    def get_row_index(self, key: str) -> int:
        try:
            return self._index[key]
        except KeyError:
            raise RowDoesNotExist(key) from None

    @property
    def row_keys(self) -> list[str]:
        return list(self._order)

    # -- cursor ---------------------------------------------------------------------------

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def selected_key(self) -> str | None:
        return self._order[self._cursor] if self._order else None

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        if not self._order:
            return
        row = max(0, min(row, len(self._order) - 1))
        if row != self._cursor:
            old, self._cursor = self._cursor, row
            self.refresh_line(old + 1)
            self.refresh_line(row + 1)
            self.post_message(self.CursorMoved(self, self._order[row]))
        if scroll:
            self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.scrollable_content_region.height - 1)
        top = round(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + visible:
            self.scroll_to(y=self._cursor - visible + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self._cursor - max(1, self.scrollable_content_region.height - 2))

    def action_page_down(self) -> None:
        self.move_cursor(row=self._cursor + max(1, self.scrollable_content_region.height - 2))

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=len(self._order) - 1)

    def action_select_cursor(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.RowSelected(self, key, self._cursor))

    def on_click(self, event: events.Click) -> None:
        """First click on a row moves the cursor there; a click on the cursor row selects."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y <= 0:
            return
        row = round(self.scroll_y) + offset.y - 1
        if not 0 <= row < len(self._order):
            return
        if row == self._cursor:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row, scroll=False)

    # -- drawing --------------------------------------------------------------------------

    def _on_focus(self, _event: events.Focus) -> None:
        self._skip_repaint()

    def _on_blur(self, _event: events.Blur) -> None:
        self._skip_repaint()

    def focus(self, scroll_visible: bool = True) -> Self:
        """Textual's focus() repaints the whole widget before the focus moves (see below)."""
        self._quiet = True
        try:
            return super().focus(scroll_visible)
        finally:
            self._quiet = False

    def _skip_repaint(self) -> None:
        """Textual's focus handlers (run right after these, in the same message) repaint the
        whole widget; a focus change here only changes the cursor's look, which
        notify_style_update repaints. Quiet only until that message is handled: a repaint
        asked for by anything else (the rows caught up after a screen above closed) goes
        through."""
        self._quiet = True
        self.call_next(self._end_quiet)

    def _end_quiet(self) -> None:
        self._quiet = False

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        """Textual calls this after every layout of the screen. A ScrollView compares the
        compositor's virtual size (the visible area) with its own (rows x widths), finds them
        unequal every time and repaints its scrollbar: 48 lines and 1.8 KB to the terminal
        for every layout anywhere (opening the help, the filter). Here that happens only when
        the size or the table's own virtual size changed."""
        key = (size, self.virtual_size, container_size)
        if key == self._sized_for:
            return False
        self._sized_for = key
        return super()._size_updated(size, virtual_size, container_size, layout)

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._quiet and not (regions or layout or recompose):
            # Every whole-table repaint of the focus change, not just the first: Textual's
            # style pass asks for one before its focus handler asks again.
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def notify_style_update(self) -> None:
        """A theme or pseudo-class (focus) change: only what changed look is drawn again (a
        focus change repaints the cursor row, not the table)."""
        super().notify_style_update()
        if self._styles is None or not self.is_mounted:
            return
        old = self._styles
        self._styles = None
        new = self._look()
        if (old["even-row"], old["odd-row"]) != (new["even-row"], new["odd-row"]):
            self._strips.clear()
            self._header = None
            super().refresh()  # every row looks different: not a repaint to skip
            return
        if old["header"] != new["header"]:
            self._header = None
            self.refresh(Region(0, 0, max(self._width, 1), 1))
        if old["cursor"] != new["cursor"]:
            self._strips = {k: v for k, v in self._strips.items() if k[1] != _CURSOR}
            self.refresh_line(self._cursor + 1)

    def _look(self) -> dict[str, Style]:
        if self._styles is None:
            self._styles = {
                name: self.get_component_rich_style(f"fast-table--{name}")
                for name in ("header", "cursor", "even-row", "odd-row")
            }
        return self._styles

    def _widen(self, keys: Iterable[str]) -> bool:
        """Grow columns to fit the cells of ``keys``; True (and a full redraw) if any grew."""
        grew = False
        for key in keys:
            for column, cell in zip(self._columns, self._cells[key], strict=False):
                width = cell.cell_len if isinstance(cell, Text) else cell_len(cell)
                if width > column.content_width:
                    column.content_width = width
                    grew = True
        if grew:
            self._relayout(widths=False)
        return grew

    def _relayout(self, widths: bool = True) -> None:
        """Column widths from all rows (when asked), the virtual size, and a full redraw."""
        if widths:
            for index, column in enumerate(self._columns):
                column.content_width = column.label.cell_len
                for cells in self._cells.values():
                    if index < len(cells):
                        cell = cells[index]
                        width = cell.cell_len if isinstance(cell, Text) else cell_len(cell)
                        column.content_width = max(column.content_width, width)
        self._strips.clear()
        self._header = None
        total = sum(c.content_width + 2 for c in self._columns)
        self.virtual_size = Size(total, len(self._order) + 1)
        self.refresh()

    def _strip_of(self, cells: Iterable[Cell], base: Style, over: Style | None) -> Strip:
        """One row: each cell padded to its column, the row's look under the cells' own
        styles (or, for the cursor, over them)."""
        console = self.app.console
        self.strips_built += 1
        segments: list[Segment] = []
        for column, cell in zip(self._columns, cells, strict=False):
            text = as_text(cell)
            width = column.content_width
            if text.cell_len > width:
                text = text.copy()
                text.truncate(width, overflow="ellipsis")
            pad = width - text.cell_len
            left = pad if text.justify == "right" else 0
            segments.append(Segment(" " * (1 + left), base))
            for segment in text.render(console, end=""):
                style = base + segment.style if segment.style else base
                segments.append(Segment(segment.text, style + over if over else style))
            segments.append(Segment(" " * (1 + pad - left), base))
        return Strip(segments).simplify()

    def _row_strip(self, index: int) -> Strip:
        key = self._order[index]
        if index == self._cursor:
            look = _CURSOR
        else:
            look = _EVEN if index % 2 and self.zebra_stripes else _ODD
        strip = self._strips.get((key, look))
        if strip is None:
            styles = self._look()
            if look == _CURSOR:
                base = styles["odd-row"] + styles["cursor"]
                strip = self._strip_of(self._cells[key], base, styles["cursor"])
            else:
                base = styles["even-row" if look == _EVEN else "odd-row"]
                strip = self._strip_of(self._cells[key], base, None)
            self._strips[(key, look)] = strip
        return strip

    def render_lines(self, crop: Region) -> list[Strip]:
        # Asked once per paint, not per line: Textual's region properties look the widget up
        # in the screen's layout each time they are read.
        self._width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def refresh_line(self, y: int) -> None:
        """Repaint content line ``y`` (the header is line 0), without asking for the size."""
        self.refresh(Region(0, y - round(self.scroll_y), max(self._width, 1), 1))

    def render_line(self, y: int) -> Strip:
        width = self._width
        scroll_x, scroll_y = self.scroll_offset
        styles = self._look()
        if y == 0:
            if self._header is None:
                self._header = self._strip_of(
                    (c.label for c in self._columns), styles["header"], None
                )
            strip, fill = self._header, styles["header"]
        else:
            index = scroll_y + y - 1
            if index >= len(self._order):
                return Strip.blank(width, styles["odd-row"])
            strip, fill = self._row_strip(index), styles["odd-row"]
        return strip.crop_extend(scroll_x, scroll_x + width, fill)


__all__ = ["Cell", "Cells", "Column", "FastTable", "RowDoesNotExist"]

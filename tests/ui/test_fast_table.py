"""The containers' table widget: what it shows, how the cursor moves, and what a change repaints."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Input

from gpuconsole.ui.widgets.fast_table import Cells, FastTable

ROWS = 60


def rows(n: int = ROWS, cpu: dict[int, str] | None = None) -> dict[str, Cells]:
    cpu = cpu or {}
    return {
        f"k{i}": (f"box-{i}", Text(cpu.get(i, "0.0%"), justify="right"), Text("Up", style="green"))
        for i in range(n)
    }


class TableApp(App[None]):
    CSS = "FastTable { height: 1fr; }"

    def __init__(self) -> None:
        super().__init__()
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield Input(id="other")
        yield FastTable(id="t")

    def on_mount(self) -> None:
        t = self.query_one(FastTable)
        for key, label in (("name", "Name"), ("cpu", "CPU %"), ("status", "Status")):
            t.add_column(label, key=key)
        t.put_rows(rows())
        t.focus()

    def on_fast_table_row_selected(self, message: FastTable.RowSelected) -> None:
        self.selected.append(message.row_key)


def line(t: FastTable, y: int) -> str:
    return t.render_line(y).text


async def test_a_changed_figure_repaints_its_row_only() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.pause()
        assert line(t, 0).split() == ["Name", "CPU", "%", "Status"]
        assert line(t, 4).split() == ["box-3", "0.0%", "Up"]
        built = t.strips_built
        t.put_rows(rows(cpu={3: "97.5%"}))
        await pilot.pause()
        assert line(t, 4).split() == ["box-3", "97.5%", "Up"]
        # One row redrawn (the same figures again redraw nothing).
        assert t.strips_built - built == 1
        t.put_rows(rows(cpu={3: "97.5%"}))
        await pilot.pause()
        assert t.strips_built - built == 1


async def test_right_justified_cells_and_a_wider_value_widens_its_column() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.pause()
        header = line(t, 0)
        # "0.0%" is right-aligned under "CPU %" (the header is wider than the figures).
        assert line(t, 1).index("0.0%") + 4 == header.index("CPU %") + 5
        t.put_rows(rows(cpu={0: "1234.5%"}))
        await pilot.pause()
        assert "1234.5%" in line(t, 1)
        assert line(t, 2).index("0.0%") + 4 == line(t, 1).index("1234.5%") + 7


async def test_keys_move_the_cursor_and_keep_it_in_view() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.press("down", "down")
        assert t.selected_key == "k2"
        await pilot.press("end")
        await pilot.pause()
        assert t.selected_key == f"k{ROWS - 1}"
        assert f"box-{ROWS - 1}" in "".join(line(t, y) for y in range(t.size.height))
        await pilot.press("home")
        await pilot.pause()
        assert t.selected_key == "k0" and "box-0" in line(t, 1)
        await pilot.press("pagedown")
        assert t.cursor_row > 10
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == [t.selected_key]


async def test_the_cursor_follows_its_row_when_rows_come_and_go() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        t.move_cursor(row=5)
        fewer = {k: v for k, v in rows().items() if k not in ("k0", "k1")}
        t.put_rows(fewer)
        await pilot.pause()
        assert t.selected_key == "k5" and t.cursor_row == 3
        assert t.row_count == ROWS - 2


async def test_click_moves_the_cursor_and_a_second_click_selects() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.click(FastTable, offset=(2, 4))  # line 0 is the header
        assert t.selected_key == "k3" and app.selected == []
        await pilot.click(FastTable, offset=(2, 4))
        await pilot.pause()
        assert app.selected == ["k3"]


async def test_the_cursor_row_looks_different_with_and_without_focus() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.pause()

        def cursor_bg() -> Any:
            return next(s.style.bgcolor for s in t.render_line(1) if s.style and s.text.strip())

        focused = cursor_bg()
        other_bg = next(s.style.bgcolor for s in t.render_line(3) if s.style and s.text.strip())
        assert focused != other_bg
        app.query_one("#other", Input).focus()
        await pilot.pause()
        assert cursor_bg() != focused
        t.focus()
        await pilot.pause()
        assert cursor_bg() == focused


async def test_rows_that_go_and_come_back_keep_their_strips() -> None:
    """A filter that hides rows and a cleared filter that shows them again: every row keeps its
    strip (where it stands does not change how it looks), and what is shown is right."""
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.pause()
        built = t.strips_built
        # Rows off screen go (most of a filter's work on a long table): nothing to build.
        t.put_rows({k: v for k, v in rows().items() if int(k[1:]) < 30})
        await pilot.pause()
        assert t.row_count == 30 and t.strips_built == built
        t.put_rows(rows())
        await pilot.pause()
        assert t.row_count == ROWS and t.strips_built == built
        # Rows on screen go: the rest move up and each line shows its new row; only the rows
        # that come into view and the cursor's new row are built.
        t.put_rows({k: v for k, v in rows().items() if k not in ("k1", "k2")})
        await pilot.pause()
        assert line(t, 1).split()[0] == "box-0"
        assert line(t, 2).split()[0] == "box-3"
        assert line(t, 3).split()[0] == "box-4"
        assert t.strips_built - built <= 3
        t.put_rows(rows())
        await pilot.pause()
        assert [line(t, y).split()[0] for y in range(1, 5)] == [f"box-{i}" for i in range(4)]


async def test_a_wider_cell_after_a_reorder_redraws_every_row() -> None:
    """Strips are kept across reorders only while the columns keep their widths."""
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.pause()
        wide = {k: v for k, v in rows().items() if k != "k0"}
        wide["k1"] = ("box-1-with-a-much-longer-name", *wide["k1"][1:])
        t.put_rows(wide)
        await pilot.pause()
        assert line(t, 1).startswith(" box-1-with-a-much-longer-name")
        assert line(t, 2).index("0.0%") == line(t, 1).index("0.0%")


async def test_a_row_that_changes_while_others_go_is_repainted_where_it_stands() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        t = app.query_one(FastTable)
        await pilot.pause()
        repainted: list[int] = []
        real = t.refresh_line

        def recording(y: int) -> None:
            repainted.append(y)
            real(y)

        t.refresh_line = recording  # type: ignore[method-assign]
        fewer = {k: v for k, v in rows(cpu={3: "55.5%"}).items() if k != "k50"}
        t.put_rows(fewer)  # k50 off screen goes; k3 stays at its line with a new figure
        await pilot.pause()
        assert repainted == [4]  # nothing else on screen moved
        assert line(t, 4).split() == ["box-3", "55.5%", "Up"]

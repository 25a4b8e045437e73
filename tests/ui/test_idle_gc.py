"""Full collections at moments without input (ui/gc_settle.py), and the details body rendered
once per width (ui/widgets/rendered_once.py), and a fixed-height text line repainted without a
layout (ui/widgets/text_line.py)."""

from __future__ import annotations

import gc

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Static

from gpuconsole.ui import gc_settle
from gpuconsole.ui.widgets.rendered_once import RenderedOnce, _LinesByWidth
from gpuconsole.ui.widgets.text_line import TextLine


def test_the_collector_defers_full_collections_to_idle_moments() -> None:
    before = gc.get_threshold()
    collector = gc_settle.IdleCollector()
    assert not collector.tick()  # not started: Python's own schedule
    collector.start()
    try:
        assert gc.get_threshold()[:2] == before[:2]  # the young generations as they were
        assert gc.get_threshold()[2] > 10**6  # no automatic full collection
        for _ in range(gc_settle.FULL_AFTER):
            gc.collect(1)  # what allocation does: middle collections, each counted for gen 2
        collector.input_seen()
        now = collector.last_input
        assert not collector.tick(now)  # due, but a key was just pressed
        assert collector.tick(now + gc_settle.IDLE_S)  # input paused: made
        assert gc.get_count()[2] == 0 and collector.collections == 1
        assert not collector.tick(now + 10)  # nothing due
        for _ in range(gc_settle.OVERDUE):
            gc.collect(1)
        collector.input_seen()
        assert collector.tick()  # long overdue: made even while keys come
    finally:
        collector.stop()
    assert gc.get_threshold() == before


def test_two_collectors_restore_the_thresholds_when_both_stopped() -> None:
    before = gc.get_threshold()
    a, b = gc_settle.IdleCollector(), gc_settle.IdleCollector()
    a.start()
    b.start()
    a.stop()
    assert gc.get_threshold()[2] > 10**6  # b still runs
    b.stop()
    assert gc.get_threshold() == before


def details_like() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for i in range(30):
        grid.add_row(f"Label {i}", Text(f"value {i} " + "x" * (i * 7), style="green"))
    return grid


class Side(App[None]):
    CSS = "Static { width: 70; }"

    def compose(self) -> ComposeResult:
        table = details_like()
        yield RenderedOnce(table, id="once")
        yield Static(table, id="plain")


async def test_rendered_once_shows_what_a_static_shows_rendering_it_once() -> None:
    app = Side()
    async with app.run_test(size=(80, 200)) as pilot:
        await pilot.pause()
        once = app.query_one("#once", RenderedOnce)
        plain = app.query_one("#plain", Static)
        assert once.size == plain.size and once.size.height > 30  # values wrap
        assert [once.render_line(y).text for y in range(once.size.height)] == [
            plain.render_line(y).text for y in range(plain.size.height)
        ]
        visual = once.render()
        assert isinstance(visual, _LinesByWidth)
        assert visual.renders == 1  # the layout's height and the paint: one render
        once.update(details_like())  # another container: rendered again, once
        await pilot.pause()
        assert isinstance(once.render(), _LinesByWidth) and once.render() is not visual
        assert once.render().renders == 1  # type: ignore[attr-defined]
        once.update("Loading…")  # text: Textual's own path
        await pilot.pause()
        assert "Loading…" in once.render_line(0).text


class Lines(App[None]):
    CSS = "#fixed { height: 1; } #free { height: auto; }"

    def compose(self) -> ComposeResult:
        yield TextLine("one", id="fixed")
        yield TextLine("one", id="free")


async def test_a_fixed_height_line_repaints_without_a_layout() -> None:
    app = Lines()
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        fixed, free = app.query_one("#fixed", TextLine), app.query_one("#free", TextLine)
        layouts = fixed._layout_updates, free._layout_updates
        fixed.set_text(Text("two"))
        free.set_text(Text("two\nlines"))
        assert fixed._layout_updates == layouts[0]
        assert free._layout_updates == layouts[1] + 1
        await pilot.pause()
        assert fixed.render_line(0).text.startswith("two")
        assert free.size.height == 2

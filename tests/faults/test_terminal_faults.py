"""The terminal shrunk to 20x10 and back under the running console: the containers screen, the
GPU screen over a recording, the help panel and the launch form. Nothing may crash while it is
tiny, and once it is big again the content is whole: the header, the rows, the graphs."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.containers import ContainersScreen
from gpuconsole.ui.screens.gpus import GpuScreen
from gpuconsole.ui.screens.launch_form import LaunchForm
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.help_panel import HelpPanel

from fakes import H100_RECORDING, SteppedReplay
from support import host_at
from uihelpers import until

BIG = (140, 40)
SIZES = [(20, 10), (1, 1)]  # tiny, absurd — then back


def screen_text(app: GpuconsoleApp) -> str:
    """What the terminal shows now, line by line (the composed screen, modal layers included)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


async def shrink_and_grow(app: GpuconsoleApp, pilot: Any) -> None:
    for cols, rows in SIZES:
        await pilot.resize_terminal(cols, rows)
        await pilot.pause(0.3)
        assert app.is_running and app.size == (cols, rows)
        screen_text(app)  # it can be drawn at that size
    await pilot.resize_terminal(*BIG)
    await pilot.pause(0.5)
    assert app.size == BIG


async def test_containers_screen_comes_back_whole(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    app = GpuconsoleApp(host_at(), refresh_seconds=0.5)
    async with app.run_test(size=BIG) as pilot:
        table = app.screen.query_one(ContainersTable)
        await until(pilot, lambda: c.id in table.containers, what="the container's row")
        await until(pilot, lambda: c.name in screen_text(app), what="the row on screen")
        await shrink_and_grow(app, pilot)
        assert isinstance(app.screen, ContainersScreen)
        await until(pilot, lambda: c.name in screen_text(app), what="the row back on screen")
        after = screen_text(app)
        lines = after.splitlines()
        assert len(lines) == BIG[1] and "gpuconsole" in lines[0]  # the host line on top
        header = lines[1].split()
        assert header[:3] == ["Name", "Image", "Status"] and "Memory" in header
        assert "s Start" in lines[-1] and "palette" in lines[-1]  # the whole footer again
        rows = [line for line in lines[2:-1] if len(line.strip()) > 20]  # not the scrollbar
        assert len(rows) >= min(len(table.containers), BIG[1] - 5)  # the table fills again
        await pilot.press("down", "up")  # still answers keys
        assert table.selected_id is not None


async def test_gpu_screen_over_a_recording_comes_back_whole() -> None:
    source = SteppedReplay(step=2.0, limit=12)  # through the 20 GiB allocation
    app = GpuconsoleApp(host_at(gpu=source), gpu_interval=0.02, replay_name=H100_RECORDING.name)
    async with app.run_test(size=BIG) as pilot:
        await until(pilot, lambda: source.calls >= 12, what="12 samples")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, GpuScreen), what="the GPU screen")
        await until(pilot, lambda: "700W" in screen_text(app), what="the power graph")
        before = screen_text(app)
        await shrink_and_grow(app, pilot)
        assert isinstance(app.screen, GpuScreen)
        await until(pilot, lambda: "700W" in screen_text(app), what="the graphs redrawn")
        after = screen_text(app)
        for word in ("REPLAY", "memory", "power", "utilization", "Processes", "GPU 0"):
            assert word in after, word
        assert "█" in after  # the graphs hold their history, drawn again at full size
        assert len(after.splitlines()) == len(before.splitlines()) == BIG[1]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="back")


async def test_help_panel_comes_back_whole() -> None:
    app = GpuconsoleApp(host_at(), refresh_seconds=0.5)
    async with app.run_test(size=BIG) as pilot:
        await pilot.press("question_mark")
        panel = app.screen.query_one(HelpPanel)
        await until(pilot, lambda: panel.is_open, what="the help")
        await until(pilot, lambda: "Quit" in screen_text(app), what="the help on screen")
        await shrink_and_grow(app, pilot)
        assert panel.is_open
        await until(pilot, lambda: "Quit" in screen_text(app), what="the help redrawn")
        after = screen_text(app)
        for word in ("Start", "Stop", "Filter", "Quit"):
            assert word in after, word
        await pilot.press("escape")
        await until(pilot, lambda: not panel.is_open, what="the help closed")


async def test_launch_form_keeps_what_was_typed(tmp_path: Any) -> None:
    app = GpuconsoleApp(host_at(), refresh_seconds=0.5, config_path=tmp_path / "config.toml")
    async with app.run_test(size=BIG) as pilot:
        await pilot.press("n")
        await until(
            pilot,
            lambda: isinstance(app.screen, LaunchForm) and bool(app.screen.query("#f-memory")),
            what="the launch form",
        )
        await pilot.pause(0.2)
        form = app.screen
        form.query_one("#f-memory", Input).value = "3g"
        await shrink_and_grow(app, pilot)
        assert app.screen is form and form.query_one("#f-memory", Input).value == "3g"
        await until(pilot, lambda: "3g" in screen_text(app), what="the form redrawn")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="the table")

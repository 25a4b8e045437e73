"""The shell keys in the console, driven with Pilot up to the hand-over (a headless app has no
terminal to give: it must say so and leave everything as it was), against the real engine.

The hand-over itself — the shell on the real terminal and the console coming back — is driven
in tmux by tests/e2e/test_shell.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.handover import NO_TERMINAL
from gpuconsole.ui.screens.confirm import ConfirmScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable

from support import host_at
from uihelpers import engine_until, notifications, until


@contextlib.asynccontextmanager
async def console_on(c: Any, **options: Any) -> AsyncIterator[tuple[GpuconsoleApp, Any, Any]]:
    """The console on the real engine with ``c``'s row selected."""
    app = GpuconsoleApp(host_at(), **{"refresh_seconds": 0.5, **options})
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.screen.query_one(ContainersTable)
        await until(pilot, lambda: c.id in table.containers, what="the row")
        table.select_id(c.id)
        yield app, pilot, table


def _shells_in(c: Any) -> int:
    """Processes in the container other than its sleep (a shell the console left behind)."""
    top = c.top(ps_args="-o pid,comm")
    return sum(1 for row in top["Processes"] if "sleep" not in " ".join(row))


async def test_e_opens_the_session_and_says_there_is_no_terminal_to_hand_over(
    make_container: Callable[..., Any],
) -> None:
    c = make_container("sleep 3600")
    async with console_on(c) as (app, pilot, table):
        await pilot.press("e")
        await until(pilot, lambda: NO_TERMINAL in " ".join(notifications(app)), what="the note")
        assert not any(m.paused for m in app.fleet), "the monitors run again"
        assert table.selected_id == c.id
        # The session was opened (the engine ran the exec) and closed again: nothing left.
        await engine_until(lambda: _shells_in(c) == 0, what="the exec to end")


async def test_e_on_a_stopped_container_offers_to_start_it(
    make_container: Callable[..., Any],
) -> None:
    c = make_container("sleep 3600", start=False)
    async with console_on(c) as (app, pilot, _table):
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")

        def running() -> bool:
            c.reload()
            return bool(c.status == "running")

        await engine_until(running, what="the start")
        await until(pilot, lambda: NO_TERMINAL in " ".join(notifications(app)), what="the shell")


async def test_read_only_console_refuses_shells(make_container: Callable[..., Any]) -> None:
    c = make_container("sleep 3600")
    async with console_on(c, read_only=True) as (app, pilot, _table):
        for key in ("e", "E"):
            await pilot.press(key)
        await pilot.pause(0.5)
        said = " ".join(notifications(app))
        assert "read-only" in said.lower() and "shell" in said
        assert NO_TERMINAL not in said, "no session was opened"
        assert _shells_in(c) == 0


async def test_a_bad_shell_setting_is_an_inline_error(make_container: Callable[..., Any]) -> None:
    c = make_container("sleep 3600")
    async with console_on(c, shell_command="bash -c 'unclosed") as (app, pilot, _table):
        await pilot.press("e")
        await until(pilot, lambda: "cannot be split" in " ".join(notifications(app)), what="it")
        assert "bash -c 'unclosed" in " ".join(notifications(app))
        assert NO_TERMINAL not in " ".join(notifications(app)), "nothing was handed over"
        assert app.is_running and not any(m.paused for m in app.fleet)


def test_paused_monitors_ask_nothing_and_resume_at_once() -> None:
    from gpuconsole.monitor.events import ContainersUpdated
    from gpuconsole.monitor.fleet import Fleet

    host = host_at()
    seen: list[float] = []
    fleet = Fleet(
        [host],
        lambda e: seen.append(time.monotonic()) if isinstance(e, ContainersUpdated) else None,
        refresh_seconds=0.2,
    )
    fleet.start()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(seen) >= 2
        fleet.pause()
        time.sleep(0.5)  # a refresh in flight may still land
        count = len(seen)
        time.sleep(1.0)
        assert len(seen) == count, "no refresh while paused"
        resumed = time.monotonic()
        fleet.resume()
        while len(seen) == count and time.monotonic() < resumed + 5:
            time.sleep(0.02)
        assert len(seen) > count and seen[count] - resumed < 1.0, "a refresh at once on resume"
    finally:
        fleet.stop()
        host.close()


@pytest.mark.parametrize("read_only", [False, True])
async def test_details_show_the_shell_and_logs_keys(
    make_container: Callable[..., Any], read_only: bool
) -> None:
    from gpuconsole.ui.screens.details import DetailsScreen

    c = make_container("sleep 3600")
    async with console_on(c, read_only=read_only) as (app, pilot, _table):
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen), what="details")
        await pilot.pause(0.5)
        from gpuconsole.ui.widgets.footer import QuietFooter

        footer = app.screen.query_one(QuietFooter).keys_text
        assert "Logs" in footer
        assert ("Shell" in footer) is not read_only, footer

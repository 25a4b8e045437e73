"""Freeze the engine (SIGSTOP) under a running console: it must say so within seconds, keep its
last rows greyed with their age, keep every key working, and come back at once on SIGCONT."""

from __future__ import annotations

import os
import signal
import time

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.widgets.containers_table import STATUS_COLUMN, ContainersTable
from gpuconsole.ui.widgets.engine_down import EngineDown
from gpuconsole.ui.widgets.help_panel import HelpPanel
from gpuconsole.ui.widgets.host_line import HostLine

from private_engine import PrivateEngine
from support import host_at
from uihelpers import notifications, text_of, until


def dockerd_pid(engine: PrivateEngine) -> int:
    return int((engine.root / "pid").read_text().strip())


async def test_a_frozen_engine_shows_within_seconds_and_recovers_at_once(
    private_engine: PrivateEngine,
) -> None:
    # The engine call's own timeout (8 s) is longer than the monitor's deadline (5 s): the
    # screen must not wait for the timeout to say the engine is silent.
    app = GpuconsoleApp(host_at(private_engine.url, timeout=8), refresh_seconds=0.5)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = app.containers_screen
        table = screen.query_one(ContainersTable)
        line = screen.query_one(HostLine)

        def survivor_status() -> str:
            ids = [cid for cid, c in table.containers.items() if c.name == "survivor"]
            return text_of(table.row_of(ids[0])[STATUS_COLUMN], 200) if ids else ""

        await until(
            pilot,
            lambda: any(c.name == "survivor" for c in table.containers.values()),
            what="the private engine's container",
        )
        assert "not answering" not in survivor_status()

        pid = dockerd_pid(private_engine)
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            await until(
                pilot,
                lambda: "engine not answering for" in text_of(line.content),
                timeout=10,
                what="the header saying the engine is silent",
            )
            said_after = time.monotonic() - frozen_at
            assert said_after <= 10
            assert "engine not answering for" in survivor_status()  # the row, greyed, says so
            assert any("is not answering" in n for n in notifications(app))

            # Every key still works: help opens and closes, the filter takes text.
            await pilot.press("question_mark")
            help_panel = screen.query_one(HelpPanel)
            await until(pilot, lambda: help_panel.display, timeout=2, what="the help")
            await pilot.press("question_mark")
            await until(pilot, lambda: not help_panel.display, timeout=2, what="help closed")

            # An action on the silent engine ends with a message, not a hung console.
            await pilot.press("s")
            await until(
                pilot,
                lambda: any("did not answer" in n for n in notifications(app)),
                timeout=15,
                what="the start timing out with a message",
            )
            assert any("once the engine answers" in n for n in notifications(app))

            # Past the engine call's own timeout the rows stay (a hung engine is not a gone
            # one), the note keeps ageing, and the no-engine panel does not replace them.
            await until(
                pilot,
                lambda: screen.down_since.get("local") is not None,
                timeout=15,
                what="the call's timeout",
            )
            await pilot.pause(1.5)
            assert table.display and not screen.query_one(EngineDown).display
            assert any(c.name == "survivor" for c in table.containers.values())
            assert "engine not answering for" in survivor_status()
            assert "engine not answering for" in text_of(line.content)
        finally:
            os.kill(pid, signal.SIGCONT)
        thawed_at = time.monotonic()
        await until(
            pilot,
            lambda: (
                "not answering" not in text_of(line.content)
                and "not answering" not in survivor_status()
            ),
            timeout=10,
            what="the list live again",
        )
        back_after = time.monotonic() - thawed_at
        assert back_after <= 10
        assert any("is back" in n or "answers again" in n for n in notifications(app))
        print(f"said after {said_after:.1f} s, back after {back_after:.1f} s")

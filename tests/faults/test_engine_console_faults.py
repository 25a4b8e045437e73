"""The engine failing under a running console (Textual Pilot) and under ``ps``: dockerd killed
and restarted while the console follows its events; containerd killed under both.

(dockerd frozen under the console is tests/ui/test_engine_hung.py.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from engine_faults import (
    QUICK_STOP,
    Faults,
    api,
    assert_clean_failure,
    containerd_pid,
    gc,
    notifications,
    remove,
    text_of,
    until,
)

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.engine_down import EngineDown

from private_engine import PrivateEngine
from support import TEST_IMAGE, host_at


def state_of(table: ContainersTable, name: str) -> str | None:
    for c in table.containers.values():
        if c.name == name:
            return c.state
    return None


def create(engine: PrivateEngine, name: str) -> str:
    client = api(engine)
    try:
        return str(
            client.create_container(
                TEST_IMAGE,
                list(QUICK_STOP),
                name=name,
                host_config=client.create_host_config(network_mode="none"),
            )["Id"]
        )
    finally:
        client.close()


def start(engine: PrivateEngine, name: str) -> None:
    client = api(engine)
    try:
        client.start(name)
    finally:
        client.close()


async def test_events_work_again_after_the_engine_is_killed_and_restarted(
    private_engine: PrivateEngine, faults: Faults
) -> None:
    """dockerd SIGKILLed under the console: it shows the no-engine panel naming the engine;
    restarted, the list comes back, and a container another client starts then shows as
    running at once — from the engine's events, not the (here one-minute) refresh."""
    create(private_engine, "late")
    host = host_at(private_engine.url, timeout=3)
    app = GpuconsoleApp(host, refresh_seconds=0.5)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            screen = app.screen
            poller = screen.poller  # type: ignore[attr-defined]
            poller.down_interval = 0.5
            table = screen.query_one(ContainersTable)
            panel = screen.query_one(EngineDown)
            await until(pilot, lambda: state_of(table, "late") == "created", what="the list")

            await asyncio.to_thread(faults.kill)
            await until(pilot, lambda: panel.display, timeout=20, what="the no-engine panel")
            assert private_engine.url in text_of(panel)
            assert "no engine is listening" in text_of(panel)

            await asyncio.to_thread(private_engine.start)
            await until(
                pilot,
                lambda: table.display and state_of(table, "late") == "created",
                timeout=30,
                what="the list to come back",
            )
            assert any("is back" in n for n in notifications(app))

            # From now on only an engine event can refresh the list within the minute.
            poller.interval = 60.0
            await pilot.pause(1.0)  # the refresh in progress, if any, is over
            await asyncio.to_thread(start, private_engine, "late")
            started = time.monotonic()
            await until(
                pilot,
                lambda: state_of(table, "late") == "running",
                timeout=15,  # events reconnect with a backoff of at most 5 s
                what="the container another client started",
            )
            assert time.monotonic() - started < 15
            assert not panel.display
    finally:
        remove(private_engine, "late")


async def test_containerd_killed_under_the_console_and_ps(
    private_engine: PrivateEngine, faults: Faults
) -> None:
    """The private dockerd's own containerd SIGKILLed: dockerd still answers, so the console
    keeps its list (no panel, no crash) and ``ps`` works; starting a container fails in words
    until dockerd has restarted containerd, then works — and the console shows it."""
    create(private_engine, "held")
    host = host_at(private_engine.url, timeout=10)
    app = GpuconsoleApp(host, refresh_seconds=0.5)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            screen = app.screen
            table = screen.query_one(ContainersTable)
            panel = screen.query_one(EngineDown)
            await until(pilot, lambda: state_of(table, "held") == "created", what="the list")

            old = containerd_pid(private_engine)
            assert old is not None, "the private dockerd runs no containerd of its own"
            os.kill(old, signal.SIGKILL)

            listed = await asyncio.to_thread(gc, private_engine, "ps", "-a")
            assert listed.returncode == 0, listed.stderr
            assert "held" in listed.stdout and "survivor" in listed.stdout

            refused = await asyncio.to_thread(gc, private_engine, "start", "held")
            if refused.returncode != 0:  # containerd not back yet (it takes dockerd ~10 s)
                assert_clean_failure(refused.stdout, refused.stderr, refused.returncode)
                assert "start held:" in refused.stderr and "containerd" in refused.stderr

            await pilot.pause(1.5)  # refreshes went on meanwhile
            assert not panel.display
            assert table.display and state_of(table, "held") in ("created", "running")

            def containerd_back() -> bool:
                now = containerd_pid(private_engine)
                return now is not None and now != old

            deadline = time.monotonic() + 40
            while not containerd_back():
                assert time.monotonic() < deadline, "dockerd did not restart containerd"
                await pilot.pause(0.5)

            while refused.returncode != 0:  # dockerd reconnects to the new one, then starts it
                assert time.monotonic() < deadline, refused.stderr
                refused = await asyncio.to_thread(gc, private_engine, "start", "held")
                assert "Traceback" not in refused.stderr
            await until(pilot, lambda: state_of(table, "held") == "running", what="held running")
            assert not panel.display
    finally:
        remove(private_engine, "held")

"""Kill the engine under a running console: it must say so, keep retrying, and recover."""

from __future__ import annotations

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.engine_down import EngineDown
from gpuconsole.ui.widgets.help_panel import HelpPanel

from private_engine import PrivateEngine
from support import host_at
from uihelpers import text_of, until


async def test_console_shows_a_dead_engine_and_recovers(private_engine: PrivateEngine) -> None:
    host = host_at(private_engine.url, timeout=3)
    app = GpuconsoleApp(host, refresh_seconds=0.5)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = app.screen
        screen.poller.down_interval = 0.5  # type: ignore[attr-defined]
        table = screen.query_one(ContainersTable)
        panel = screen.query_one(EngineDown)

        def survivor_listed() -> bool:
            return table.display and any(c.name == "survivor" for c in table.containers.values())

        await until(pilot, survivor_listed, what="the private engine's container")

        private_engine.stop()
        await until(pilot, lambda: panel.display, timeout=20, what="the no-engine panel")
        text = text_of(panel)
        assert private_engine.url in text
        assert "no engine is listening" in text
        assert "start the engine" in text
        assert not table.display
        await until(
            pilot,
            lambda: "attempt 2" in text_of(panel) or "attempt 3" in text_of(panel),
            what="retries",
        )

        private_engine.start()
        await until(pilot, survivor_listed, timeout=30, what="the list to come back")
        assert not panel.display
        assert any("is back" in n.message for n in app._notifications)


async def test_keys_still_work_while_the_engine_is_down(tmp_path) -> None:  # type: ignore[no-untyped-def]
    host = host_at(f"unix://{tmp_path}/none.sock", timeout=1)
    app = GpuconsoleApp(host, refresh_seconds=0.5)
    async with app.run_test(size=(140, 40)) as pilot:
        panel = app.screen.query_one(EngineDown)
        await until(pilot, lambda: panel.display, what="the no-engine panel")
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        await pilot.press("escape")
        await pilot.pause(0.2)
        await pilot.press("x", "q")  # no hidden filter box may swallow these
        await pilot.pause(0.3)
        assert app.screen.needle == ""  # type: ignore[attr-defined]
    assert app.return_code == 0  # q quit the app


async def test_a_hung_engine_never_freezes_the_console(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An engine that accepts connections but never answers: keys work, and q quits at once."""
    import socket
    import threading
    import time

    path = f"{tmp_path}/hung.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_ignore() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_ignore, daemon=True).start()
    try:
        app = GpuconsoleApp(host_at(f"unix://{path}", timeout=10), refresh_seconds=0.5)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.pause(0.5)  # the first refresh is now stuck waiting for the engine
            await pilot.press("question_mark")
            panel = app.screen.query_one(HelpPanel)
            await until(
                pilot, lambda: panel.is_open, timeout=2, what="the help while the engine hangs"
            )
            await pilot.press("escape")
            started = time.monotonic()
            await pilot.press("q")
        assert time.monotonic() - started < 3  # not the engine's 10 s timeout
    finally:
        stop.set()
        for conn in held:
            conn.close()
        server.close()

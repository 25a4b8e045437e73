"""Driving the console with its keys against the real engine, checking the table and the engine."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.widgets import Input, Static

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.confirm import ConfirmScreen
from gpuconsole.ui.screens.containers import ContainersScreen
from gpuconsole.ui.screens.details import DetailsScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.help_panel import HelpPanel

from support import host_at
from uihelpers import engine_until, notifications, text_of, until


def make_app(read_only: bool = False) -> GpuconsoleApp:
    return GpuconsoleApp(host_at(), read_only=read_only, refresh_seconds=0.5)


def table(app: GpuconsoleApp) -> ContainersTable:
    return app.screen.query_one(ContainersTable)


def row_text(app: GpuconsoleApp, cid: str) -> list[str]:
    return [str(cell) for cell in table(app).row_of(cid)]


def state(c: Any) -> str:
    c.reload()
    return str(c.status)


async def test_table_shows_containers_and_updates_by_diff(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container(
        "while :; do :; done",
        ports={"8888/tcp": ("127.0.0.1", None)},
        labels={"gpuconsole.variant": "jupyter"},
    )
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await until(pilot, lambda: c.id in t.containers, what="the container's row")
        name, image, status, _cpu, _mem, gpus, gpu_mem, variant, ports = row_text(app, c.id)
        assert name == c.name and image == "gpuconsole-test/busybox:1"
        assert status.startswith("Up")
        assert gpus == "-" and gpu_mem == "-" and variant == "jupyter"
        assert ports.startswith("127.0.0.1:") and ports.endswith("→8888/tcp")
        # CPU and memory fill in on the next refresh, without rebuilding the table.
        await until(pilot, lambda: row_text(app, c.id)[3].endswith("%"), what="a CPU figure")
        assert float(row_text(app, c.id)[3].rstrip("%")) > 20
        assert " / " in row_text(app, c.id)[4]
        order_before = t.row_keys
        await pilot.pause(1.2)
        assert t.row_keys == order_before  # refreshed in place: same rows, same order
        host_line = text_of(app.screen.query_one("#hostline", Static))
        assert "engine" in host_line and "running" in host_line


async def test_stop_start_restart_keys_act_on_the_engine(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await until(pilot, lambda: c.id in t.containers)
        t.select_id(c.id)
        await pilot.press("x")
        await engine_until(lambda: state(c) == "exited", what="stop")
        await until(
            pilot,
            lambda: row_text(app, c.id)[2].startswith("Exited"),
            what="the table to show Exited",
        )
        assert t.selected_id == c.id  # cursor kept by key across refreshes
        await pilot.press("s")
        await engine_until(lambda: state(c) == "running", what="start")
        await until(pilot, lambda: row_text(app, c.id)[2].startswith("Up"))
        started = c.attrs["State"]["StartedAt"]
        await pilot.press("r")
        await engine_until(
            lambda: state(c) == "running" and c.attrs["State"]["StartedAt"] != started,
            what="restart",
        )


async def test_remove_asks_warns_and_removes(make_container, docker_client) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await until(pilot, lambda: c.id in t.containers)
        t.select_id(c.id)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = " ".join(text_of(w) for w in app.screen.query(Static))
        assert "no volume mounts" in text and "running" in text
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert await_state(c) == "running"  # cancelled: nothing happened
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await engine_until(
            lambda: not docker_client.containers.list(all=True, filters={"id": c.id}),
            what="removal",
        )
        await until(pilot, lambda: c.id not in t.containers, what="the row to go")


def await_state(c: Any) -> str:
    return state(c)


async def test_filter_and_show_all(make_container) -> None:  # type: ignore[no-untyped-def]
    a = make_container(name=None)
    b = make_container(start=False)
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await until(pilot, lambda: {a.id, b.id} <= set(t.containers))
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*a.name)
        await until(pilot, lambda: set(t.containers) == {a.id}, what="filtering")
        await pilot.press("enter")
        assert app.focused is t
        assert set(t.containers) == {a.id}  # the filter stays after enter
        await pilot.press("escape")
        await until(pilot, lambda: {a.id, b.id} <= set(t.containers))
        await pilot.press("a")  # running only
        await until(
            pilot,
            lambda: b.id not in t.containers and a.id in t.containers,
            what="stopped containers to hide",
        )
        await pilot.press("a")
        await until(pilot, lambda: b.id in t.containers, what="stopped containers to return")


async def test_details_mask_secrets(make_container, tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = make_container(
        environment={"API_TOKEN": "tok-12345", "DB_PASSWORD": "hunter2", "MODE": "train"},
        mem_limit="128m",
        shm_size="256m",
        volumes={str(tmp_path): {"bind": "/workspace", "mode": "rw"}},
    )
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        t = table(app)
        await until(pilot, lambda: c.id in t.containers)
        t.select_id(c.id)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        body = app.screen.query_one("#details-body", Static)
        await until(pilot, lambda: "Loading" not in text_of(body))
        text = text_of(body)
        assert "MODE=train" in text
        assert "tok-12345" not in text and "hunter2" not in text
        assert "API_TOKEN=••••••" in text
        assert "128.0 MiB" in text and "256.0 MiB" in text
        assert f"{tmp_path} → /workspace" in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailsScreen))


async def test_details_of_the_row_the_cursor_rests_on_show_in_the_first_frame(
    make_container,  # type: ignore[no-untyped-def]
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """Fetched while the cursor rests there, so enter shows them at once; then checked again,
    so what changed since (here the container stopped) shows too."""
    from gpuconsole.ui.screens import details as details_screen

    drawn: list[str] = []  # the state in each drawing of the details body, in order
    real = details_screen.render_details

    def recording(d: Any) -> Any:
        drawn.append(d.summary.state)
        return real(d)

    monkeypatch.setattr(details_screen, "render_details", recording)
    c = make_container()
    other = make_container()
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        t = table(app)
        await until(pilot, lambda: {c.id, other.id} <= set(t.containers))
        t.select_id(other.id)
        t.select_id(c.id)
        await pilot.pause(1.0)  # the cursor rests on c
        c.stop(timeout=0)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        body = app.screen.query_one("#details-body", Static)
        await until(pilot, lambda: "exited" in text_of(body), what="the stop, checked again")
        # Drawn first from what was fetched ahead (never "Loading…"), then as it is now.
        assert drawn == ["running", "exited"], drawn
        await pilot.press("escape")
        # A row the cursor never rested on: loaded when opened, as before.
        t.select_id(other.id)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))
        body = app.screen.query_one("#details-body", Static)
        await until(pilot, lambda: "running" in text_of(body), what="the other's details")


async def test_details_opened_again_for_another_container_show_that_one(
    make_container,  # type: ignore[no-untyped-def]
) -> None:
    """One details screen serves every container: each opening shows its own, whole."""
    first = make_container(environment={"WHO": "first"})
    second = make_container(environment={"WHO": "second"})
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        t = table(app)
        await until(pilot, lambda: {first.id, second.id} <= set(t.containers))
        for c, who, other in (
            (first, "WHO=first", "WHO=second"),
            (second, "WHO=second", "WHO=first"),
        ):
            t.select_id(c.id)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailsScreen), what="details")
            title = app.screen.query_one("#details-title", Static)
            body = app.screen.query_one("#details-body", Static)
            await until(pilot, lambda: who in text_of(body), what=who)  # noqa: B023
            assert c.name in text_of(title) and other not in text_of(body)
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="back")


async def test_read_only_refuses_and_says_so(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    app = make_app(read_only=True)
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await until(pilot, lambda: c.id in t.containers)
        t.select_id(c.id)
        for key in ("x", "r", "d", "s"):
            await pilot.press(key)
        await pilot.pause(0.5)
        assert not isinstance(app.screen, ConfirmScreen)
        assert state(c) == "running"
        said = notifications(app)
        assert sum("read-only mode" in n for n in said) == 4
        assert "READ-ONLY" in text_of(app.screen.query_one("#hostline", Static))


async def test_backend_error_is_a_notification_not_a_crash(make_container) -> None:  # type: ignore[no-untyped-def]
    # The engine refuses to start a container whose command does not exist: a real API error.
    c = make_container(["/no/such/binary"], start=False)
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await until(pilot, lambda: c.id in t.containers)
        t.select_id(c.id)
        await pilot.press("s")
        await until(
            pilot,
            lambda: any("/no/such/binary" in n for n in notifications(app)),
            what="an error notification naming the problem",
        )
        assert app.is_running
        await pilot.press("down", "up")  # still responsive
        assert t.selected_id is not None


async def test_help_lists_the_keys() -> None:
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await pilot.press("question_mark")
        panel = app.screen.query_one(HelpPanel)
        # Opening it leaves the focus where it was (a focus change repaints the whole screen).
        await until(pilot, lambda: panel.is_open and t.has_focus)
        text = text_of(panel)
        for key, words in (
            ("s", "Start"),
            ("x", "Stop"),
            ("d", "Remove"),
            ("/", "Filter"),
            ("a", "stopped"),
            ("enter", "Details"),
            ("q", "Quit"),
        ):
            assert key in text and words in text
        # Modal for keys: a key of the screen beneath does nothing while help is open.
        selected = t.selected_id
        await pilot.press("g", "down", "x")
        assert isinstance(app.screen, ContainersScreen) and panel.is_open
        assert t.selected_id == selected
        await pilot.press("escape")
        await until(pilot, lambda: not panel.is_open and t.has_focus)
        # A click anywhere closes it and does nothing else: sent as the terminal driver sends it
        # (Pilot.click skips the app's own event handling). The row is clicked once first, so
        # a click reaching the table would be a second click on it, which opens its details.
        x, y = t.region.x + 2, t.region.y + 3

        async def click() -> None:
            for kind in (events.MouseDown, events.MouseUp):
                app.post_message(kind(None, x, y, 0, 0, 1, False, False, False, x, y))
                await pilot.pause()

        await click()
        await pilot.pause(0.6)  # not a double click
        clicked = t.selected_id
        assert clicked is not None and isinstance(app.screen, ContainersScreen)
        await pilot.press("question_mark")
        await until(pilot, lambda: panel.is_open)
        await click()
        await until(pilot, lambda: not panel.is_open)
        await pilot.pause(0.3)
        assert isinstance(app.screen, ContainersScreen) and t.selected_id == clicked


async def test_mouse_selects_a_row_and_opens_details(make_container) -> None:  # type: ignore[no-untyped-def]
    c = make_container()
    other = make_container()
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        t = table(app)
        await until(pilot, lambda: {c.id, other.id} <= set(t.containers))
        t.select_id(other.id)
        await pilot.pause()
        row = t.get_row_index(t.key_of(c.id))
        # Line 0 of the table is its header: click the container's row, then click it again.
        await pilot.click(ContainersTable, offset=(3, row + 1))
        await until(pilot, lambda: t.selected_id == c.id, what="the click to select the row")
        assert not isinstance(app.screen, DetailsScreen)
        await pilot.click(ContainersTable, offset=(3, row + 1))
        await until(
            pilot,
            lambda: isinstance(app.screen, DetailsScreen),
            what="a second click to open the details",
        )
        # A double click on the selected row that arrives faster than the details can show
        # (two selections in one go): one details screen, which esc closes.
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="back")
        for _ in range(2):
            t.post_message(ContainersTable.RowSelected(t, t.key_of(c.id), row))
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen), what="details again")
        await pilot.pause(0.2)
        assert sum(isinstance(s, DetailsScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ContainersScreen), what="back again")

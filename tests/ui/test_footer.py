"""The one-line footer: the screen's keys, live with the focus, clickable, cheap to change."""

from __future__ import annotations

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input

from gpuconsole.ui.widgets.footer import QuietFooter

from uihelpers import until


class KeysScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("h", "hidden", "Hidden", show=False),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []
        self.stop_allowed = True

    def compose(self) -> ComposeResult:
        yield Input(id="box", disabled=True)  # enabled only while a test types in it
        yield QuietFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop" and not self.stop_allowed:
            return None  # shown, disabled
        return True

    def action_start(self) -> None:
        self.ran.append("start")

    def action_stop(self) -> None:
        self.ran.append("stop")

    def action_reload(self) -> None:
        self.ran.append("reload")


class KeysApp(App[None]):
    def on_mount(self) -> None:
        self.push_screen(KeysScreen())


async def test_footer_shows_the_keys_follows_the_focus_and_runs_a_clicked_key() -> None:
    app = KeysApp()
    async with app.run_test(size=(100, 10)) as pilot:
        screen = app.screen
        assert isinstance(screen, KeysScreen)
        footer = screen.query_one(QuietFooter)
        await until(pilot, lambda: "Start" in footer.keys_text, what="keys shown")
        text = footer.keys_text
        assert "s Start" in text and "x Stop" in text and "Reload" in text
        assert "Hidden" not in text  # show=False stays off the line
        assert "^p" in text  # the command palette key, on the right
        # Focus in a text box: the letter keys type there, so they leave the line.
        box = screen.query_one(Input)
        box.disabled = False
        box.focus()
        await until(pilot, lambda: "Start" not in footer.keys_text, what="letters gone")
        assert "Reload" in footer.keys_text
        box.disabled = True
        screen.set_focus(None)
        await until(pilot, lambda: "Start" in footer.keys_text, what="letters back")
        await pilot.pause()
        # A click on a key runs it (the press, as the terminal sends it).
        start = next(p for p in footer._placed if p.shown.description == "Start")
        footer.post_message(
            events.MouseDown(footer, start.start + 1, 0, 0, 0, 1, False, False, False)
        )
        await until(pilot, lambda: screen.ran == ["start"], what="the clicked key ran")
        # A disabled key: drawn, but a click only rings the bell.
        screen.stop_allowed = False
        screen.refresh_bindings()
        await pilot.pause(0.2)
        stop = next(p for p in footer._placed if p.shown.description == "Stop")
        assert not stop.shown.enabled
        footer.post_message(
            events.MouseDown(footer, stop.start + 1, 0, 0, 0, 1, False, False, False)
        )
        await pilot.pause(0.2)
        assert screen.ran == ["start"]


async def test_footer_repaints_only_when_its_keys_change() -> None:
    app = KeysApp()
    async with app.run_test(size=(100, 10)) as pilot:
        screen = app.screen
        footer = screen.query_one(QuietFooter)
        await until(pilot, lambda: "Start" in footer.keys_text, what="keys shown")
        await pilot.pause(0.2)
        renders = 0
        real = footer.render

        def counted() -> object:
            nonlocal renders
            renders += 1
            return real()

        footer.render = counted  # type: ignore[method-assign]
        for _ in range(3):  # bindings "may have changed", but the shown keys did not
            screen.refresh_bindings()
            await pilot.pause(0.1)
        assert renders == 0
        box = screen.query_one(Input)
        box.disabled = False
        box.focus()
        await until(pilot, lambda: renders > 0, what="a repaint when the keys change")

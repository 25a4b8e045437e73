"""The driver of a console served to a browser (``gpuconsole serve``): Textual's web driver,
plus two rules.

A console whose server went away quits.
The server relays a tab over the console's stdin and stdout. If the server dies without asking
the console to quit (killed, crashed), Textual's web driver just stops reading at end of input
and the console would go on polling its hosts for nobody, holding SSH connections open forever.

A console starts focused. Textual's web driver starts it blurred and waits for the page to say
"focus", but textual-serve's page listens for focus on an element the keyboard's textarea is not
inside, so that never comes: the footer stayed empty until the first key. Our page focuses the
terminal as soon as its socket opens.
"""

from __future__ import annotations

import contextlib

from textual import events, messages
from textual.drivers.web_driver import WebDriver


class ServedDriver(WebDriver):
    def start_application_mode(self) -> None:
        super().start_application_mode()  # posts AppBlur later in the loop: focus after it
        self._app.call_later(self._app.post_message, events.AppFocus())

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if not self.exit_event.is_set():  # end of input, not our own stop: the server is gone
            with contextlib.suppress(RuntimeError):  # the app is already on its way out
                self._app.call_from_thread(self._app.post_message, messages.ExitApp())

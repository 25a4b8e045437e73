"""A terminal driver that hands over a lone Escape in tens of milliseconds, not 100 to 200.

A lone ESC byte may be the start of a key's escape sequence, so a terminal program waits a
moment for more bytes before calling it the Escape key. Textual waits ``ESCDELAY`` (100 ms),
but only notices the wait is over when its input thread's 0.1 s select times out: every
Escape (closing the filter, the details, a dialog) took 100-200 ms before the app saw it, more
than the rest of the work together (bench/tui.py; `?` closing help answered in 57 ms p50 where
Escape took 175). Here the wait is ``ESCDELAY`` (milliseconds, as ncurses reads it) if the user
set one, else 10 ms, tmux's own default since 3.5 (tmux/tmux#3844: a terminal writes a key's
sequence in one piece, and SSH carries it in one packet, so a sequence split across reads is
rare even far away; a user on a link that splits them sets ESCDELAY); and the select wakes up
when it ends, only while an ESC is pending: at rest the thread still sleeps in 0.1 s selects.
"""

from __future__ import annotations

import os
import selectors
from types import SimpleNamespace
from typing import Any

from textual import constants
from textual._xterm_parser import XTermParser
from textual.drivers import linux_driver
from textual.drivers.linux_driver import LinuxDriver

ESCAPE_WAIT = 0.01


class QuickEscapeDriver(LinuxDriver):
    def run_input_thread(self) -> None:
        if "ESCDELAY" not in os.environ:
            setattr(constants, "ESCAPE_DELAY", ESCAPE_WAIT)  # noqa: B010 (a Final of Textual's)
        wait = constants.ESCAPE_DELAY
        parsers: list[Any] = []

        class Parser(XTermParser):
            #: Short selects left to wait for the rest of a sequence after a trailing ESC.
            escape_pending = 0

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                parsers.append(self)

            def feed(self, data: str) -> Any:
                self.escape_pending = 2 if data.endswith("\x1b") else 0
                return super().feed(data)

        class Selector(selectors.SelectSelector):
            def select(self, timeout: float | None = None) -> Any:
                if parsers and parsers[-1].escape_pending and timeout is not None:
                    timeout = min(timeout, wait)
                    parsers[-1].escape_pending -= 1
                return super().select(timeout)

        # run_input_thread builds its parser and selector from these module names.
        module: Any = linux_driver
        saved = module.XTermParser, module.selectors
        module.XTermParser = Parser
        module.selectors = SimpleNamespace(SelectSelector=Selector, EVENT_READ=selectors.EVENT_READ)
        try:
            super().run_input_thread()
        finally:
            module.XTermParser, module.selectors = saved

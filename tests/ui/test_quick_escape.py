"""The terminal driver's Escape: a lone ESC is the Escape key, a key's sequence is that key.

The driver (ui/quick_escape.py) swaps its own parser and selector into Textual's input thread
to wait 10 ms, not 100-200, for the rest of a sequence; this runs a small Textual app on it in
a real pty and reads back the keys it saw, so a Textual upgrade that breaks the swap shows here
(its latency is measured in bench/tui.py, not here).
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support import wait_for

APP = """
import sys
from textual.app import App
from gpuconsole.ui.quick_escape import QuickEscapeDriver

class Keys(App[None]):
    def on_mount(self) -> None:
        print("ready", file=out, flush=True)

    def on_key(self, event) -> None:
        print(event.key, file=out, flush=True)
        if event.key == "q":
            self.exit()

out = open(sys.argv[1], "w")
Keys(driver_class=QuickEscapeDriver).run()
"""


def _keys(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux terminal driver")
def test_escape_alone_and_in_sequences(tmp_path: Path) -> None:
    log = tmp_path / "keys.log"
    main, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("ESCDELAY", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", APP, str(log)], stdin=child, stdout=child, stderr=child, env=env
    )
    os.close(child)

    def drain() -> None:  # the app's screen output, read so that it never blocks on the pty
        while True:
            try:
                if not os.read(main, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    try:
        wait_for(lambda: "ready" in _keys(log), what="the app to start", timeout=30)

        def typed(data: bytes, key: str, count: int = 1) -> None:
            os.write(main, data)
            wait_for(lambda: _keys(log).count(key) >= count, what=f"{key!r} from {data!r}")

        typed(b"\x1b", "escape")  # a lone ESC: the Escape key, without a second key to push it
        typed(b"\x1b[A", "up")  # an arrow's sequence in one write is the arrow, not Escape
        typed(b"\x1bOB", "down")
        typed(b"x", "x")
        typed(b"\x1b", "escape", 2)
        assert _keys(log) == ["ready", "escape", "up", "down", "x", "escape"]
        os.write(main, b"q")
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(main)

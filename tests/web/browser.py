"""A real browser for the web tests and the screenshot script: Debian's chromium driven by
Playwright (no browser download: ``executable_path``), and the console's screen read back as
text from the page's terminal (textual-serve's xterm.js, kept on ``window.gpuconsoleTerminal``)."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

#: The visible screen's lines, as the page's terminal holds them.
SCREEN_JS = """() => {
  const t = window.gpuconsoleTerminal;
  if (!t) return "";
  const lines = [];
  for (let i = 0; i < t.rows; i++) {
    const line = t.buffer.active.getLine(t.buffer.active.viewportY + i);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
}"""


def chromium_path() -> str | None:
    return os.environ.get("GPUCONSOLE_TEST_CHROMIUM") or shutil.which("chromium")


def launch(playwright: Any) -> Any:
    path = chromium_path()
    if path is None:
        raise RuntimeError(
            "no chromium: apt-get install chromium (scripts/test does), or set "
            "GPUCONSOLE_TEST_CHROMIUM to a Chromium binary"
        )
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root cannot use the sandbox
    return playwright.chromium.launch(executable_path=path, args=args)


def screen(page: Any) -> str:
    return str(page.evaluate(SCREEN_JS))


def wait_for_screen(page: Any, *needles: str, timeout: float = 20) -> str:
    """The screen once every needle shows on it; fails with the screen as it was."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(page)
        if all(n in text for n in needles):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needles} never showed in the browser; the screen was:\n{text}")

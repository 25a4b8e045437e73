"""Hand a URL or command to the user's desktop: open a browser, copy to the clipboard.

The TUI calls these; they never raise for a missing tool, they say what they did. The copied
text goes to the clipboard tool on stdin, never on its command line, because a Jupyter URL
carries the token. Over SSH no local clipboard tool can help: ``osc52`` gives the escape
sequence a terminal (or Textual's ``App.copy_to_clipboard``) turns into a clipboard write.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import webbrowser


def open_in_browser(url: str) -> bool:
    """Open ``url`` in a new browser tab; False when no browser can be started here."""
    try:
        return bool(webbrowser.open(url, new=2))
    except webbrowser.Error:
        return False


def osc52(text: str) -> str:
    """The OSC 52 escape sequence that asks the terminal to put ``text`` on the clipboard."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"\x1b]52;c;{payload}\x07"


def clipboard_tools() -> list[list[str]]:
    """Clipboard commands usable in this session, best first (Wayland, X11, macOS)."""
    tools: list[list[str]] = []
    if os.environ.get("WAYLAND_DISPLAY") and shutil.which("wl-copy"):
        tools.append(["wl-copy"])
    if os.environ.get("DISPLAY"):
        if shutil.which("xclip"):
            tools.append(["xclip", "-selection", "clipboard"])
        if shutil.which("xsel"):
            tools.append(["xsel", "--clipboard", "--input"])
    if shutil.which("pbcopy"):
        tools.append(["pbcopy"])
    return tools


def copy_to_clipboard(text: str, timeout: float = 3.0) -> str | None:
    """Copy with the first tool that works; its name, or None (then use ``osc52``)."""
    for command in clipboard_tools():
        try:
            subprocess.run(
                command,
                input=text.encode("utf-8"),
                check=True,
                timeout=timeout,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        return command[0]
    return None

"""The page and the files it loads: our own page around textual-serve's browser terminal.

textual-serve's own page pulls its font from Google and bakes an absolute websocket URL into
the HTML (which breaks when the console is reached through ``ssh -L`` on another port); ours
loads nothing from elsewhere and lets the page find its websocket from its own address.
"""

from __future__ import annotations

import html
import importlib.util
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger("gpuconsole.serve")

HERE = Path(__file__).resolve().parent / "assets"

#: The one change made to textual-serve's bundle: its xterm.js terminal is also kept on
#: ``window`` so that scripts (the browser tests, the screenshot script, a user's bookmarklet)
#: can read the screen's text, which the WebGL renderer otherwise keeps in a canvas.
TERMINAL_NEW = "this.terminal=new "
TERMINAL_EXPOSED = "this.terminal=window.gpuconsoleTerminal=new "


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def textual_serve_static() -> Path:
    spec = importlib.util.find_spec("textual_serve")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "textual-serve is not installed: pip install 'textual-serve>=1.1' (a gpuconsole "
            "dependency) provides the browser terminal"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@cache
def assets() -> dict[str, Asset]:
    """Every file the page loads, read once: they are small and never change while serving."""
    static = textual_serve_static()
    script = (static / "js" / "textual.js").read_text("utf-8")
    if TERMINAL_NEW in script:
        script = script.replace(TERMINAL_NEW, TERMINAL_EXPOSED, 1)
    else:
        log.warning("textual-serve's terminal script changed: the screen's text is not exposed")
    font = static / "fonts" / "RobotoMono-VariableFont_wght.ttf"
    return {
        "textual.js": Asset(script.encode("utf-8"), "text/javascript"),
        "xterm.css": Asset((static / "css" / "xterm.css").read_bytes(), "text/css"),
        "page.css": Asset((HERE / "page.css").read_bytes(), "text/css"),
        "page.js": Asset((HERE / "page.js").read_bytes(), "text/javascript"),
        "RobotoMono.ttf": Asset(font.read_bytes(), "font/ttf"),
    }


def page(title: str, font_size: int) -> str:
    """The console's page; the terminal fills the window."""
    template = (HERE / "page.html").read_text("utf-8")
    return template.replace("{{title}}", html.escape(title)).replace(
        "{{font_size}}", str(font_size)
    )


def refusal_page(status: int, reason: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>gpuconsole</title></head>"
        "<body style='font-family: monospace; background: #0c181f; color: #ddd; padding: 2em'>"
        f"<h1>{status}</h1><p>gpuconsole: {html.escape(reason)}.</p></body></html>"
    )

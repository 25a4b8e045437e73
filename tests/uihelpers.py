"""Helpers for Pilot tests: wait for a condition while the app keeps running."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from textual.pilot import Pilot


async def until(
    pilot: Pilot[object], cond: Callable[[], bool], timeout: float = 30.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")


async def engine_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll the real engine (blocking calls) off the event loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(cond):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")


def notifications(app: object) -> list[str]:
    return [n.message for n in app._notifications]  # type: ignore[attr-defined]


def text_of(item: object, width: int = 200) -> str:
    """What a widget (its content) or a Rich renderable shows, as plain text."""
    import io

    from rich.console import Console
    from textual.widgets import Static

    renderable = item.content if isinstance(item, Static) else item
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()

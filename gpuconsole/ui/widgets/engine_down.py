"""What the screen shows instead of the table while the engine cannot be reached."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gpuconsole.backend.models import HostStatus


class EngineDown(Static):
    def show(self, status: HostStatus, attempt: int, retry_seconds: float) -> None:
        text = Text()
        text.append("Cannot reach the Docker engine\n\n", style="bold red")
        text.append("Address tried: ", style="bold")
        text.append(f"{status.address}\n")
        text.append("Reason:        ", style="bold")
        text.append(f"{status.error or 'unknown'}\n")
        if status.hint:
            text.append("How to fix:    ", style="bold")
            text.append(f"{status.hint}\n")
        text.append(
            f"\nRetrying every {retry_seconds:g} s (attempt {attempt}). "
            "The list comes back by itself when the engine answers.",
            style="dim",
        )
        self.update(text)

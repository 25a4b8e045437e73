"""A Static that repaints only when its text changes.

Static.update asks for a new layout of the whole screen every time, even with the same text;
the header and the GPU status line are set on every sample, so at rest that was a full reflow a
second for nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TextLine(Static):
    _shown: Text | None = None

    def set_text(self, text: Text) -> None:
        if text == self._shown:
            return
        self._shown = text
        self.update(text)

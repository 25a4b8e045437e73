"""A Static that repaints only when its text changes.

Static.update asks for a new layout of the whole screen every time, even with the same text;
the header and the GPU status line are set on every sample, so at rest that was a full reflow a
second for nothing.

A line whose height is fixed in cells (the header: ``height: 1``) cannot change the layout
whatever its text, so its updates repaint it alone: the header says ``filter: TEXT`` on every
key typed in the filter, and each was a reflow of the screen (the table's included) before the
frame that showed the key.
"""

from __future__ import annotations

from rich.text import Text
from textual.css.scalar import Unit
from textual.widgets import Static


class TextLine(Static):
    _shown: Text | None = None

    def set_text(self, text: Text) -> None:
        if text == self._shown:
            return
        self._shown = text
        self.update(text, layout=not self._fixed_size())

    def _fixed_size(self) -> bool:
        """Laid out once, with a height set in cells and a width not taken from its content
        (unset: its container's)."""
        if not self.is_mounted or not self.size:
            return False
        width, height = self.styles.width, self.styles.height
        return (
            height is not None
            and height.unit is Unit.CELLS
            and (width is None or width.unit is not Unit.AUTO)
        )

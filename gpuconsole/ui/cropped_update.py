"""Partial screen updates that write only the cells marked dirty.

Textual turns the regions widgets mark dirty into spans of lines, and each span into the
"chops" (a widget's part of a line) it touches — but it crops a chop at the span's right end
only (``ChopsUpdate.render_segments``: "TODO: crop to x extents"). A chop that starts left of
the span is written from its own start: one cell changed at the right end of a graph's line
wrote the whole line of the graph, and a figure changed at the right of a header line wrote the
header from its first cell. On the GPU screen that was most of what went to the terminal at
rest (the newest column of every graph, the figures in every border). Here each chop is cut to
the span at both ends, so what is written is what changed.
"""

from __future__ import annotations

from rich.console import Console
from rich.control import Control
from textual._compositor import ChopsUpdate, Compositor


class CroppedChopsUpdate(ChopsUpdate):
    """A ChopsUpdate that writes only the cells inside its spans."""

    def render_segments(self, console: Console) -> str:
        sequences: list[str] = []
        append = sequences.append
        move_to = Control.move_to
        last_y = self.spans[-1][0]
        for y, x1, x2 in self.spans:
            for end, (x, strip) in zip(self.chop_ends[y], self.chops[y].items(), strict=False):
                if strip is None or x >= x2 or end <= x1:
                    continue
                start, stop = max(x, x1), min(end, x2)
                if start != x or stop != end:
                    strip = strip.crop(start - x, stop - x)
                append(move_to(start, y).segment.text)
                append(strip.render(console))
            if y != last_y:
                append("\n")
        return "".join(sequences)


class CroppingCompositor(Compositor):
    """A Compositor whose partial updates are CroppedChopsUpdate."""

    def render_partial_update(self) -> ChopsUpdate | None:
        update = super().render_partial_update()
        if update is None or type(update) is not ChopsUpdate:
            return update  # (a Textual whose updates are made otherwise: left as they are)
        return CroppedChopsUpdate(update.chops, update.spans, update.chop_ends)

"""A Static whose Rich renderable (a table) is rendered once per width, not once per use.

Textual renders a Rich renderable in a Static twice for every layout that follows an update:
once to count its lines (the layout asks for the height) and once more to paint them. The
details screen's body is a Rich table of some 30-60 rows of label and value (wrapped values,
padded columns): rendering it was the largest part of what `enter` cost after the screen itself
(about a third of the key's time on this machine, with 100 containers). Here the lines are
rendered once per width, the height is their count, and each paint puts the widget's base style
under the same lines (as Textual's own ``post_render`` does). Text and plain strings go through
Textual's usual path (they are cheap to measure).
"""

from __future__ import annotations

from typing import cast

from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style as RichStyle
from textual._context import active_app
from textual.css.styles import RulesMap
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, RichVisual, Visual
from textual.widget import Widget
from textual.widgets import Static


class _LinesByWidth(RichVisual):
    """A Rich renderable's lines at the last width asked for (a layout, then its paints)."""

    def __init__(self, widget: Widget, renderable: RenderableType) -> None:
        super().__init__(widget, renderable)
        self._width = -1
        self._lines: list[list[Segment]] = []
        #: Times the renderable was rendered (tests read it).
        self.renders = 0

    def lines(self, width: int) -> list[list[Segment]]:
        if width != self._width:
            app = active_app.get()
            options = app.console_options.update(highlight=False).update_width(width)
            segments = app.console.render(self._renderable, options)
            self._lines = list(
                Segment.split_and_crop_lines(segments, width, include_new_lines=False, pad=False)
            )
            self._width = width
            self.renders += 1
        return self._lines

    def get_height(self, rules: RulesMap, width: int) -> int:
        return len(self.lines(width))

    def render_strips(
        self, width: int, height: int | None, style: Style, options: RenderOptions
    ) -> list[Strip]:
        base: RichStyle = style.rich_style
        lines = self.lines(width)
        if height is not None:
            lines = lines[:height]
        return [Strip(list(Segment.apply_style(line, base))) for line in lines]


class RenderedOnce(Static):
    """A Static for a large Rich renderable that is shown as it is (no links, no selection)."""

    _cached: tuple[Visual, _LinesByWidth] | None = None

    def render(self) -> Visual:
        visual = self.visual
        if not isinstance(visual, RichVisual):
            return visual  # Text and strings: Textual's own measure is cheap
        cached = self._cached
        if cached is None or cached[0] is not visual:
            renderable = cast(RenderableType, self.content)
            cached = self._cached = (visual, _LinesByWidth(self, renderable))
        return cached[1]

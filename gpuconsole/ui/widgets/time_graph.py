"""A filled time-series graph with a y scale and a time axis, drawn with eighth-block cells.

Live, a column is a bucket of time (``span`` / columns, aligned on multiples of the bucket's
width, so every graph cuts time the same way whatever its history): a new sample changes the
newest column only, and the graph moves left one column when a bucket ends (every ~11 s for ten
minutes on 53 columns), instead of every column moving every sample. A column shows its
samples' mean, or their peak (memory: what came close to running out); a column without any
sample is a gap.

Drawn in steps that can each be compared with the last sample's: a ``Drawing`` (each column's
level and the time axis: what a user can see), its plain lines (``Drawing.lines``), then styles
(``style_lines``, or ``TimeGraph.render_line`` a line at a time), which follow from the plain
text alone. A sample that draws the same picture repaints nothing (an idle GPU over a full
window); otherwise only the lines that differ are marked dirty, and of them only the columns
whose level moved (live: the cells of the newest column that changed), and Textual asks the
widget for those lines and writes those cells to the terminal (the GPU screen's compositor
crops what Textual would write from a line's start: gpuconsole/ui/cropped_update.py).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

if TYPE_CHECKING:
    from typing_extensions import Self

_BLOCKS = " ▁▂▃▄▅▆▇█"
_DIM = Style(dim=True)
#: Cells between a right-aligned border subtitle's text and the right edge (a blank, a border
#: cell, the corner), and cells of room to spare either side of a change.
_SUBTITLE_RIGHT = 3
_SUBTITLE_SPARE = 1

Values = Sequence[float | int | None]
Label = Callable[[float], str]


def _ago(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"-{seconds / 86400:.0f}d" if seconds % 86400 == 0 else f"-{seconds / 86400:.1f}d"
    if seconds >= 2 * 3600:
        return f"-{seconds / 3600:.0f}h" if seconds % 3600 == 0 else f"-{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"-{seconds / 60:.0f}m" if seconds % 60 == 0 else f"-{seconds / 60:.1f}m"
    return f"-{seconds:.0f}s"


def axis_width(top: float, label: Label) -> int:
    """Columns of the y scale (labels and the axis line) left of the plot."""
    return max(len(label(top)), len(label(0))) + 1


def _column(eighths: int | None, rows: int, cache: dict[int | None, str]) -> str:
    """One sample's column, top to bottom: blanks, one partial cell, full cells below it."""
    col = cache.get(eighths)
    if col is None:
        if eighths is None:
            col = " " * rows
        else:
            full, part = divmod(eighths, 8)
            col = (
                "█" * rows if full >= rows else " " * (rows - full - 1) + _BLOCKS[part] + "█" * full
            )
        cache[eighths] = col
    return col


def bucket_width(span: float, plot_w: int, interval: float) -> float:
    """Seconds per column for ``span`` seconds on ``plot_w`` columns: at least two sampling
    periods, so that a column never misses its sample to jitter and shows a false gap."""
    return max(span / max(1, plot_w), 2 * interval)


def buckets(
    values: Values, timestamps: Sequence[float], plot_w: int, width: float, peak: bool
) -> list[float | None]:
    """The samples gathered in ``plot_w`` columns of ``width`` seconds, oldest first; the last
    column is the bucket of the newest sample (bucket k holds the samples with
    ``t // width == k``). A column holds the mean of its samples, or with ``peak`` their
    maximum; missing readings are left out, and a column without any reading is None."""
    if not values or len(timestamps) != len(values):
        return [None] * plot_w

    def bucket(t: float) -> float:
        return t // width

    last = bucket(timestamps[-1])
    columns: list[float | None] = []
    lo = bisect_left(timestamps, last - plot_w + 1, key=bucket)
    for k in range(plot_w - 1, -1, -1):
        hi = bisect_left(timestamps, last - k + 1, lo, key=bucket) if k else len(values)
        known = [v for v in values[lo:hi] if v is not None]
        if not known:
            columns.append(None)
        else:
            columns.append(float(max(known)) if peak else math.fsum(known) / len(known))
        lo = hi
    return columns


def _levels(values: Values, plot_w: int, rows: int, top: float) -> tuple[int | None, ...]:
    """Each column's height in eighths of a cell (None: no sample), newest at the right.

    Everything the plot shows follows from these: a new sample that leaves them as they were
    (an idle GPU, a full window) draws nothing new.
    """
    tail = values[-plot_w:]
    levels: list[int | None] = [None] * (plot_w - len(tail))
    for v in tail:
        if v is None:
            levels.append(None)
        else:
            frac = 0.0 if top <= 0 else max(0.0, min(1.0, float(v) / top))
            levels.append(round(frac * rows * 8))
    return tuple(levels)


def _plot_rows(levels: Sequence[int | None], rows: int) -> list[str]:
    """The plot area, row by row (top first)."""
    cache: dict[int | None, str] = {}
    cols = [_column(level, rows, cache) for level in levels]
    return ["".join(chars) for chars in zip(*cols, strict=True)]


def _tick(r: int, rows: int, top: float, label: Label) -> str:
    if r == 0:
        return label(top)
    if r == rows - 1:
        return label(0)
    if r == rows // 2:
        return label(top / 2)
    return ""


def _time_axis(
    shown: int,
    plot_w: int,
    interval: float,
    timestamps: Sequence[float],
    whole: float | None = None,
) -> str:
    """A few labels from the oldest visible column to "now" (``whole``: the seconds the plot
    spans, left edge to now, when its columns are buckets of time)."""
    stamps = timestamps[-shown:] if shown else ()
    if whole is not None:
        span = round(whole, 3)  # 600 / 53 * 53 is not quite 600: "-10m", not "-10.0m"
    elif len(stamps) >= 2:
        # Columns left of the first sample are empty; extend at the measured rate.
        per = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        span = per * (plot_w - 1)
    else:
        span = (plot_w - 1) * interval
    axis = [" "] * plot_w
    # "now" first, then the oldest column, then the middle; a label that would touch another
    # is left out rather than drawn over it.
    marks = [(plot_w - 3, "now"), (0, _ago(span)), (plot_w // 2 - 2, _ago(span / 2))]
    taken = [False] * plot_w
    for col, mark in marks:
        lo, hi = col, col + len(mark)
        if lo < 0 or hi > plot_w or any(taken[max(0, lo - 1) : min(plot_w, hi + 1)]):
            continue
        for i, ch in enumerate(mark):
            axis[lo + i] = ch
            taken[lo + i] = True
    return "".join(axis)


@dataclass(frozen=True, slots=True)
class Drawing:
    """What a graph shows, before it is turned into lines (compared sample to sample)."""

    axis_w: int
    rows: int
    top: float
    levels: tuple[int | None, ...]
    time_axis: str

    def lines(self, label: Label) -> list[str]:
        """The plot rows under their y scale, then the time axis."""
        lines = []
        for r, row in enumerate(_plot_rows(self.levels, self.rows)):
            tick = _tick(r, self.rows, self.top, label)
            scale = tick.rjust(self.axis_w - 1) + "┤" if tick else " " * (self.axis_w - 1) + "│"
            lines.append(scale + row)
        lines.append(" " * self.axis_w + self.time_axis)
        return lines


def drawing(
    values: Values,
    width: int,
    height: int,
    top: float,
    interval: float,
    label: Label,
    timestamps: Sequence[float] = (),
    span: float | None = None,
    peak: bool = False,
) -> Drawing:
    """The graph of ``values`` for a ``width`` x ``height`` area: ``max(1, height - 1)`` plot
    rows under a y scale, then the time axis. The newest value is at the right edge; None
    leaves a gap.

    With ``span`` (and the samples' ``timestamps``) each column is a bucket of time, the plot
    the last ``span`` seconds (see ``buckets``); without, each column is one value (series that
    come already bucketed: the recording's).

    The time axis comes from the samples' own timestamps when given (a replay, or a poller that
    fell behind, does not tick exactly at ``interval``), else from ``interval``.
    """
    axis_w = axis_width(top, label)
    plot_w = max(4, width - axis_w)
    rows = max(1, height - 1)
    if span is not None and timestamps:
        width_s = bucket_width(span, plot_w, interval)
        columns = buckets(values, timestamps, plot_w, width_s, peak)
        axis = _time_axis(plot_w, plot_w, width_s, (), whole=width_s * plot_w)
        return Drawing(axis_w, rows, top, _levels(columns, plot_w, rows, top), axis)
    shown = min(len(values), plot_w)
    axis = _time_axis(shown, plot_w, interval, timestamps)
    return Drawing(axis_w, rows, top, _levels(values, plot_w, rows, top), axis)


def _subtitle_change(old: str, new: str) -> tuple[int, int]:
    """The cells of the bottom border line that a right-aligned subtitle's change from ``old``
    to ``new`` touches, as distances from the right edge (from, to): the characters that
    differ when both are as long ("699 / 700 W" to "700 / 700 W": three cells), else all of
    the longer one; a cell to spare each side."""
    a, b = cell_len(old), cell_len(new)
    if a != b or a != len(old) or b != len(new):  # moved along, or wide characters
        return max(a, b) + _SUBTITLE_RIGHT + 2 + _SUBTITLE_SPARE, 0
    first = next((i for i in range(a) if old[i] != new[i]), a)
    last = next((i for i in range(a - 1, -1, -1) if old[i] != new[i]), first - 1)
    right = _SUBTITLE_RIGHT + a  # from the right edge to the first character
    return right - first + _SUBTITLE_SPARE, max(0, right - last - 1 - _SUBTITLE_SPARE)


def _changed_columns(old: Drawing | None, new: Drawing, width: int) -> tuple[int, int]:
    """The cells (from, to) of each line that can differ between two drawings: only the plot
    columns whose level moved when the scale and time axis stayed (the newest column, live),
    else the whole line. Textual then writes just those cells to the terminal."""
    if (
        old is None
        or (old.axis_w, old.rows, old.top, old.time_axis)
        != (new.axis_w, new.rows, new.top, new.time_axis)
        or len(old.levels) != len(new.levels)
    ):
        return 0, width
    moved = [i for i, (a, b) in enumerate(zip(old.levels, new.levels, strict=True)) if a != b]
    if not moved:
        return 0, width
    return new.axis_w + moved[0], min(width, new.axis_w + moved[-1] + 1)


def _filled(line: str, axis_w: int) -> tuple[int, int]:
    """Where a plot row's filled cells begin and end (begin == end: none)."""
    body = line[axis_w:]
    left = len(body) - len(body.lstrip(" "))
    if left == len(body):
        return len(line), len(line)
    return axis_w + left, len(line.rstrip(" "))


def style_lines(lines: Sequence[str], axis_w: int, style: str = "cyan") -> Text:
    """A drawing's lines as one Text: scales dim, filled cells in ``style``.

    A plot row is one styled run from its first filled cell to its last, blanks between them
    included (a blank looks the same in any foreground colour; a run per group of filled cells
    made every row of a jagged graph a dozen colour changes written to the terminal). Blanks
    before and after get no style of their own: some SVG renderers strip leading blanks of a
    styled run, which would slide the graph left in screenshots.
    """
    spans: list[Span] = []
    offset = 0
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if i == last:
            spans.append(Span(offset, offset + len(line), "dim"))
            break
        spans.append(Span(offset, offset + axis_w, "dim"))
        start, end = _filled(line, axis_w)
        if start < end:
            spans.append(Span(offset + start, offset + end, style))
        offset += len(line) + 1
    return Text("\n".join(lines), no_wrap=True, spans=spans)


def render_graph(
    values: Values,
    width: int,
    height: int,
    top: float,
    interval: float,
    label: Label,
    style: str = "cyan",
    timestamps: Sequence[float] = (),
    span: float | None = None,
    peak: bool = False,
) -> Text:
    """The whole graph, styled (see ``drawing``)."""
    graph = drawing(values, width, height, top, interval, label, timestamps, span, peak)
    return style_lines(graph.lines(label), graph.axis_w, style)


class TimeGraph(Widget):
    """A graph that repaints only what a new sample changed (lines, or its subtitle's border)."""

    DEFAULT_CSS = """
    TimeGraph { height: 9; border: round $panel-lighten-2; padding: 0 1; }
    """

    #: Set while the subtitle changes: its refresh repaints the bottom border line only.
    _border_only = False
    #: The cells a subtitle change touched, counted from the right edge (from, to).
    _subtitle_change = (0, 0)

    def __init__(
        self,
        title: str,
        label: Label,
        style: str = "cyan",
        id: str | None = None,
        peak: bool = False,
    ) -> None:
        """``peak``: a column of several samples shows their maximum, else their mean."""
        super().__init__(id=id)
        self.border_title = title
        self._label = label
        self._style = style
        self._peak = peak
        self._values: Values = ()
        self._top = 1.0
        self._interval = 1.0
        self._timestamps: Sequence[float] = ()
        self._span: float | None = None
        self._subtitle: str | None = None
        #: What was last drawn, its lines, and the size they were drawn for (a new sample is
        #: compared with them before anything is repainted).
        self._drawn: Drawing | None = None
        self._lines: list[str] = []
        self._drawn_at = Size(0, 0)
        self._text: Text | None = None
        #: Line number -> (what it was drawn from, its strip): a repaint of unchanged lines is
        #: a look-up.
        self._strips: dict[int, tuple[tuple[str, bool, int, Style], Strip]] = {}

    def show(
        self,
        values: Values,
        top: float | None,
        interval: float,
        subtitle: str,
        timestamps: Sequence[float] = (),
        span: float | None = None,
    ) -> None:
        """Show a new sample; nothing is repainted when it draws the same as the last one.

        ``span``: the seconds the graph shows, in columns that are buckets of time (see
        ``buckets``); None: one column per value (a series already bucketed).
        """
        self._values = values
        self._timestamps = timestamps
        self._interval = interval
        self._span = span
        self._top = top if top else self._visible_peak(values, span is not None)
        self._set_subtitle(subtitle)
        self._redraw()

    def _visible_peak(self, values: Values, whole: bool) -> float:
        """A scale for a series without a known maximum: its visible part's peak (``whole``:
        all of it, the graph spans its history), plus 10 %."""
        width = self._content_size().width
        shown = values if whole or not width else values[-width:]
        known = [float(v) for v in shown if v is not None]
        peak = max(known, default=0.0)
        return peak * 1.1 if peak > 0 else 1.0

    def _set_subtitle(self, subtitle: str) -> None:
        if subtitle == self._subtitle:
            return
        self._subtitle_change = _subtitle_change(self._subtitle or "", subtitle)
        self._subtitle = subtitle
        self._border_only = True
        try:
            self.border_subtitle = subtitle  # its refresh() comes back here: see refresh
        finally:
            self._border_only = False

    def _drawing(self, size: Size) -> Drawing:
        return drawing(
            self._values,
            size.width,
            size.height,
            self._top,
            self._interval,
            self._label,
            self._timestamps,
            self._span,
            self._peak,
        )

    def _content_size(self) -> Size:
        """The content area's size, from the size Textual last laid out.

        (Widget.content_size asks the compositor, which builds a whole new arrangement of the
        screen whenever anything off-screen changed: most of the cost of a sample at rest.)
        """
        width, height = self.outer_size
        gutter = self.styles.gutter
        return Size(max(0, width - gutter.width), max(0, height - gutter.height))

    def _redraw(self) -> None:
        size = self._content_size()
        if not size or size != self._drawn_at:
            self._drawn = None  # never drawn at this size: painting draws it all
            self.refresh()
            return
        new = self._drawing(size)
        old_drawing = self._drawn
        if new == old_drawing:
            return  # the same picture: nothing to repaint (the common case at rest)
        lines = new.lines(self._label)
        old = self._lines
        changed = [y for y, line in enumerate(lines) if y >= len(old) or old[y] != line]
        self._drawn, self._lines, self._text = new, lines, None
        if len(changed) == len(lines):
            self.refresh()
        elif changed:
            x0, x1 = _changed_columns(old_drawing, new, size.width)
            self.refresh(*(Region(x0, y, x1 - x0, 1) for y in changed))

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        """While only the subtitle changes, repaint the bottom border line, not the graph.

        (Setting ``border_subtitle`` calls a plain ``refresh()``: the whole widget otherwise.)
        """
        if self._border_only and not (regions or layout or recompose) and self.outer_size:
            # Regions are relative to the content area: the border line lies below it. A
            # subtitle aligned right (the default) changes the line's right end only: the
            # figures that moved, not the whole line, are written to the terminal.
            offset = self.content_offset
            outer = self.outer_size
            x, end = 0, outer.width
            # (A subtitle that does not fit is cut by Textual: then the whole line.)
            if (
                self.styles.border_subtitle_align == "right"
                and self._subtitle_change[0] + 2 <= outer.width
            ):
                x, end = self._subtitle_change
                x, end = max(0, outer.width - x), min(outer.width, outer.width - end)
            bottom = Region(x - offset.x, outer.height - 1 - offset.y, end - x, 1)
            return super().refresh(bottom, repaint=repaint)
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _current_lines(self) -> list[str]:
        """The lines for the size the widget has now (drawn afresh after a resize)."""
        size = self._content_size()
        if size != self._drawn_at or self._drawn is None:
            if size != self._drawn_at:
                self._strips.clear()
            self._drawn = self._drawing(size)
            self._lines = self._drawn.lines(self._label)
            self._drawn_at = size
            self._text = None
        return self._lines

    def render(self) -> Text:
        """The whole graph as one Text (what a user reads; Textual paints line by line)."""
        if self._text is None or self._content_size() != self._drawn_at:
            lines = self._current_lines()
            self._text = style_lines(lines, self._axis_w(), self._style)
        return self._text

    def _axis_w(self) -> int:
        return self._drawn.axis_w if self._drawn else axis_width(self._top, self._label)

    def render_line(self, y: int) -> Strip:
        """One line: Textual asks only for the lines marked dirty, so a sample that moved one
        row costs one row here, not the whole graph (the Line API, as DataTable and Log do)."""
        lines = self._current_lines()
        width = self._drawn_at.width
        base = self.rich_style
        if y >= len(lines):
            return Strip.blank(width, base)
        key = (lines[y], y == len(lines) - 1, self._axis_w(), base)
        strip = self._strips.get(y)
        if strip is None or strip[0] != key:
            strip = (key, self._strip(*key).crop_extend(0, width, base))
            self._strips[y] = strip
        return strip[1]

    def _strip(self, line: str, is_axis: bool, axis_w: int, base: Style) -> Strip:
        """A line's segments, styled as ``style_lines`` styles it."""
        dim = base + _DIM
        if is_axis:
            return Strip([Segment(line, dim)], len(line))
        fill = base + Style.parse(self._style)
        start, end = _filled(line, axis_w)
        segments = [Segment(line[:axis_w], dim)]
        if start > axis_w:
            segments.append(Segment(line[axis_w:start], base))
        if start < end:
            segments.append(Segment(line[start:end], fill))
        if end < len(line):
            segments.append(Segment(line[max(start, end, axis_w) :], base))
        return Strip(segments, len(line))

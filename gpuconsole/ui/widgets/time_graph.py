"""A filled time-series graph with a y scale and a time axis, drawn with eighth-block cells."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widget import Widget

_BLOCKS = " ▁▂▃▄▅▆▇█"

Values = tuple[float | int | None, ...]


def _ago(seconds: float) -> str:
    if seconds >= 60:
        return f"-{seconds / 60:.0f}m" if seconds % 60 == 0 else f"-{seconds / 60:.1f}m"
    return f"-{seconds:.0f}s"


def render_graph(
    values: Values,
    width: int,
    height: int,
    top: float,
    interval: float,
    label: Callable[[float], str],
    style: str = "cyan",
    timestamps: tuple[float, ...] = (),
) -> Text:
    """The newest value is at the right edge; each column is one sample; None leaves a gap.

    The time axis comes from the samples' own timestamps when given (a replay, or a poller that
    fell behind, does not tick exactly at ``interval``), else from ``interval``.
    """
    axis_w = max(len(label(top)), len(label(0))) + 1
    plot_w = max(4, width - axis_w)
    rows = max(1, height - 1)
    tail = values[-plot_w:]
    pad = plot_w - len(tail)
    eighths: list[int | None] = [None] * pad
    for v in tail:
        if v is None:
            eighths.append(None)
        else:
            frac = 0.0 if top <= 0 else max(0.0, min(1.0, float(v) / top))
            eighths.append(round(frac * rows * 8))
    text = Text(no_wrap=True)
    for r in range(rows):
        level_from_bottom = rows - 1 - r
        if r == 0:
            tick = label(top)
        elif r == rows - 1:
            tick = label(0)
        elif r == rows // 2:
            tick = label(top / 2)
        else:
            tick = ""
        text.append(tick.rjust(axis_w - 1) + "┤" if tick else " " * (axis_w - 1) + "│", style="dim")
        # Empty cells go in their own (unstyled) runs: some SVG renderers strip leading blanks
        # of a styled run, which would slide the graph left in screenshots.
        run: list[str] = []
        run_empty = True
        for e in eighths:
            cell = " " if e is None else _BLOCKS[max(0, min(8, e - level_from_bottom * 8))]
            empty = cell == " "
            if run and empty != run_empty:
                text.append("".join(run), style="" if run_empty else style)
                run = []
            run.append(cell)
            run_empty = empty
        if run:
            text.append("".join(run), style="" if run_empty else style)
        text.append("\n")
    # Time axis: a few labels from the oldest visible column to "now".
    stamps = timestamps[-len(tail) :] if tail else ()
    if len(stamps) >= 2:
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
    text.append(" " * axis_w + "".join(axis), style="dim")
    return text


class TimeGraph(Widget):
    DEFAULT_CSS = """
    TimeGraph { height: 9; border: round $panel-lighten-2; padding: 0 1; }
    """

    def __init__(
        self, title: str, label: Callable[[float], str], style: str = "cyan", id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.border_title = title
        self._label = label
        self._style = style
        self._values: Values = ()
        self._top = 1.0
        self._interval = 1.0
        self._timestamps: tuple[float, ...] = ()

    def show(
        self,
        values: Values,
        top: float | None,
        interval: float,
        subtitle: str,
        timestamps: tuple[float, ...] = (),
    ) -> None:
        self._values = values
        self._timestamps = timestamps
        known = [float(v) for v in values if v is not None]
        self._top = top if top else (max(known) * 1.1 if known and max(known) > 0 else 1.0)
        self._interval = interval
        self.border_subtitle = subtitle
        self.refresh()

    def render(self) -> Text:
        size = self.content_size
        return render_graph(
            self._values,
            size.width,
            size.height,
            self._top,
            self._interval,
            self._label,
            self._style,
            self._timestamps,
        )

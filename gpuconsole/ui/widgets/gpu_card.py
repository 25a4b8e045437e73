"""One compact card per GPU for the main screen: utilisation, memory, power, temperature, who."""

from __future__ import annotations

from rich.style import Style
from rich.text import Span, Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from gpuconsole.backend.gpu import GpuSample
from gpuconsole.monitor.gpu_view import GpuView
from gpuconsole.present import format as fmt

#: Threshold colours, shared with the GPU screen.
LEVEL_STYLE = {"ok": "green", "warn": "yellow", "crit": "bold red", "na": "dim"}


def short_gpu_name(name: str) -> str:
    return name.removeprefix("NVIDIA ").removeprefix("Tesla ")


def _append_spark(text: Text, spark: str, style: str) -> None:
    """The blank lead-in goes unstyled: some SVG renderers strip leading blanks of a styled run,
    which would slide the sparkline left in screenshots."""
    body = spark.lstrip(" ")
    text.append(" " * (len(spark) - len(body)))
    text.append(body + "\n", style=style)


def card_text(gpu: GpuSample, view: GpuView, width: int) -> Text:
    width = max(width, 30)
    text = Text(no_wrap=True, overflow="ellipsis")
    head = f"GPU {gpu.index} {short_gpu_name(gpu.name)}"
    temp = fmt.celsius(gpu.temperature_c)
    text.append(head[: width - len(temp) - 1].ljust(width - len(temp)), style="bold")
    text.append(temp + "\n", style=LEVEL_STYLE[fmt.level(gpu.temperature_c, 80, 87)])
    if gpu.error:
        text.append(gpu.error + "\n", style="bold red")
        return text

    spark_w = max(6, width - 18)
    util = gpu.utilization_gpu_percent
    text.append("util ", style="dim")
    text.append(f"{fmt.percent(util):>5} ", style=LEVEL_STYLE[fmt.level(util, 70, 95)])
    _append_spark(
        text, fmt.spark(view.series(gpu.uuid, "utilization_gpu_percent"), spark_w, 100), "cyan"
    )

    frac = gpu.memory_fraction
    pct = None if frac is None else frac * 100
    used = fmt.size(gpu.memory_used_bytes)
    total = fmt.size(gpu.memory_total_bytes)
    figures = f" {used} / {total}"
    text.append("mem  ", style="dim")
    text.append(
        fmt.bar(frac, max(4, width - 5 - len(figures))), style=LEVEL_STYLE[fmt.level(pct, 75, 92)]
    )
    text.append(figures + "\n")

    draw, limit = gpu.power_w, gpu.power_limit_w
    ratio = None if draw is None or not limit else draw / limit * 100
    power = fmt.watts(draw, limit)
    text.append("pwr  ", style="dim")
    text.append(f"{power} ", style=LEVEL_STYLE[fmt.level(ratio, 80, 95)])
    _append_spark(
        text,
        fmt.spark(view.series(gpu.uuid, "power_w"), max(4, width - 6 - len(power)), limit),
        "magenta",
    )
    holders = view.holders(gpu.index)
    text.append(", ".join(holders) if holders else "no processes", style="" if holders else "dim")
    return text


class GpuCard(Widget):
    """A card that repaints only its lines that changed.

    Every sample used to repaint the whole card (border included) through Textual's style
    cache: with ten hosts' cards at 1 Hz that was most of what the console cost at rest
    (measured: 10 % of a core with 10 SSH hosts). The card's text is now split into lines, each
    compared with what is on screen and turned into a cached strip only when it changed.
    """

    DEFAULT_CSS = """
    GpuCard { height: 7; border: round $panel-lighten-2; padding: 0 1; }
    """

    def __init__(self, index: int, host: str | None = None) -> None:
        # No id: the card set can change twice before a removal completes (an nvidia-smi
        # stream's first rounds may name only some GPUs), and a reused id would then clash.
        super().__init__()
        self.index = index
        #: Set when the panel shows several hosts: the card's border names its host.
        self.host = host
        if host is not None:
            self.border_title = host
        self._gpu: GpuSample | None = None
        self._view: GpuView | None = None
        #: The lines on screen and the width they were made for.
        self._lines: list[Text] = []
        self._width = -1
        self._strips: dict[int, tuple[tuple[Text, Style], Strip]] = {}
        #: What the lines on screen were made from (see ``show``).
        self._inputs: tuple[object, ...] | None = None
        #: The text last cut into lines by ``show`` (its plain text and spans).
        self._look: tuple[str, list[Span]] | None = None

    def show(self, gpu: GpuSample, view: GpuView) -> None:
        self._gpu = gpu
        self._view = view
        width = self.content_size.width
        if width <= 0 or width != self._width:
            self._inputs = self._look = None
            self.refresh()  # not laid out yet, or resized: painting makes every line
            return
        # A quiet GPU brings equal readings sample after sample: the card's text is made only
        # when what it is made from changed (the sample, the sparklines' tails, the holders).
        # Making it for every card of every host each second was most of a fleet's GPU strip.
        inputs = (
            gpu,
            width,
            view.series(gpu.uuid, "utilization_gpu_percent")[-width:],
            view.series(gpu.uuid, "power_w")[-width:],
            view.holders(gpu.index),
        )
        if inputs == self._inputs:
            return
        self._inputs = inputs
        # Readings that moved below what the card shows (76.1 W to 76.3 W) make the same text:
        # compared whole, before it is cut into lines.
        text = card_text(gpu, view, width)
        look = (text.plain, text.spans)
        if look == self._look:
            return
        self._look = look
        lines = list(text.split("\n"))
        old = self._lines
        changed = [y for y, line in enumerate(lines) if y >= len(old) or old[y] != line]
        if len(lines) != len(old):
            changed = list(range(max(len(lines), len(old))))
        self._lines = lines
        if len(changed) >= len(lines):
            self.refresh()
        elif changed:
            self.refresh(*(Region(0, y, width, 1) for y in changed))

    def _make_lines(self, width: int) -> list[Text]:
        if self._gpu is None or self._view is None:
            return [Text("…", style="dim")]
        return list(card_text(self._gpu, self._view, width).split("\n"))

    def render(self) -> Text:
        """The whole card as one Text (what a user reads; Textual paints it line by line)."""
        return Text("\n").join(self._current_lines())

    def _current_lines(self) -> list[Text]:
        width = self.content_size.width
        if width != self._width:
            self._width = width
            self._inputs = self._look = None
            self._lines = self._make_lines(width)
            self._strips.clear()
        return self._lines

    def render_line(self, y: int) -> Strip:
        lines = self._current_lines()
        width = self._width
        base = self.rich_style
        if y >= len(lines):
            return Strip.blank(width, base)
        key = (lines[y], base)
        cached = self._strips.get(y)
        if cached is None or cached[0] != key:
            segments = list(lines[y].render(self.app.console, end=""))
            strip = Strip(segments).apply_style(base).crop_extend(0, width, base)
            cached = (key, strip)
            self._strips[y] = cached
        return cached[1]

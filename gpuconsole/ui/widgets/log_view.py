"""The logs screen's view: a bounded buffer of lines, drawn a visible row at a time.

A line-API widget (like Textual's ``Log``): only the rows on screen are rendered, and what they
draw is cached by line number, so 20,000 kept lines and a few hundred new ones every tick cost
what the screen shows, not what the buffer holds. Lines are numbered from the first one received
(``seq``): dropping old lines from the front keeps every number, cache entry and search match
valid, and a view that is not at the end moves up by the rows dropped, so the text under the
reader's eyes stays put.

Each row starts with a two-cell gutter: ``▌`` in red for stderr (its text is red-tinted too),
blank for stdout and for the screen's own marker lines. With wrap on, a line takes as many rows
as its width needs (hard wrap at the cell, as a terminal does); row positions are kept as a
running sum per line, computed once per width and extended per new line.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from gpuconsole.ui.widgets.log_lines import LogLine, shown

GUTTER = 2
#: Rows kept as drawn (a few screens: each is a Strip, which the garbage collector walks).
ROWS_KEPT = 256
#: Lines kept as drawn (segments, before the gutter), for scrolling back and forth.
BODIES_KEPT = 1024
STDERR_MARK = "▌"


#: A line ready to draw: (segments, cells) unwrapped, or its rows when wrapping.
_Body = tuple[list[Segment], int] | Sequence[Strip]


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def batch_widths(lines: Sequence[LogLine]) -> tuple[int, int]:
    """(cells of the widest text, characters of the longest stamp) of ``lines`` (not empty).
    Two passes in C for a batch of plain text (most of them): a flood's batch is thousands of
    lines."""
    _, texts, stamps = zip(*lines, strict=True)
    widest = max(map(len, texts)) if "".join(texts).isascii() else max(map(_cells, texts))
    return widest, max(map(len, stamps))


_K = TypeVar("_K")
_V = TypeVar("_V")


class _Recent(Generic[_K, _V]):
    """At most ``size`` entries; the least recently used goes first. Not Textual's LRUCache:
    that one links its entries in a ring of lists, so a cleared cache (every timestamps or wrap
    toggle, every search) is cyclic garbage, left with all it held for Python's full
    collections: 27,000-66,000 objects each while 10,000 lines a second stream, 100-170 ms of
    CPU on the event loop. An OrderedDict's links are not objects: what it drops is freed at
    once."""

    __slots__ = ("_data", "_size")

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[_K, _V] = OrderedDict()
        self._size = size

    def get(self, key: _K) -> _V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def __setitem__(self, key: _K, value: _V) -> None:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self._size:
            data.popitem(last=False)

    def discard(self, key: _K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()


class LogView(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {
        "log-view--stderr",
        "log-view--stderr-mark",
        "log-view--stamp",
        "log-view--marker",
        "log-view--match",
        "log-view--current-match",
    }
    DEFAULT_CSS = """
    LogView {
        background: $surface;
        color: $text;
        overflow-y: scroll;
        overflow-x: auto;
    }
    LogView > .log-view--stderr { color: #ff9a9a; }
    LogView > .log-view--stderr-mark { color: $error; }
    LogView > .log-view--stamp { color: $text-muted; }
    LogView > .log-view--marker { color: $warning; text-style: bold; }
    LogView > .log-view--match { background: $warning 40%; }
    LogView > .log-view--current-match { background: $accent; color: $text; text-style: bold; }
    """

    def __init__(self, bound: int = 20_000, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bound = bound
        self._lines: list[LogLine] = []
        #: seq of ``_lines[0]``: how many lines were dropped from the front.
        self.first = 0
        self.stamps = True
        self.wrap = False
        #: True while the view is at the live end (new lines scroll it).
        self.following = True
        #: Lines added while the view was scrolled away from the end.
        self.unseen = 0
        self._max_text = 0
        self._max_stamp = 0
        #: With wrap on: each kept line's first row, counted from an origin that never moves
        #: (so dropping lines is a delete at the front, not a rewrite).
        self._starts: list[int] = []
        self._rows_end = 0
        self._wrap_width = 0
        self.needle = ""
        self._fold = True
        #: seqs of the lines that match ``needle``, in order; ``current`` is one of them.
        self.matches: list[int] = []
        self.current: int | None = None
        self._cache: _Recent[int, _Body] = _Recent(BODIES_KEPT)
        #: Rows as drawn, by (seq, row within the line), for ``_rows_for`` (width, scroll_x).
        self._rows: _Recent[tuple[int, int], Strip] = _Recent(ROWS_KEPT)
        #: Caches that ``_forget`` replaced, freed once the frame after it is out.
        self._stale: list[tuple[_Recent[int, _Body], _Recent[tuple[int, int], Strip]]] = []
        self._rows_for = (0, 0)
        self._styles: dict[str, Style] | None = None
        self._alike: dict[tuple[Style, Style], bool] = {}

    # -- the buffer ---------------------------------------------------------------------------

    @property
    def lines(self) -> Sequence[LogLine]:
        """The kept lines, oldest first (read-only)."""
        return self._lines

    @property
    def total(self) -> int:
        """Lines added since the view was created or cleared (kept and dropped)."""
        return self.first + len(self._lines)

    def add(
        self, lines: Sequence[LogLine], skipped: int = 0, widths: tuple[int, int] | None = None
    ) -> None:
        """Append a batch; drop the oldest beyond ``bound``; follow the end if at it.
        ``skipped``: lines that came before the batch but were never handed over (the
        reader's queue overflowed: the batch alone fills the bound, so every kept line goes).
        ``widths``: the batch's ``widths(lines)`` where the caller has it already (the logs
        screen's reader works it out on its own thread, off the event loop's keys)."""
        if not lines:
            return
        dropped_rows = 0
        if skipped:
            dropped_rows = self._drop_front(len(self._lines))
            self.first += skipped
        start = len(self._lines)
        self._lines.extend(lines)
        widest, stamp = widths if widths is not None else batch_widths(lines)
        self._max_text = max(self._max_text, widest)
        self._max_stamp = max(self._max_stamp, stamp)
        if self.wrap:
            self._extend_rows(start)
        if self.needle:
            self._extend_matches(start)
        dropped_rows += self._drop_front(len(self._lines) - self.bound)
        self._update_virtual_size()
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.unseen += skipped + len(lines)
            if dropped_rows:
                self.scroll_to(y=max(0, self.scroll_y - dropped_rows), animate=False)
        self.refresh()

    def clear(self) -> None:
        self._lines.clear()
        self.first = 0
        self._starts.clear()
        self._rows_end = 0
        self._max_text = self._max_stamp = 0
        self.matches.clear()
        self.current = None
        self.unseen = 0
        self.following = True
        self._forget()
        self._update_virtual_size()
        self.scroll_to(0, 0, animate=False)
        self.refresh()

    def _drop_front(self, count: int) -> int:
        """Drop ``count`` lines from the front; returns the rows they took."""
        if count <= 0:
            return 0
        rows = count
        if self.wrap:
            end = self._starts[count] if count < len(self._starts) else self._rows_end
            rows = end - self._starts[0]
            del self._starts[:count]
        del self._lines[:count]
        self.first += count
        if self.matches and self.matches[0] < self.first:
            del self.matches[: bisect_left(self.matches, self.first)]
            if self.current is not None and self.current < self.first:
                self.current = self.matches[0] if self.matches else None
        return rows

    def shown_text(self) -> list[str]:
        """The container's lines as shown (with timestamps when they are), no gutter marks and
        no marker lines: what ``s`` saves."""
        stamps = self.stamps
        return [shown(line, stamps) for line in self._lines if line[0] != "marker"]

    # -- geometry -----------------------------------------------------------------------------

    @property
    def text_width(self) -> int:
        """Cells available to a line's text (the view's width less the gutter)."""
        width = self.scrollable_content_region.width or self.size.width
        return max(1, width - GUTTER)

    def _line_cells(self, line: LogLine) -> int:
        _, text, stamp = line
        cells = _cells(text)
        if self.stamps and stamp:
            cells += len(stamp) + 1
        return cells

    def _rows_of(self, line: LogLine) -> int:
        return max(1, -(-self._line_cells(line) // self._wrap_width))

    def _extend_rows(self, start: int) -> None:
        end = self._rows_end
        starts = self._starts
        rows_of = self._rows_of
        for line in self._lines[start:]:
            starts.append(end)
            end += rows_of(line)
        self._rows_end = end

    def _relayout(self) -> None:
        """Options or width changed: every row position and cached strip is stale."""
        self._forget()
        self._starts = []
        self._rows_end = 0
        if self.wrap:
            self._wrap_width = self.text_width
            self._extend_rows(0)
        self._update_virtual_size()
        self.refresh()

    @property
    def row_count(self) -> int:
        if self.wrap:
            return self._rows_end - (self._starts[0] if self._starts else self._rows_end)
        return len(self._lines)

    def _update_virtual_size(self) -> None:
        if self.wrap:
            width = self.text_width + GUTTER
        else:
            stamp = self._max_stamp + 1 if self.stamps and self._max_stamp else 0
            # Never narrower than the view: toggling timestamps on lines that fit changes
            # nothing here, so it costs no layout.
            width = max(GUTTER + stamp + self._max_text, self.text_width + GUTTER)
        self.virtual_size = Size(width, self.row_count)

    def row_of(self, seq: int) -> int:
        """The first row of line ``seq`` (which must be kept)."""
        index = seq - self.first
        return self._starts[index] - self._starts[0] if self.wrap else index

    def line_at(self, row: int) -> tuple[int, int] | None:
        """(index in ``lines``, row within the line) of view row ``row``; None past the end."""
        if row < 0 or row >= self.row_count:
            return None
        if not self.wrap:
            return row, 0
        absolute = self._starts[0] + row
        index = bisect_right(self._starts, absolute) - 1
        return index, absolute - self._starts[index]

    def top_seq(self) -> int | None:
        """The line at the top of the view."""
        at = self.line_at(round(self.scroll_y))
        return None if at is None else self.first + at[0]

    def on_resize(self) -> None:
        if self.wrap and self.text_width != self._wrap_width:
            top = self.top_seq()
            self._relayout()
            self._keep_in_view(top)
        else:
            self._update_virtual_size()  # its width follows the view's

    # -- options ------------------------------------------------------------------------------

    def set_stamps(self, on: bool) -> None:
        top = self.top_seq()
        self.stamps = on
        self._relayout()
        self._keep_in_view(top)

    def set_wrap(self, on: bool) -> None:
        top = self.top_seq()
        self.wrap = on
        self._relayout()
        if not on:
            self.scroll_to(x=0, animate=False)
        self._keep_in_view(top)

    def _keep_in_view(self, top: int | None) -> None:
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        elif top is not None and top >= self.first:
            self.scroll_to(y=self.row_of(top), animate=False, immediate=True)

    # -- following the end --------------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        at_end = round(new_value) >= self.max_scroll_y
        if at_end and not self.following:
            self.unseen = 0
        self.following = at_end

    def go_end(self) -> None:
        """Back to the live end: the view follows new lines again."""
        self.following = True
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    # -- search -------------------------------------------------------------------------------

    def _hit(self, line: LogLine) -> bool:
        kind, text, _ = line
        if kind == "marker":
            return False
        return self.needle in (text.lower() if self._fold else text)

    def search(self, needle: str) -> int:
        """Mark every line holding ``needle`` (case-insensitive unless it has capitals) and go
        to the first match at or below the top of the view, else the first. Returns matches."""
        self.needle = needle
        self._fold = needle == needle.lower()
        self.matches = []
        self.current = None
        self._forget()
        if needle:
            self._extend_matches(0)
            if self.matches:
                top = self.top_seq()
                top = self.first if top is None else top
                at = bisect_left(self.matches, top)
                self._go_match(self.matches[at if at < len(self.matches) else 0])
        self.refresh()
        return len(self.matches)

    def _extend_matches(self, start: int) -> None:
        first, hit = self.first, self._hit
        self.matches.extend(
            first + start + i for i, line in enumerate(self._lines[start:]) if hit(line)
        )

    def step_match(self, step: int) -> None:
        """The next (``step`` 1) or previous (-1) match, wrapping around."""
        if not self.matches:
            return
        if self.current is None:
            index = 0 if step > 0 else len(self.matches) - 1
        else:
            index = (bisect_left(self.matches, self.current) + step) % len(self.matches)
        self._go_match(self.matches[index])

    def match_position(self) -> tuple[int, int] | None:
        """(i, k): the current match is the i-th of k (1-based); None without one."""
        if self.current is None or not self.matches:
            return None
        return bisect_left(self.matches, self.current) + 1, len(self.matches)

    def _go_match(self, seq: int) -> None:
        before = self.current
        self.current = seq
        for old in (before, seq):
            if old is not None:
                self._forget_line(old)
        row = self.row_of(seq)
        height = self.scrollable_content_region.height or self.size.height
        self.scroll_to(y=max(0, row - height // 3), animate=False, immediate=True)
        # A match holds the view where it is, even at the end: new lines must not carry it off.
        self.following = False
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._alike.clear()
        self._forget()

    def _forget(self) -> None:
        """Every line's drawing is stale (options, width, styles, search). The drawings are
        let go of after the next frame, not now: freeing a thousand of them takes longer
        than drawing the rows on screen again, and a key (``t``, ``w``, a search) would wait
        for it before its frame (the old caches hold no cycles: see ``_Recent``)."""
        if self.is_attached and len(self._stale) < 4:  # else freed here, at once
            self._stale.append((self._cache, self._rows))
            if len(self._stale) == 1:
                self.call_after_refresh(self._stale.clear)
        self._cache = _Recent(BODIES_KEPT)
        self._rows = _Recent(ROWS_KEPT)

    def _forget_line(self, seq: int) -> None:
        """Line ``seq``'s drawing is stale (a match on it came or went)."""
        self._cache.discard(seq)
        index = seq - self.first
        if 0 <= index < len(self._lines):
            parts = self._rows_of(self._lines[index]) if self.wrap else 1
            for part in range(parts):
                self._rows.discard((seq, part))

    def _style(self, name: str) -> Style:
        if self._styles is None:
            base = self.rich_style
            self._styles = {"base": base}
            for part in ("stderr", "stderr-mark", "stamp", "marker", "match", "current-match"):
                self._styles[part] = base + self.get_component_rich_style(f"log-view--{part}")
        return self._styles[name]

    def _text_segments(self, text: str, style: Style, seq: int) -> Iterable[Segment]:
        if not self.needle:
            return (Segment(text, style),)
        hay = text.lower() if self._fold else text
        size = len(self.needle)
        mark = self._style("current-match" if seq == self.current else "match")
        out: list[Segment] = []
        pos = 0
        while (at := hay.find(self.needle, pos)) >= 0:
            if at > pos:
                out.append(Segment(text[pos:at], style))
            out.append(Segment(text[at : at + size], style + mark))
            pos = at + size
        if pos < len(text):
            out.append(Segment(text[pos:], style))
        return out

    def _body(self, index: int) -> _Body:
        """Line ``index`` without its gutter: its segments and cells, or its rows (strips)
        when wrapping. Plain segments, not a Strip: at 10,000 lines a second every row on
        screen is new in every frame, and each Strip built costs more than the row's text."""
        seq = self.first + index
        cached = self._cache.get(seq)
        if cached is not None:
            return cached
        line = self._lines[index]
        kind, text, stamp = line
        style = self._style(kind if kind in ("stderr", "marker") else "base")
        segments: list[Segment] = []
        if self.stamps and stamp:
            segments.append(Segment(stamp + " ", self._style("stamp")))
        segments.extend(self._text_segments(text, style, seq))
        cells = self._line_cells(line)
        body: _Body = (segments, cells)
        if self.wrap:
            width = self._wrap_width
            strip = Strip(segments, cells)
            # A line that fits stays one strip: divided into one piece, a Strip keeps itself in
            # its own cache, a cycle that only a full collection frees.
            body = [strip] if cells <= width else strip.divide([*range(width, cells, width), cells])
        self._cache[seq] = body
        return body

    def _blank_alike(self, style: Style, blank: Style) -> bool:
        """Whether spaces drawn in ``style`` look as they do in ``blank``: the same background
        and nothing drawn over a space (lines, reversed colours)."""
        key = (style, blank)
        alike = self._alike.get(key)
        if alike is None:
            alike = style.bgcolor == blank.bgcolor and not any(
                getattr(s, attr) for s in (style, blank) for attr in _OVER_SPACES
            )
            self._alike[key] = alike
        return alike

    def _joined(self, row: list[Segment]) -> list[Segment]:
        """``row`` with neighbours drawn alike as one segment: the gutter's and the padding's
        spaces go into the text beside them where they look the same. Fewer segments are less
        work for every step after this one, and fewer bytes to the terminal (a row of a stdout
        line is then one or two segments, not four)."""
        out = [row[0]]
        for seg in row[1:]:
            last = out[-1]
            text, style = seg.text, seg.style
            if not text:
                continue
            if style is last.style or style == last.style:
                out[-1] = Segment(last.text + text, last.style)
            elif last.style is not None and style is not None:
                if not text.strip(" ") and self._blank_alike(last.style, style):
                    out[-1] = Segment(last.text + text, last.style)
                elif not last.text.strip(" ") and self._blank_alike(style, last.style):
                    out[-1] = Segment(last.text + text, style)
                else:
                    out.append(seg)
            else:
                out.append(seg)
        return out

    def _draw(self, index: int, part: int, scroll_x: int, width: int) -> Strip:
        """Row ``part`` of line ``index``, gutter and padding included, ``width`` cells."""
        room = width - GUTTER
        base = self._style("base")
        body = self._body(index)
        if isinstance(body, tuple):
            segments, cells = body
            if scroll_x or cells > room:
                cropped = Strip(segments, cells).crop(scroll_x, scroll_x + room)
                segments, cells = list(cropped), cropped.cell_length
        else:
            piece = body[min(part, len(body) - 1)]
            segments, cells = list(piece), piece.cell_length
        if self._lines[index][0] == "stderr":
            gutter = Segment(STDERR_MARK + " ", self._style("stderr-mark"))
        else:
            gutter = Segment(" " * GUTTER, base)
        row = [gutter, *segments]
        if cells < room:
            row.append(Segment(" " * (room - cells), base))
        return Strip(self._joined(row), width)

    def _row(self, row: int, scroll_x: int, width: int) -> Strip:
        """View row ``row`` as drawn (cached by line and row within it)."""
        if self._rows_for != (width, scroll_x):
            self._rows.clear()
            self._rows_for = (width, scroll_x)
        at = self.line_at(row)
        if at is None:
            return Strip.blank(width, self._style("base"))
        index, part = at
        key = (self.first + index, part)
        strip = self._rows.get(key)
        if strip is None:
            strip = self._rows[key] = self._draw(index, part, scroll_x, width)
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        return self._row(scroll_y + y, scroll_x, self.size.width)

    def _plain(self) -> bool:
        """No border, padding, outline, tint, opacity, title or hatch: the rows as drawn are
        the widget's lines as they are (what Textual's styles cache would make of them)."""
        styles = self.styles
        return (
            not any(styles.gutter)
            and not any(edge for edge, _ in styles.outline)
            and not styles.tint.a
            and styles.text_opacity == 1.0
            and self.opacity == 1.0
            and self._border_title is None
            and self._border_subtitle is None
            and not (styles.has_rule("hatch") and styles.hatch != "none")
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        """The rows in ``crop``, straight from the row cache. Textual's styles cache would
        restyle and copy every row again (more than the row itself costs, and at 10,000 lines a
        second every row is new in every frame); it is kept for a view that is styled more
        than plainly."""
        if not self._plain():
            return super().render_lines(crop)
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        filters = self.get_line_filters()
        _, background = self.background_colors
        strips: list[Strip] = []
        for y in crop.line_range:
            strip = self._row(scroll_y + y, scroll_x, width)
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            strips.append(strip)
        if crop.column_span != (0, width):
            x1, x2 = crop.column_span
            strips = [strip.crop(x1, x2) for strip in strips]
        return strips


#: Style attributes that draw on a space.
_OVER_SPACES = ("reverse", "underline", "underline2", "strike", "overline", "frame", "encircle")


__all__ = ["GUTTER", "STDERR_MARK", "LogView", "batch_widths"]

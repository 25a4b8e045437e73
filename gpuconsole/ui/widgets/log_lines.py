"""Container output as the logs screen shows it: frames in, whole lines out, safe to draw.

The engine sends frames, not lines: a line can span frames and a frame can hold many lines, per
stream. Lines are cut here on bytes (a UTF-8 character split between frames decodes whole) and
each stream keeps its own unfinished line. Whatever a container writes is drawn by Textual as
text, so nothing in it may reach the terminal as a control sequence (a container could clear the
screen, move the cursor or retitle the window): escape sequences are removed, a carriage return
keeps what a terminal would leave on the line (the text after the last one), tabs become spaces,
and every other control character is shown as its Unicode control picture (``␇`` for BEL).
Colours are dropped rather than rendered: 10,000 lines a second must stay cheap.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["stdout", "stderr", "marker"]


#: One line as shown: (kind, text, stamp). ``stamp`` is the engine's RFC 3339 time of the
#: line (always asked for, so the timestamps toggle needs no refetch); a ``marker`` is the
#: screen's own line (the end of the stream), not the container's. A plain tuple on purpose:
#: a tuple of strings leaves the garbage collector's books at its first pass, an object of a
#: class never does, and full collections over 20,000 kept lines (and a flood's worth more)
#: stalled the screen for a third of a second.
LogLine = tuple[Kind, str, str]


def shown(line: LogLine, stamps: bool) -> str:
    """The line as the screen shows it, without its gutter mark."""
    _, text, stamp = line
    return f"{stamp} {text}" if stamps and stamp else text


def marker(text: str) -> LogLine:
    return ("marker", f"── {text} ──", "")


# ESC-introduced sequences (CSI, OSC to BEL or ST, DCS/SOS/PM/APC strings, two-byte escapes),
# the 8-bit CSI, and a lone ESC at the end.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
    r"|\x1b"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_SPECIAL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SPECIAL_NO_NL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
# Docker's RFC3339NanoFixed ("2026-11-27T16:50:01.123456789Z"), any precision or zone.
_STAMP_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) ")
_STAMP_BYTES = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) ")
#: The engine stores a longer line as several messages of this many bytes, each stamped.
PART_BYTES = 16 * 1024
#: Characters past which a line may have been stored in parts (4 bytes a character at most).
LONG_LINE = PART_BYTES // 4
#: An unfinished line longer than this is shown as it is (a writer that never ends its line
#: must not grow memory without bound or stay invisible forever).
MAX_LINE_BYTES = 1 << 20


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def clean(text: str) -> str:
    """``text`` as plain characters only (see the module's docstring)."""
    if "\r" in text:
        text = text.rstrip("\r").rpartition("\r")[2]
    if not _SPECIAL.search(text):
        return text
    if "\x1b" in text or "\x9b" in text:
        text = _ESCAPES.sub("", text)
    if "\t" in text:
        text = text.expandtabs(8)
    return _CONTROL.sub(_picture, text)


def _join_parts(raw: bytes) -> bytes:
    """A line the engine stored in 16 KiB parts carries each part's own stamp inside it (as
    ``docker logs -t`` shows): drop them, so the line reads as written. ``raw`` is the line
    after its first stamp."""
    pos = PART_BYTES
    while len(raw) > pos and (m := _STAMP_BYTES.match(raw, pos)):
        raw = raw[:pos] + raw[m.end() :]
        pos += PART_BYTES
    return raw


def _split_stamp(line: str) -> tuple[str, str]:
    """(stamp, text) of a stamped line; the engine's fixed-width form is checked by hand
    (most lines), anything else by the pattern."""
    if len(line) > 30 and line[30] == " " and line[29] == "Z" and line[10] == "T":
        return line[:30], line[31:]
    m = _STAMP_TEXT.match(line)
    return (line[: m.end() - 1], line[m.end() :]) if m else ("", line)


def to_line(kind: Kind, raw: bytes, stamped: bool) -> LogLine:
    """One whole line (without its newline) as the screen shows it."""
    text = raw.decode("utf-8", "replace")
    stamp = ""
    if stamped:
        stamp, text = _split_stamp(text)
        if stamp and len(text) > LONG_LINE:
            text = _join_parts(text.encode()).decode("utf-8", "replace")
    return (kind, clean(text), stamp)


class LineSplitter:
    """Bytes of each stream in, whole lines out, in the order they were completed.

    ``stamped``: the engine was asked for timestamps, so each line starts with one. The
    whole lines of a piece are decoded at once, and a piece without control characters
    (most of them) skips the per-line cleaning: 10,000 lines a second stay a few percent of
    a core.
    """

    def __init__(self, stamped: bool = True) -> None:
        self.stamped = stamped
        self._partial: dict[Kind, bytes] = {}

    def feed(self, kind: Kind, data: bytes) -> list[LogLine]:
        partial = self._partial.get(kind)
        if partial:
            data = partial + data
        cut = data.rfind(b"\n")
        rest = data[cut + 1 :]
        if len(rest) > MAX_LINE_BYTES:
            cut = len(data)
            data += b"\n"
            rest = b""
        self._partial[kind] = rest
        if cut < 0:
            return []
        text = data[:cut].decode("utf-8", "replace")
        plain = not _SPECIAL_NO_NL.search(text)
        out: list[LogLine] = []
        add = out.append
        stamped = self.stamped
        for line in text.split("\n"):
            stamp = ""
            if stamped:
                stamp, line = _split_stamp(line)
                if len(line) > LONG_LINE and stamp:
                    line = _join_parts(line.encode()).decode("utf-8", "replace")
            add((kind, line if plain else clean(line), stamp))
        return out

    def flush(self) -> list[LogLine]:
        """The unfinished lines (a last line without a newline), once the stream ended."""
        out = [to_line(kind, rest, self.stamped) for kind, rest in self._partial.items() if rest]
        self._partial.clear()
        return out


__all__ = ["Kind", "LineSplitter", "LogLine", "clean", "marker", "shown"]

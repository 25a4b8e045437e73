"""Docker's container status text ("Up 5 minutes", "Exited (0) 2 hours ago"), kept current here.

Between engine events the only thing that changes in a container list is this text, and it is a
function of one instant (the start for "Up", the finish for "Exited"/"Restarting") and the
daemon's clock. So a monitor that follows events lists once, learns each container's instant
(one inspect), and renders the text itself at every refresh instead of listing again.

The daemon's clock may differ from this machine's: ``ClockSkew`` narrows the difference from the
list's own texts (a text of "7 seconds" says the daemon's now minus the start lies in [7, 8)),
assuming none until a text proves otherwise, so a rendered text always agrees with the lists
seen. The wording follows Docker's (``container/state.go`` ``State.String`` and go-units
``HumanDuration``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

_MINUTE = 60.0
_HOUR = 3600.0

#: Every wording of go-units' HumanDuration, as it appears inside a status text.
_DURATION = re.compile(
    r"Less than a second|About a minute|About an hour"
    r"|\d+ (?:seconds?|minutes|hours|days|weeks|months|years)"
)


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: what Docker writes after "Up " and before " ago"."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / _MINUTE)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = math.floor(seconds / _HOUR + 0.5)  # Go's Duration.Round(time.Hour)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / _HOUR) // 24 // 365} years"


def duration_span(text: str) -> tuple[float, float] | None:
    """The durations (seconds, [low, high)) a sub-hour wording stands for; None for coarser
    ones (they say too little about a clock to be worth it)."""
    if text == "Less than a second":
        return (0.0, 1.0)
    if text == "About a minute":
        return (_MINUTE, 2 * _MINUTE)
    number, _, unit = text.partition(" ")
    if not number.isdigit():
        return None
    n = float(number)
    if unit in ("second", "seconds"):
        return (n, n + 1.0)
    if unit == "minutes":
        return (n * _MINUTE, (n + 1) * _MINUTE)
    return None


def parse_instant(value: object) -> float | None:
    """An engine timestamp ("2026-11-28T10:33:01.123456789Z") as epoch seconds; None for
    Docker's zero time, an empty or unreadable value."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    text = value.strip()
    match = re.match(r"^(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$", text)
    if match is None:
        return None
    head, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # Python reads at most microseconds
    zone = "+00:00" if zone in (None, "Z") else zone
    try:
        return datetime.fromisoformat(f"{head}{fraction}{zone}").timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class StatusClock:
    """A status text cut around its duration: ``head + human_duration(now - anchor) + tail``."""

    head: str
    tail: str
    #: The instant the duration counts from, on the daemon's clock (epoch seconds).
    anchor: float

    def render(self, daemon_now: float) -> str:
        return f"{self.head}{human_duration(max(0.0, daemon_now - self.anchor))}{self.tail}"

    def duration_text(self, status: str) -> str | None:
        """The duration part of ``status`` when it has this clock's shape, else None."""
        if not (status.startswith(self.head) and status.endswith(self.tail)):
            return None
        middle = status[len(self.head) : len(status) - len(self.tail)]
        return middle if _DURATION.fullmatch(middle) else None


def status_clock(status: str, started: float | None, finished: float | None) -> StatusClock | None:
    """The clock of a status text, given the container's start and finish (daemon's clock);
    None for texts that do not move (Created, Dead, Removal In Progress) or a missing instant."""
    if status.startswith("Up "):
        anchor = started
    elif status.startswith(("Exited (", "Restarting (")):
        anchor = finished
    else:
        return None
    match = _DURATION.search(status)
    if anchor is None or match is None:
        return None
    return StatusClock(status[: match.start()], status[match.end() :], anchor)


class ClockSkew:
    """The daemon's clock minus this machine's, narrowed from status texts; 0 while the texts
    allow it (clocks are usually in step), else the nearest value they allow."""

    def __init__(self) -> None:
        self.low = -math.inf
        self.high = math.inf

    def reset(self) -> None:
        self.low, self.high = -math.inf, math.inf

    def allows(self, clock: StatusClock, status: str, local_now: float) -> tuple[float, float]:
        """The skews ``status`` (listed at ``local_now``) allows for ``clock``."""
        text = clock.duration_text(status)
        span = duration_span(text) if text is not None else None
        if span is None:
            return (-math.inf, math.inf)
        return (clock.anchor + span[0] - local_now, clock.anchor + span[1] - local_now)

    def observe(self, clock: StatusClock, status: str, local_now: float) -> bool:
        """Narrow by one listed text; False (and nothing narrowed) when it contradicts what is
        known — the clock's anchor is stale or the daemon's clock jumped."""
        low, high = self.allows(clock, status, local_now)
        low, high = max(low, self.low), min(high, self.high)
        if low >= high:
            return False
        self.low, self.high = low, high
        return True

    @property
    def value(self) -> float:
        if self.low <= 0.0 < self.high:
            return 0.0
        if self.high <= 0.0:
            return self.high - min(1e-3, (self.high - self.low) / 2)
        return self.low

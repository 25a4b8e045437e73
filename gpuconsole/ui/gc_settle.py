"""Keeps Python's full garbage collections out of key presses.

A console at rest holds some 10^5-10^6 objects that live as long as it does (modules, Textual's
widgets, styles and caches, the rows). Python's oldest-generation collection walks all of them:
130 ms on these machines, landing on a key press now and then (the p95 of `?` in a real terminal
was that collection). Once the console has painted its first rows, what exists is collected once
and frozen (``gc.freeze``: the collector no longer walks it); later collections walk only what
was made since. Reference counting still frees everything as usual; only cycles among the frozen
objects would wait, and those are collected first.

Python still ran full collections of what was made since on its own schedule, and with most
objects frozen its rule ("a quarter more long-lived objects than at the last one") tripped every
few seconds while keys were pressed: the keys allocate (a filter, the details), so they were
where the collections landed, 20-110 ms each with 100 containers (a trace of the console in
tmux: one every ~3.5 s of filtering and details). So while the console runs, the automatic full
collection is off (``IdleCollector``) and the console makes it itself at a moment with no input:
as often as Python would have (its gen-2 count), only later, and at once if input never pauses
for long (``OVERDUE``), so cyclic garbage cannot pile up. The young generations are untouched.
"""

from __future__ import annotations

import gc
import time

_settled = False

#: A full collection is due after this many collections of the middle generation (Python's own
#: default threshold for the oldest generation).
FULL_AFTER = 10
#: ... and made even with input going on once this many are pending.
OVERDUE = 20 * FULL_AFTER
#: Input must have paused this long (seconds) for a due collection to be made.
IDLE_S = 1.0
#: How often (seconds) the app asks whether one is due.
CHECK_S = 2.0
#: Python's oldest-generation threshold while the collector runs: never reached in practice.
_NEVER = 2**30


def settle() -> None:
    """Collect, then freeze what survives (once per process; later calls do nothing)."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()


#: Python's thresholds before the first collector started, and how many run now (tests run
#: several apps in one process, one after another or at once).
_saved: tuple[int, int, int] | None = None
_running = 0


class IdleCollector:
    """Moves Python's full collections to moments without input, while started."""

    def __init__(self) -> None:
        self.last_input = time.monotonic()
        self.started = False
        #: Full collections made so far (tests read it).
        self.collections = 0

    def start(self) -> None:
        """Automatic full collections off (young ones as before)."""
        global _saved, _running
        if self.started:
            return
        self.started = True
        if _running == 0:
            _saved = gc.get_threshold()
            young, middle, _ = _saved
            gc.set_threshold(young, middle, _NEVER)
        _running += 1

    def stop(self) -> None:
        """Python's own schedule back once no collector runs (the app is closing)."""
        global _saved, _running
        if not self.started:
            return
        self.started = False
        _running -= 1
        if _running == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None

    def input_seen(self) -> None:
        self.last_input = time.monotonic()

    def tick(self, now: float | None = None) -> bool:
        """Make a full collection if one is due and input has paused (or it is long overdue);
        True if one was made."""
        if not self.started:
            return False
        pending = gc.get_count()[2]
        if pending < FULL_AFTER:
            return False
        now = time.monotonic() if now is None else now
        if now - self.last_input < IDLE_S and pending < OVERDUE:
            return False
        gc.collect()
        self.collections += 1
        return True

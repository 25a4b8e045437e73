"""One host's container list kept current from engine events instead of listed every refresh.

Listing every container every 2 s was, per SSH host at rest, the console's largest cost. Here
the list is taken once, then only what an event names is listed again (one filtered list call
of those ids, in the list's own wording); the whole list again every ``full_every`` seconds,
after the event stream reconnects or drops, when asked (``wake``), and when show-all changes.
Between events the only thing that moves is the status text ("Up 5 minutes"): it is rendered
here from the container's start or finish (one inspect when first seen or after an event) on
the daemon's clock (see backend/docker/status_text.py).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from gpuconsole.backend.docker.status_text import ClockSkew, StatusClock, status_clock
from gpuconsole.backend.models import ContainerSummary

#: How often the whole list is taken anyway (events are the news; this only mends a miss).
FULL_LIST_EVERY_S = 30.0


def follows_events(engine: object) -> bool:
    """Whether the engine can list some containers and tell their instants (DockerEngine)."""
    return callable(getattr(engine, "list_some", None)) and callable(
        getattr(engine, "container_times", None)
    )


class LiveList:
    """The containers of one engine as of the last event; ``current()`` on each refresh."""

    def __init__(self, engine: Any, full_every: float = FULL_LIST_EVERY_S) -> None:
        self.engine = engine
        self.full_every = full_every
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._full_due = True
        self._next_full = 0.0
        self._listed_all: bool | None = None
        #: Container id -> its list entry (the status text as last listed), newest first.
        self._known: dict[str, ContainerSummary] = {}
        self._clocks: dict[str, StatusClock] = {}
        self._skew = ClockSkew()
        self._shown: tuple[ContainerSummary, ...] = ()
        #: Container id -> (its list entry, the entry shown for it last time).
        self._made: dict[str, tuple[ContainerSummary, ContainerSummary]] = {}
        #: Whole lists and filtered lists taken (tests and benches read them).
        self.full_lists = 0
        self.partial_lists = 0

    # -- news (any thread) ----------------------------------------------------------------------

    def changed(self, container_id: str) -> None:
        """An event about this container (or, with no id, about the stream)."""
        with self._lock:
            if container_id:
                self._dirty.add(container_id)
            else:
                self._full_due = True

    def list_all_next(self) -> None:
        with self._lock:
            self._full_due = True

    # -- the refresh (the monitor's thread) -----------------------------------------------------

    def current(self, all: bool) -> tuple[ContainerSummary, ...]:
        """The list now; raises what the engine raised (then the whole list is taken next)."""
        now = time.monotonic()
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            full = self._full_due or now >= self._next_full or all != self._listed_all
            self._full_due = False
        try:
            if full:
                self._list_all(all, now)
            elif dirty:
                self._list_some(sorted(dirty), all)
        except BaseException:
            with self._lock:
                self._full_due = True
            raise
        return self._render(time.time())

    def _list_all(self, all: bool, now: float) -> None:
        before = time.time()
        listed = self.engine.list_containers(all=all)
        at = (before + time.time()) / 2
        self.full_lists += 1
        self._next_full = now + self.full_every
        self._listed_all = all
        self._known = {c.id: c for c in listed}
        self._clocks = {cid: k for cid, k in self._clocks.items() if cid in self._known}
        self._skew.reset()
        self._learn(listed, at)

    def _list_some(self, ids: list[str], all: bool) -> None:
        before = time.time()
        listed = self.engine.list_some(ids, all=all)
        at = (before + time.time()) / 2
        self.partial_lists += 1
        for cid in ids:
            self._known.pop(cid, None)
            self._clocks.pop(cid, None)
        # Newest first, as the engine lists them.
        merged = [*listed, *self._known.values()]
        merged.sort(key=lambda c: -c.created)
        self._known = {c.id: c for c in merged}
        self._learn(listed, at)

    def _learn(self, listed: tuple[ContainerSummary, ...], at: float) -> None:
        """Clocks for the listed texts that move, and the skew their texts allow."""
        moving = [c for c in listed if status_clock(c.status, 0.0, 0.0) is not None]
        stale = [c.id for c in moving if not self._consistent(c, at)]
        if stale:
            times = self.engine.container_times(stale)
            for cid in stale:
                c = self._known[cid]
                started, finished = times.get(cid, (None, None))
                clock = status_clock(c.status, started, finished)
                if clock is None:
                    self._clocks.pop(cid, None)
                elif not self._skew.observe(clock, c.status, at):
                    # The daemon's clock moved (or the instants do not fit): trust this list.
                    self._skew.reset()
                    self._skew.observe(clock, c.status, at)
                    self._clocks[cid] = clock
                else:
                    self._clocks[cid] = clock

    def _consistent(self, c: ContainerSummary, at: float) -> bool:
        """The container's known clock explains its listed text (and narrows the skew)."""
        clock = self._clocks.get(c.id)
        if clock is None or clock.duration_text(c.status) is None:
            return False
        return self._skew.observe(clock, c.status, at)

    def _render(self, local_now: float) -> tuple[ContainerSummary, ...]:
        """The list with every moving status text as of now; the very same tuple (and entries)
        as last time when no text changed, so readers can compare by identity."""
        daemon_now = local_now + self._skew.value
        made: dict[str, tuple[ContainerSummary, ContainerSummary]] = {}
        out: list[ContainerSummary] = []
        for cid, c in self._known.items():
            clock = self._clocks.get(cid)
            text = clock.render(daemon_now) if clock is not None else c.status
            last = self._made.get(cid)
            if last is not None and last[0] is c and last[1].status == text:
                shown = last[1]
            elif text == c.status:
                shown = c
            else:
                shown = dataclasses.replace(c, status=text)
            made[cid] = (c, shown)
            out.append(shown)
        self._made = made
        if len(out) == len(self._shown) and all(
            a is b for a, b in zip(out, self._shown, strict=True)
        ):
            return self._shown
        self._shown = tuple(out)
        return self._shown

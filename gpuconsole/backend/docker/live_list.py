"""One engine's container list kept current from its events instead of listed every refresh.

Listing every container every 2 s was, per SSH host at rest, the console's largest cost. Here
the list is taken once, then only what an event names is listed again (one filtered list call
of those ids, in the list's own wording); the whole list again every ``full_every`` seconds,
after the event stream connects or drops, when asked (``list_all_next``: a monitor's wake), after
a failed refresh, and when show-all changes. Between events the only thing that moves is the
status text ("Up 5 minutes"): it is rendered here from the container's start or finish (one
inspect when first seen or after an event) on the daemon's clock (see status_text.py).

The engine owns its list (``DockerEngine.snapshot`` reads it) and feeds it from its own event
streams, so whatever stands between a monitor and the engine — anything that implements the
DockerHost protocol by wrapping an engine and its ``snapshot`` — sees the same protocol call
as before, not a list handed in from outside. The list is trusted only while at least one of
the engine's event streams is connected (``follow``); with none, every refresh lists whole.

A refresh that lists nothing still asks the engine one cheap thing (``ping``: GET /_ping over
the same transport and with the same timeout as the list, written by hand on a connection kept
for it: raw_ping.py), so a hung engine (dockerd stopped) is noticed by the refresh that would
have listed it, as before.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Protocol

from gpuconsole.backend.docker.status_text import ClockSkew, StatusClock, status_clock
from gpuconsole.backend.models import ContainerSummary

#: How often the whole list is taken anyway (events are the news; this only mends a miss).
FULL_LIST_EVERY_S = 30.0

#: Engine events that change a container's list entry (and so what a table shows); exec_*,
#: top, attach and the like do not (a health check's exec would otherwise relist every time).
RELEVANT_EVENTS = frozenset(
    {
        *("create", "start", "restart", "die", "stop", "kill", "destroy", "pause"),
        *("unpause", "rename", "update", "oom", "health_status", "reconnect", "disconnect"),
    }
)

#: Past this many containers named by events and not yet listed again, the whole list is taken
#: instead (and the names dropped): an engine followed by a stream nobody refreshes from (the
#: recorder's) must not collect ids for ever.
MAX_PENDING = 256


def relevant(action: str) -> bool:
    """Whether an engine event's action ("start", "health_status: healthy") changes the list."""
    return action.split(":", 1)[0].strip() in RELEVANT_EVENTS


class ListSource(Protocol):
    """What the list needs of its engine (DockerEngine)."""

    def list_containers(self, all: bool = True) -> tuple[ContainerSummary, ...]: ...

    def list_some(
        self, container_ids: list[str], all: bool = True
    ) -> tuple[ContainerSummary, ...]: ...

    def container_times(self, container_ids: list[str]) -> dict[str, tuple[float | None, ...]]: ...

    def ping(self) -> None: ...


class LiveList:
    """The containers of one engine as of the last event; ``current()`` on each refresh."""

    def __init__(self, engine: ListSource, full_every: float = FULL_LIST_EVERY_S) -> None:
        self.engine = engine
        self.full_every = full_every
        self._lock = threading.Lock()
        #: Held by ``current`` (one refresh at a time reads and rewrites the kept entries).
        self._refresh_lock = threading.Lock()
        self._dirty: set[str] = set()
        self._full_due = True
        self._next_full = 0.0
        self._listed_all: bool | None = None
        #: The event streams now connected (the list is trusted only while one is).
        self._followers: set[object] = set()
        #: Container id -> its list entry (the status text as last listed), newest first.
        self._known: dict[str, ContainerSummary] = {}
        self._clocks: dict[str, StatusClock] = {}
        self._skew = ClockSkew()
        self._shown: tuple[ContainerSummary, ...] = ()
        #: Container id -> (its list entry, the entry shown for it last time).
        self._made: dict[str, tuple[ContainerSummary, ContainerSummary]] = {}
        #: Whole lists, filtered lists and liveness pings taken (tests and benches read them).
        self.full_lists = 0
        self.partial_lists = 0
        self.pings = 0

    # -- the streams (their threads) ------------------------------------------------------------

    def follow(self, stream: object, connected: bool) -> None:
        """An event stream of the engine connected (True) or dropped or closed (False); either
        way what happened in between is unknown, so the whole list is taken next."""
        with self._lock:
            if connected:
                self._followers.add(stream)
            else:
                self._followers.discard(stream)
            self._full_due = True

    @property
    def following(self) -> bool:
        """Whether an event stream is connected, so events will say what changed."""
        return bool(self._followers)

    # -- news (any thread) ----------------------------------------------------------------------

    def changed(self, container_id: str) -> None:
        """An event about this container (or, with no id, about the stream)."""
        with self._lock:
            if container_id and len(self._dirty) < MAX_PENDING:
                self._dirty.add(container_id)
            else:
                self._dirty.clear()
                self._full_due = True

    def list_all_next(self) -> None:
        """Take the whole list at the next refresh (a monitor's wake: an action's result)."""
        with self._lock:
            self._full_due = True

    # -- the refresh (the monitor's thread) -----------------------------------------------------

    def current(self, all: bool) -> tuple[ContainerSummary, ...]:
        """The list now; raises what the engine raised (then the whole list is taken next).
        A refresh that lists nothing pings the engine instead: a hung engine must fail this
        refresh (and be reported) as a list call would have."""
        with self._refresh_lock:
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
                else:
                    self.engine.ping()
                    self.pings += 1
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

"""One poller per host: refresh, then wait for the interval or an engine event, never overlapping.

The poller runs in a Textual thread worker; everything it learns crosses to the event loop as an
immutable snapshot inside a message. Engine events (start, die, destroy, ...) wake it at once,
so state changes show immediately while CPU/memory follow the slower interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from textual.message import Message

from gpuconsole.backend.docker.host import DockerHost, EventWatch
from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable
from gpuconsole.backend.models import EngineState, HostStatus
from gpuconsole.ui.messages import HostDown, PollFailed, SnapshotReady

#: Engine events that change what the table shows; exec_*, top, attach and the like do not.
_RELEVANT = frozenset(
    {
        "create",
        "start",
        "restart",
        "die",
        "stop",
        "kill",
        "destroy",
        "pause",
        "unpause",
        "rename",
        "update",
        "oom",
        "health_status",
        "reconnect",
    }
)


class HostPoller:
    def __init__(
        self,
        host: DockerHost,
        post: Callable[[Message], object],
        interval: float = 2.0,
        down_interval: float = 2.0,
        show_all: bool = True,
    ) -> None:
        self.host = host
        self._post = post
        self.interval = interval
        self.down_interval = down_interval
        self.show_all = show_all
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._watch: EventWatch | None = None
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._watch is not None:
            self._watch.close()

    def _on_event(self, action: str, container_id: str) -> None:
        base = action.split(":", 1)[0].strip()
        if base in _RELEVANT:
            self._wake.set()

    def run(self) -> None:
        """The worker body: loops until stop()."""
        while not self._stopped.is_set():
            self._wake.clear()
            wait = self.interval
            try:
                snapshot = self.host.snapshot(all=self.show_all)
            except HostUnreachable as exc:
                self.failures += 1
                wait = self.down_interval
                status = HostStatus(
                    self.host.name,
                    self.host.address,
                    EngineState.DOWN,
                    error=exc.reason,
                    hint=exc.hint,
                )
                self._post(HostDown(status, self.failures))
            except GpuconsoleError as exc:
                self._post(PollFailed(str(exc)))
            except Exception as exc:  # never let a poller die: show it and go on
                self._post(PollFailed(f"refresh failed: {type(exc).__name__}: {exc}"))
            else:
                self.failures = 0
                self._post(SnapshotReady(snapshot))
                if self._watch is None:
                    self._watch = self.host.watch_events(self._on_event)
            if self._stopped.is_set():
                break
            self._wake.wait(wait)

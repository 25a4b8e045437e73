"""Messages carrying the monitor layer's plain events onto the event loop.

``post_message`` is thread-safe: monitors emit from their worker threads, handlers run on the
loop, and only the loop touches widgets.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from gpuconsole.backend.models import HostSnapshot, HostStatus
from gpuconsole.monitor.alerts import Alert
from gpuconsole.monitor.gpu_view import GpuView


class SnapshotReady(Message):
    """A full refresh of one host arrived."""

    def __init__(self, snapshot: HostSnapshot, host: str = "") -> None:
        self.snapshot = snapshot
        self.host = host or snapshot.status.host
        super().__init__()


class HostDown(Message):
    """The host's engine (or the host) could not be reached on the last attempt."""

    def __init__(
        self, status: HostStatus, attempt: int, retry_in: float = 2.0, timed_out: bool = False
    ) -> None:
        self.status = status
        self.host = status.host
        self.attempt = attempt
        self.retry_in = retry_in
        #: The engine took the request and never answered (hung), rather than refusing it.
        self.timed_out = timed_out
        super().__init__()


class HostSlow(Message):
    """A refresh of the host is late: its engine has not answered since ``since``
    (``time.monotonic()``)."""

    def __init__(self, host: str, since: float) -> None:
        self.host = host
        self.since = since
        super().__init__()


class PollFailed(Message):
    """A refresh failed for a reason other than an unreachable engine."""

    def __init__(self, error: str, host: str = "") -> None:
        self.error = error
        self.host = host
        super().__init__()


class GpuUpdate(Message):
    """A GPU sample of one host with the history tails and the latest container attribution."""

    def __init__(self, view: GpuView, host: str = "") -> None:
        self.view = view
        self.host = host or view.snapshot.host
        super().__init__()


class LinkChanged(Message):
    """An SSH host's connection changed state (connecting, up, down, needs trust, refused)."""

    def __init__(self, host: str, link: Any) -> None:
        self.host = host
        self.link = link
        super().__init__()


class AlertNotice(Message):
    """An alert was raised or cleared on a host."""

    def __init__(self, alert: Alert) -> None:
        self.alert = alert
        self.host = alert.host
        super().__init__()


class AlertCommandError(Message):
    """``[alerts] command`` failed for an alert."""

    def __init__(self, alert: Alert, error: str) -> None:
        self.alert = alert
        self.error = error
        super().__init__()

"""Messages posted from poller threads to the screen (Textual's post_message is thread-safe)."""

from __future__ import annotations

from textual.message import Message

from gpuconsole.backend.models import HostSnapshot, HostStatus
from gpuconsole.ui.gpu_view import GpuView


class SnapshotReady(Message):
    """A full refresh of one host arrived."""

    def __init__(self, snapshot: HostSnapshot) -> None:
        self.snapshot = snapshot
        super().__init__()


class HostDown(Message):
    """The host's engine could not be reached on the last attempt."""

    def __init__(self, status: HostStatus, attempt: int) -> None:
        self.status = status
        self.attempt = attempt
        super().__init__()


class PollFailed(Message):
    """A refresh failed for a reason other than an unreachable engine."""

    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__()


class GpuUpdate(Message):
    """A GPU sample with the history tails and the latest container attribution."""

    def __init__(self, view: GpuView) -> None:
        self.view = view
        super().__init__()

"""Typed errors raised by the backend.

Every error carries a message a user can act on (what failed, where, and how to fix it); the CLI
prints it and exits non-zero, the TUI shows it as a notification. Nothing above the backend should
need to know about docker-py, paramiko or pynvml exception classes.
"""

from __future__ import annotations


class GpuconsoleError(Exception):
    """Base class: ``str(err)`` is the user-facing message."""


class HostUnreachable(GpuconsoleError):
    """The Docker engine (or remote host) cannot be reached at all."""

    def __init__(self, host: str, address: str, reason: str, hint: str = "") -> None:
        self.host = host
        self.address = address
        self.reason = reason
        self.hint = hint
        msg = f"cannot reach the Docker engine of {host!r} at {address}: {reason}"
        if hint:
            msg += f" — {hint}"
        super().__init__(msg)


class DockerApiError(GpuconsoleError):
    """The engine answered, but refused or failed the request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ContainerNotFound(DockerApiError):
    """No container has that name or id on the host."""

    def __init__(self, ref: str, host: str) -> None:
        self.ref = ref
        super().__init__(f"no such container {ref!r} on {host!r}", status=404)


class ActionRejected(DockerApiError):
    """The engine refused an action in the container's current state (HTTP 409 and friends)."""


class ReadOnlyMode(GpuconsoleError):
    """An action that changes something was tried while the console is read-only."""

    def __init__(self, action: str) -> None:
        super().__init__(
            f"read-only mode: {action!r} is disabled (restart gpuconsole without --read-only)"
        )

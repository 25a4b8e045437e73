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

    def __init__(
        self, host: str, address: str, reason: str, hint: str = "", *, timed_out: bool = False
    ) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        self.hint = hint
        #: The engine took the connection but did not answer in time (hung or overloaded), as
        #: opposed to refusing it: its containers are most likely still there, just unseen.
        self.timed_out = timed_out
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


class LaunchRejected(GpuconsoleError):
    """A launch request has invalid fields; nothing was created.

    ``errors`` lists every problem at once as (field, message) so a form can mark each field;
    ``missing_sources`` names bind-mount sources that do not exist, which a UI may offer to
    create (then retry with ``create_missing_sources=True``).
    """

    def __init__(
        self,
        errors: list[tuple[str, str]] | tuple[tuple[str, str], ...],
        missing_sources: tuple[str, ...] = (),
    ) -> None:
        self.errors: tuple[tuple[str, str], ...] = tuple(errors)
        self.missing_sources = missing_sources
        lines = [f"{field}: {message}" for field, message in self.errors]
        super().__init__(
            "launch rejected:\n  " + "\n  ".join(lines) if lines else "launch rejected"
        )

    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(field for field, _ in self.errors))


class LaunchFailed(GpuconsoleError):
    """The engine accepted the request but the container did not come up; it was removed.

    ``logs`` holds the container's last log lines (secrets scrubbed) when there were any.
    """

    def __init__(self, message: str, logs: str = "", stage: str = "") -> None:
        self.logs = logs
        self.stage = stage
        text = message
        if logs.strip():
            text += "\n--- last log lines ---\n" + logs.rstrip()
        super().__init__(text)


class LaunchCancelled(GpuconsoleError):
    """The user cancelled a launch; whatever it had created was removed."""

    def __init__(self, stage: str = "") -> None:
        self.stage = stage
        super().__init__(
            "launch cancelled" + (f" during {stage}" if stage else "") + "; nothing kept"
        )


class BuildFailed(GpuconsoleError):
    """A derived-image build could not be done (unsupported base, or a failing build step)."""

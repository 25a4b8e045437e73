"""One interactive session, start to end: a shell in a container or on a host, on this terminal.

Shared by ``gpuconsole shell`` and the console's ``e`` / host-shell keys, so both choose the
shell, size the pty and explain failures the same way. A container shell goes through the
Docker API (``exec_pty``); a host shell through the host's machine (a local login shell, or a
shell on the host's existing SSH connection — no second login).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpuconsole.backend.shells.bridge import Ending, SessionEnd, attach, terminal_size
from gpuconsole.backend.shells.exec_pty import (
    AUTO_SHELL,
    ExecPty,
    ShellRefused,
    open_exec,
    shell_argv,
)

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.backend.hosts.machine import Pty


@dataclass(frozen=True, slots=True)
class ShellRequest:
    """What to open: ``container`` None means a shell on the host itself."""

    host: Host
    container: str | None = None
    shell: str | None = None
    user: str | None = None
    workdir: str | None = None

    @property
    def where(self) -> str:
        if self.container is None:
            return f"host {self.host.name}"
        return f"{self.container} on {self.host.name}"


def open_session(request: ShellRequest, cols: int, rows: int) -> Pty:
    """Start the program on a pty of the right size; raises GpuconsoleError (ContainerNotFound,
    ContainerNotRunning, HostUnreachable, CommandError) with a message for the user."""
    if request.container is None:
        argv = shell_argv(request.shell) if request.shell else None
        return request.host.machine.open_pty(argv, cols=cols, rows=rows)
    return open_exec(
        request.host.engine,
        request.container,
        shell_argv(request.shell),
        user=request.user,
        workdir=request.workdir,
        cols=cols,
        rows=rows,
    )


def run_session(request: ShellRequest) -> SessionEnd:
    """Open the session and hand it this terminal until it ends.

    Raises before the terminal is touched when the session cannot start; raises ShellRefused
    after it when the runtime could not start the program (its words were shown too).
    """
    cols, rows = terminal_size()
    session = open_session(request, cols, rows)
    try:
        end = attach(session)
    finally:
        session.close()
    refused = refusal(request, session)
    if refused is not None:
        raise refused
    return end


def refusal(request: ShellRequest, session: Pty) -> ShellRefused | None:
    """After a container session that ended at once: why the runtime did not start it, in
    words that name the option to fix."""
    if not isinstance(session, ExecPty):
        return None
    found = session.refusal()
    if found is None:
        return None
    kind, runtime_says = found
    if kind == "user":
        return ShellRefused(
            f"no user {request.user!r} in {request.where} — give a user that exists there "
            "(--user NAME or UID[:GID])",
            126,
        )
    if kind == "workdir":
        return ShellRefused(
            f"no directory {request.workdir!r} in {request.where} — check --workdir", 126
        )
    if kind == "missing" and (not request.shell or shell_argv(request.shell) == list(AUTO_SHELL)):
        return ShellRefused(
            f"{request.where} has no /bin/sh (a distroless or scratch image?) — name a program "
            "that exists in it with --shell (or [shell] command in the config)",
            127,
        )
    if kind == "missing":
        return ShellRefused(
            f"{request.shell!r} was not found in {request.where} — check the --shell program, "
            "or leave it out for bash, else sh",
            127,
        )
    return ShellRefused(
        f"the engine could not start a shell in {request.where}: {runtime_says}", 126
    )


def describe_end(request: ShellRequest, end: SessionEnd) -> str:
    """One line for after the session: how it ended, with the exit code."""
    if end.ending is Ending.DETACHED:
        return f"left the shell in {request.where} ({end.message})"
    if end.ending is Ending.LOST:
        return f"lost the connection to {request.where}: {end.message}"
    if end.exit_code is None:
        return f"shell in {request.where} ended (exit code unknown)"
    return f"shell in {request.where} exited with code {end.exit_code}"


__all__ = [
    "ShellRequest",
    "describe_end",
    "open_session",
    "refusal",
    "run_session",
]

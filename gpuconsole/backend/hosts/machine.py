"""The ``Machine`` protocol: what gpuconsole needs from the computer a Docker engine runs on.

Everything that touches "the host" — reading cgroup files, /proc of GPU processes, running
``nvidia-smi``, probing a published port, checking a bind-mount source, opening a shell — goes
through a Machine, so the same code serves this computer (``LocalMachine``) and a server reached
over one SSH connection (``SshMachine``). Locality is asked here (``is_local``), never guessed
from an address string.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable


class CommandError(GpuconsoleError):
    """A command could not be started, timed out, or failed; ``str()`` is for the user."""


class MachineUnreachable(HostUnreachable):
    """The machine itself cannot be reached (SSH down, refused, host key not trusted).

    A HostUnreachable, so every caller that already copes with a dead engine (pollers, the CLI)
    copes with a dead SSH link the same way.
    """

    def __init__(self, host: str, address: str, reason: str, hint: str = "") -> None:
        super().__init__(host, address, reason, hint)
        msg = f"cannot reach host {host!r} at {address}: {reason}"
        if hint:
            msg += f" — {hint}"
        self.args = (msg,)


class LineStream(Protocol):
    """A running command's output, line by line, until it exits or ``close()`` stops it."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """A byte stream to a port or socket on the machine (a socket, or an SSH channel).

    Both ``socket.socket`` and ``paramiko.Channel`` satisfy it, so http.client and docker-py
    can use either.
    """

    def sendall(self, data: bytes) -> None: ...

    def recv(self, size: int) -> bytes: ...

    def settimeout(self, timeout: float | None) -> None: ...

    def close(self) -> None: ...


class Pty(Protocol):
    """An interactive program on a pseudo-terminal of the machine (shells; see issue 6)."""

    def read(self, size: int = 65536) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def resize(self, cols: int, rows: int) -> None: ...

    def fileno(self) -> int: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def close(self) -> None: ...


@runtime_checkable
class Machine(Protocol):
    """A computer that runs a Docker engine (and maybe GPUs). Every call has a timeout.

    Methods raise ``CommandError`` for a command that fails, ``MachineUnreachable`` when the
    machine cannot be reached at all, and nothing else.
    """

    @property
    def name(self) -> str:
        """The host's name in the console (``local``, ``gpu1``)."""
        ...

    @property
    def address(self) -> str:
        """Where it is reached, for messages (``this machine``, ``aiuser@gpu1.lab:22``)."""
        ...

    @property
    def is_local(self) -> bool:
        """True for the computer gpuconsole runs on: its files, ports and tools are ours."""
        ...

    def run(self, argv: Sequence[str], timeout: float, *, stdin: bytes | None = None) -> str:
        """Run a command to completion and return its stdout; CommandError on exit != 0."""
        ...

    def stream(self, argv: Sequence[str]) -> LineStream:
        """Start a long-lived command; stderr is merged so its error messages are seen."""
        ...

    def read_files(self, paths: Sequence[str], timeout: float = 10.0) -> dict[str, str]:
        """Read many small text files in one go; unreadable or missing ones are left out.

        Remotely this is ONE command however many paths there are (cgroup stats, /proc).
        """
        ...

    def existing(self, paths: Sequence[str], timeout: float = 10.0) -> frozenset[str]:
        """Which of ``paths`` exist on the machine (bind-mount sources)."""
        ...

    def make_dirs(self, paths: Sequence[str], timeout: float = 10.0) -> None:
        """``mkdir -p`` each path on the machine; CommandError naming the one that failed."""
        ...

    def connect_tcp(self, host: str, port: int, timeout: float = 5.0) -> Connection:
        """A connection to ``host:port`` as seen from the machine (its 127.0.0.1 is its own).

        Raises OSError when nothing listens (as ``socket.create_connection`` does).
        """
        ...

    def connect_unix(self, path: str, timeout: float = 5.0) -> Connection:
        """A connection to a unix socket on the machine (the Docker engine's)."""
        ...

    def open_pty(
        self,
        argv: Sequence[str] | None,
        *,
        cols: int = 80,
        rows: int = 24,
        term: str = "xterm-256color",
    ) -> Pty:
        """Run ``argv`` (None: the user's login shell) on a pseudo-terminal."""
        ...

    def close(self) -> None: ...

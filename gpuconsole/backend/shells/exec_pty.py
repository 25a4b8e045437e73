"""A shell (or any command) on a pseudo-terminal inside a container, through the Docker API.

No docker CLI: ``POST /containers/ID/exec`` with a tty, then the exec is started on a hijacked
connection — the same connection kind every API call of the host uses, so on a remote host it is
one more channel of the host's SSH connection (no login, no session). Window sizes go through
``POST /exec/ID/resize``; the exit code comes from inspecting the exec once its stream ends.

The default shell is chosen inside the container by ``/bin/sh`` itself (bash if it is there,
else sh), in one exec instead of a probe per candidate. An image without ``/bin/sh`` (distroless)
gets ``ShellRefused`` with what was tried.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.errors import ActionRejected, GpuconsoleError

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost

#: bash where the image has it (history, completion), else the POSIX shell.
AUTO_SHELL = (
    "/bin/sh",
    "-c",
    "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi",
)

#: What the exec's stream says when its program cannot be started (runc, crun, containerd).
_NOT_FOUND = ("no such file or directory", "executable file not found", "not found in $path")
_REFUSALS = ("oci runtime exec failed", "unable to find user", "unable to start container process")


class ContainerNotRunning(ActionRejected):
    """The container exists but does not run: a shell needs it started first."""

    def __init__(self, name: str, host: str, state: str) -> None:
        self.container = name
        self.host = host
        self.state = state
        super().__init__(
            f"container {name!r} on {host} is not running ({state}) — start it first "
            "(s in the console, or `gpuconsole shell --start`)",
            409,
        )


class ShellRefused(GpuconsoleError):
    """The runtime could not start the program: not found (``exit_code`` 127), or a bad user
    or working directory (126), as ``docker exec`` reports them."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def shell_argv(shell: str | None) -> list[str]:
    """The command for ``--shell`` / the config's shell: split like a shell would; None or
    empty: bash, else sh (``AUTO_SHELL``)."""
    if shell is None or not shell.strip():
        return list(AUTO_SHELL)
    try:
        argv = shlex.split(shell)
    except ValueError as exc:
        raise GpuconsoleError(f"shell {shell!r} cannot be split into words: {exc}") from None
    return argv


class ExecPty:
    """A program on a tty in a container: the Machine ``Pty`` protocol over a hijacked exec.

    ``fileno()`` is the connection's (a socket, or an SSH channel's pipe), so a caller can
    select on it with its own terminal; ``read`` returns b"" once the program has exited.
    """

    def __init__(
        self, host: DockerHost, container_id: str, exec_id: str, what: str, response: Any
    ) -> None:
        self._host = host
        self.container_id = container_id
        self.exec_id = exec_id
        self._what = what
        self._response = response
        fp = response.raw._fp.fp  # http.client's buffered reader of the hijacked connection
        self._sock = fp.raw._sock  # a socket.socket, or the SSH transport's socket façade
        self._pending = _leftover(fp, self._sock)
        self._first: bytes = b""  # the start of the output, to recognise "no such file"
        self._exit: int | None = None

    def read(self, size: int = 65536) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
        else:
            try:
                data = self._sock.recv(size)
            except OSError:
                data = b""
        if len(self._first) < 512:
            self._first += data[: 512 - len(self._first)]
        return data

    @property
    def has_pending(self) -> bool:
        """Bytes already received with the HTTP answer: read them before selecting."""
        return bool(self._pending)

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        from gpuconsole.backend.docker.host import engine_api

        with contextlib.suppress(GpuconsoleError):
            api, call = engine_api(self._host)
            with call(None, "resize"):
                api.exec_resize(self.exec_id, height=rows, width=cols)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def wait(self, timeout: float | None = None) -> int | None:
        """The program's exit code once it has ended (the engine may need a moment to notice
        after the stream closes); None while it still runs after ``timeout`` seconds."""
        if self._exit is not None:
            return self._exit
        from gpuconsole.backend.docker.host import engine_api

        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        api, call = engine_api(self._host)
        while True:
            try:
                with call(None, "exec inspect"):
                    state = api.exec_inspect(self.exec_id)
            except GpuconsoleError:
                return None
            if not state.get("Running") and state.get("ExitCode") is not None:
                self._exit = int(state["ExitCode"])
                return self._exit
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def refusal(self) -> tuple[str, str] | None:
        """When the runtime refused to start the program (exit 126/127 with its message
        first): (``user`` | ``workdir`` | ``missing`` | ``other``, the runtime's line)."""
        if self._exit not in (126, 127):
            return None
        text = self._first.decode("utf-8", "replace").strip()
        low = text.lower()
        if not any(marker in low for marker in _REFUSALS):
            return None  # the program ran and chose that exit code itself
        line = text.splitlines()[0] if text else ""
        if "unable to find user" in low or "no matching entries in passwd" in low:
            return "user", line
        if "chdir" in low or "cwd" in low:
            return "workdir", line
        if any(marker in low for marker in _NOT_FOUND):
            return "missing", line
        return "other", line

    def close(self) -> None:
        """End the session. A program still running is hung up on, as a terminal closing
        would: the engine itself leaves an exec running when its client goes away."""
        from gpuconsole.backend.ssh.docker_api import close_stream

        if self._exit is None:
            with contextlib.suppress(Exception):
                self._hang_up()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        close_stream(self._response)

    def _hang_up(self) -> None:
        """SIGHUP to the exec's process, by its PID inside the container (NSpid of the host's
        /proc, read through the host's machine), from a short second exec."""
        from gpuconsole.backend.docker.host import engine_api

        api, call = engine_api(self._host)
        with call(None, "exec inspect"):
            state = api.exec_inspect(self.exec_id)
        host_pid = state.get("Pid")
        if not state.get("Running") or not host_pid:
            return
        status = self._host.machine.read_files([f"/proc/{host_pid}/status"], timeout=5.0)
        inner = _inner_pid(status.get(f"/proc/{host_pid}/status", ""))
        if inner is None:
            return
        with call(None, "hang up"):
            kill = api.exec_create(
                self.container_id,
                ["/bin/sh", "-c", f"kill -HUP {inner} || kill -KILL {inner}"],
                user="0",
            )
            api.exec_start(kill["Id"], detach=True)


def _inner_pid(status: str) -> int | None:
    """The innermost PID of ``NSpid:`` in /proc/PID/status (the PID inside the container)."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            fields = line.split()[1:]
            return int(fields[-1]) if fields and fields[-1].isdigit() else None
    return None


def _leftover(fp: Any, sock: Any) -> bytes:
    """What http.client's reader took from the connection past the 101 answer's headers (the
    program's first output can arrive with them); read without blocking."""
    try:
        sock.settimeout(0.0)
    except OSError:
        return b""
    try:
        data = fp.read1(65536)
    except (BlockingIOError, TimeoutError, OSError, ValueError):
        data = b""
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)
    return bytes(data or b"")


def open_exec(
    host: DockerHost,
    ref: str,
    argv: Sequence[str] | None = None,
    *,
    user: str | None = None,
    workdir: str | None = None,
    cols: int = 80,
    rows: int = 24,
    term: str = "xterm-256color",
) -> ExecPty:
    """Start ``argv`` (None: bash, else sh) on a tty in the running container ``ref``.

    Raises ContainerNotFound, ContainerNotRunning (with its state, so a caller can offer to
    start it), HostUnreachable, or ActionRejected (the engine refused the exec: bad user,
    bad working directory).
    """
    from gpuconsole.backend.docker.host import engine_api

    api, call = engine_api(host)
    with call(ref, "shell"):
        info = api.inspect_container(ref)
    state = info.get("State") or {}
    name = str(info.get("Name") or ref).lstrip("/")
    if not state.get("Running") or state.get("Paused") or state.get("Restarting"):
        raise ContainerNotRunning(name, host.name, _describe_state(state))
    command = list(argv) if argv else list(AUTO_SHELL)
    env = {"TERM": term}
    with call(name, "shell"):
        created = api.exec_create(
            info["Id"],
            command,
            stdin=True,
            tty=True,
            user=user or "",
            workdir=workdir or None,
            environment=env,
        )
    exec_id = str(created["Id"])
    with call(name, "shell"):
        response = api._post_json(
            api._url("/exec/{0}/start", exec_id),
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            data={"Tty": True, "Detach": False},
            stream=True,
        )
        api._raise_for_status(response)
    session = ExecPty(host, str(info["Id"]), exec_id, command[0], response)
    session.resize(cols, rows)
    return session


def _describe_state(state: dict[str, Any]) -> str:
    status = str(state.get("Status") or "stopped")
    if status == "exited":
        return f"exited with code {state.get('ExitCode', '?')}"
    return status


__all__ = [
    "AUTO_SHELL",
    "ContainerNotRunning",
    "ExecPty",
    "ShellRefused",
    "open_exec",
    "shell_argv",
]

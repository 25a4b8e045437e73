"""``LocalMachine``: the computer gpuconsole runs on, as a Machine.

Plain subprocesses, file reads and sockets: the Machine protocol costs nothing here, and the code
above it (cgroup stats, attribution, readiness, mount checks) is the same for a remote host.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import struct
import subprocess
import termios
from collections.abc import Iterator, Sequence

from gpuconsole.backend.hosts.machine import CommandError, Connection, LineStream, Pty


class _PopenLines:
    """A local command's merged output, line by line; ``close()`` stops the process."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __iter__(self) -> Iterator[str]:
        stdout = self._proc.stdout
        if stdout is None:
            return
        try:
            yield from stdout
        except (ValueError, OSError):  # closed under us by close()
            return

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class _LocalPty:
    """A child process on a fresh pseudo-terminal of this machine."""

    def __init__(self, argv: Sequence[str], cols: int, rows: int, term: str) -> None:
        master, slave = os.openpty()
        _set_size(slave, cols, rows)
        env = {**os.environ, "TERM": term}
        try:
            self._proc = subprocess.Popen(
                list(argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
                close_fds=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
        except OSError as err:
            os.close(master)
            raise CommandError(f"cannot start {argv[0]}: {err.strerror or err}") from err
        finally:
            os.close(slave)
        self._master = master

    def read(self, size: int = 65536) -> bytes:
        try:
            return os.read(self._master, size)
        except OSError:  # EIO: the child closed its side
            return b""

    def write(self, data: bytes) -> None:
        os.write(self._master, data)

    def resize(self, cols: int, rows: int) -> None:
        _set_size(self._master, cols, rows)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGWINCH)

    def fileno(self) -> int:
        return self._master

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGHUP)
        with contextlib.suppress(OSError):
            os.close(self._master)


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class LocalMachine:
    """This computer. ``name`` is the host's name in the console (``local`` unless renamed)."""

    def __init__(self, name: str = "local") -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def address(self) -> str:
        return "this machine"

    @property
    def is_local(self) -> bool:
        return True

    def run(self, argv: Sequence[str], timeout: float, *, stdin: bytes | None = None) -> str:
        try:
            done = subprocess.run(
                list(argv),
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except OSError as err:
            raise CommandError(f"cannot start {argv[0]}: {err.strerror or err}") from err
        except subprocess.TimeoutExpired as err:
            raise CommandError(f"{argv[0]} did not answer within {timeout:g} s") from err
        stdout = done.stdout.decode("utf-8", "replace")
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace")
            message = (stderr or stdout).strip().splitlines()
            raise CommandError(message[0] if message else f"{argv[0]} exited {done.returncode}")
        return stdout

    def stream(self, argv: Sequence[str]) -> LineStream:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",  # a garbled byte is one odd line, not the stream's end
                bufsize=1,
            )
        except OSError as err:
            raise CommandError(f"cannot start {argv[0]}: {err.strerror or err}") from err
        return _PopenLines(proc)

    def read_files(self, paths: Sequence[str], timeout: float = 10.0) -> dict[str, str]:
        out: dict[str, str] = {}
        for path in paths:
            try:
                out[path] = read_small_file(path)
            except OSError:
                continue
        return out

    def existing(self, paths: Sequence[str], timeout: float = 10.0) -> frozenset[str]:
        return frozenset(p for p in paths if os.path.exists(p))

    def make_dirs(self, paths: Sequence[str], timeout: float = 10.0) -> None:
        for path in paths:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as err:
                raise CommandError(f"cannot create {path}: {err.strerror or err}") from err

    def connect_tcp(self, host: str, port: int, timeout: float = 5.0) -> Connection:
        return socket.create_connection((host, port), timeout=timeout)

    def connect_unix(self, path: str, timeout: float = 5.0) -> Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock

    def open_pty(
        self,
        argv: Sequence[str] | None,
        *,
        cols: int = 80,
        rows: int = 24,
        term: str = "xterm-256color",
    ) -> Pty:
        if argv is None:
            argv = [os.environ.get("SHELL") or "/bin/sh", "-l"]
        return _LocalPty(argv, cols, rows, term)

    def close(self) -> None:
        pass


_READ_SIZE = 65536


def read_small_file(path: str) -> str:
    """A whole file through raw os calls: the console reads hundreds of tiny cgroup and /proc
    files a refresh, where Path.read_text's object and codec set-up cost more than the read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        # A short read is the end for regular files and the kernel's seq files alike, which
        # saves the empty read that would confirm it.
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
            if len(chunk) < _READ_SIZE:
                break
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace")

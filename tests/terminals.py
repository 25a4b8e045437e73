"""Real terminals for the tests: a program on a pty (the CLI's shell), and the console in tmux.

Both read what a user would see: the pty's bytes, tmux's rendered pane. Nothing is faked: the
shell runs in a real container, the console is the real ``python -m gpuconsole``.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Sequence


class PtyProcess:
    """A command on a fresh pty of the given size, read and typed into like a terminal."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        cols: int = 100,
        rows: int = 30,
    ) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its terminal
            try:
                _set_size(0, cols, rows)
                os.execvpe(argv[0], list(argv), env)
            finally:
                os._exit(127)
        self.output = b""
        self._seen = 0
        self.status: int | None = None

    def send(self, data: str | bytes) -> None:
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def resize(self, cols: int, rows: int) -> None:
        _set_size(self.fd, cols, rows)
        os.kill(self.pid, signal.SIGWINCH)

    def _read(self, timeout: float) -> bool:
        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed the pty
            data = b""
        self.output += data
        return bool(data)

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[bytes]:
        """Wait for ``pattern`` (a regex) in the output after the last match; returns it."""
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                if match := regex.search(self.output, self._seen):
                    self._seen = match.end()
                    return match
                if left <= 0 or self.poll() is not None:
                    tail = self.output[-600:].decode("utf-8", "replace")
                    raise AssertionError(f"{pattern!r} not seen; the terminal shows:\n{tail}")

    def poll(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("the program did not exit")
            self._read(0.1)
        while self._read(0.05) and len(self.output) < 1 << 22:  # what it printed last
            pass
        assert self.status is not None
        return self.status

    def close(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class TmuxConsole:
    """The console (or any command) in a tmux session of its own server; the pane is read as
    the user sees it."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cols: int = 140, rows: int = 40):
        self.socket = f"gpct-{uuid.uuid4().hex[:8]}"
        self.session = "console"
        exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items())
        command = f"env -i {exports} {' '.join(_quote(a) for a in argv)}; sleep 60"
        self._tmux(
            "new-session", "-d", "-s", self.session, "-x", str(cols), "-y", str(rows), command
        )

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=15
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]}: {done.stderr.strip()}")
        return done.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", self.session, *(["-l"] if literal else []), *keys)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, timeout: float = 20.0, gone: bool = False) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if (text in shown) != gone:
                return shown
            if time.monotonic() > deadline:
                state = "still on" if gone else "not on"
                raise AssertionError(f"{text!r} {state} the screen after {timeout} s:\n{shown}")
            time.sleep(0.1)

    def filter_to(self, name: str) -> None:
        """In the containers screen: ``/``, the name, enter — as a person selects a row."""
        self.wait_for(name)
        self.keys("/")
        self.wait_for("filter by name or image")  # the input has the focus: keys go to it
        self.type(name)
        self.keys("Enter")
        self.wait_for("filter by name or image", gone=True)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=15)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def console_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gpuconsole", *args]

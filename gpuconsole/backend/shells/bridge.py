"""Hand this terminal to a program on a pty (a container's exec, a host's shell) and back.

The terminal goes raw, so every key — Ctrl-C, Ctrl-Z, arrows — reaches the program, not us;
window changes (SIGWINCH) become resizes of the far pty; output is copied as bytes. One thread,
one ``select`` over the terminal and the session: nothing polls.

Like ssh, ``~.`` typed at the start of a line leaves a session whose far end stopped answering
(a hung host must never hang the terminal); ``~~`` sends one ``~``. The terminal's settings are
restored however the session ends.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import select
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.machine import Pty

_READ = 65536
_ESCAPE = b"~"
_LINE_STARTS = (b"\r", b"\n")


class Ending(enum.Enum):
    EXITED = "exited"  # the program ended (its exit code: the pty's wait)
    DETACHED = "detached"  # the user typed ~.
    LOST = "lost"  # the connection broke


@dataclass(frozen=True, slots=True)
class SessionEnd:
    ending: Ending
    exit_code: int | None
    message: str = ""


def terminal_size(fd: int = 1, default: tuple[int, int] = (80, 24)) -> tuple[int, int]:
    """(columns, rows) of the terminal on ``fd`` (or stdin), else ``default``."""
    for candidate in (fd, 0, 2):
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(candidate)
            if size.columns and size.lines:
                return size.columns, size.lines
    return default


class _EscapeReader:
    """Finds ``~.`` at the start of a line in what the user types; passes the rest through."""

    def __init__(self) -> None:
        self.line_start = True
        self.pending = False  # a '~' at a line start, waiting for the next byte

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for i in range(len(data)):
            byte = data[i : i + 1]
            if self.pending:
                self.pending = False
                if byte == b".":
                    return bytes(out), True
                out += byte if byte == _ESCAPE else _ESCAPE + byte
                self.line_start = byte in _LINE_STARTS
                continue
            if self.line_start and byte == _ESCAPE:
                self.pending = True
                continue
            out += byte
            self.line_start = byte in _LINE_STARTS
        return bytes(out), False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


def attach(
    session: Pty,
    *,
    stdin_fd: int | None = None,
    stdout_fd: int | None = None,
    exit_timeout: float = 5.0,
) -> SessionEnd:
    """Copy this terminal to ``session`` and back until it ends; returns how it ended."""
    stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    stdout_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    saved = None
    if os.isatty(stdin_fd):
        import termios
        import tty

        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd, termios.TCSADRAIN)  # keep what was typed ahead
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    old_handler = _watch_resizes(wake_w)
    try:
        ending, message = _pump(session, stdin_fd, stdout_fd, wake_r)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGWINCH, old_handler)
        if saved is not None:
            import termios

            with contextlib.suppress(OSError):
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        os.close(wake_r)
        os.close(wake_w)
    code = session.wait(exit_timeout) if ending is Ending.EXITED else None
    return SessionEnd(ending, code, message)


def _watch_resizes(wake_w: int) -> Any:
    """SIGWINCH -> a byte on the wake pipe (the loop does the resize, not the handler)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_winch(_sig: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(wake_w, b"w")

    return signal.signal(signal.SIGWINCH, on_winch)


def _pump(session: Pty, stdin_fd: int, stdout_fd: int, wake_r: int) -> tuple[Ending, str]:
    escape = _EscapeReader() if os.isatty(stdin_fd) else None
    far = session.fileno()
    watched = [far, stdin_fd, wake_r]
    size = terminal_size(stdout_fd)
    if getattr(session, "has_pending", False):
        early = session.read(_READ)
        if early:
            _write_all(stdout_fd, early)
    while True:
        try:
            readable, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue
        if wake_r in readable:
            with contextlib.suppress(OSError):
                os.read(wake_r, 1024)
            new = terminal_size(stdout_fd)
            if new != size:
                size = new
                with contextlib.suppress(Exception):
                    session.resize(*size)
        if far in readable:
            try:
                data = session.read(_READ)
            except Exception as exc:  # a dropped SSH channel, a reset socket
                return Ending.LOST, str(exc) or type(exc).__name__
            if not data:
                return Ending.EXITED, ""
            _write_all(stdout_fd, data)
        if stdin_fd in readable:
            try:
                data = os.read(stdin_fd, _READ)
            except OSError as exc:
                if exc.errno == errno.EIO:  # the terminal went away
                    return Ending.DETACHED, "the terminal closed"
                raise
            if not data:  # piped input ended: a terminal's end of input (^D) tells the program
                watched.remove(stdin_fd)
                with contextlib.suppress(Exception):
                    session.write(b"\x04")
                continue
            if escape is not None:
                data, leave = escape.feed(data)
                if leave:
                    if data:
                        with contextlib.suppress(Exception):
                            session.write(data)
                    return Ending.DETACHED, "left with ~."
            if data:
                try:
                    session.write(data)
                except Exception as exc:
                    return Ending.LOST, str(exc) or type(exc).__name__


__all__ = ["Ending", "SessionEnd", "attach", "terminal_size"]

"""The engine's liveness check as raw bytes on one kept-open connection: ``GET /_ping``.

A refresh that lists nothing (the list kept from events, live_list.py) still asks the engine one
thing, so a hung engine fails that refresh as a list would have. Through docker-py that question
cost 1.2-1.9 ms of CPU locally and 1.3-1.6 ms over SSH, nearly all of it client-side HTTP
machinery (requests, urllib3, http.client) around 60 bytes out and ~300 back. Written by hand on
a connection kept open for it — the engine's unix socket here, a ``direct-streamlocal@openssh.com``
channel on the host's existing SSH transport there (not a session: no login, no MaxSessions
slot) — the same ``DockerEngine.ping`` costs ~0.07-0.1 ms locally and ~0.22-0.37 ms over SSH
(process CPU over 200 checks, same process; over SSH most of it is paramiko's packets).

The guarantees are those of the docker-py ping it replaces:

- the same timeout, applied the same way (opening the connection, and each wait for the answer);
  a silent engine raises ``TimeoutError`` (read by ``engine_errors`` as "did not answer");
- a connection that went away while idle (the engine restarted, the SSH transport dropped, the
  server closed it) is seen before the question is written, and a new one is opened — what
  urllib3 does for a pooled connection; one that fails under a question is closed and the error
  raised, except that a kept connection the server closed at that very moment (no byte answered,
  no timeout) is retried once on a fresh one, the question being idempotent;
- after a failure or a timeout the connection is never reused (a late answer must not be taken
  for the next question's); ``close`` closes it at once, from any thread, waking a waiting reader.
"""

from __future__ import annotations

import contextlib
import errno
import select
import threading
from collections.abc import Callable
from typing import Any

from gpuconsole.backend.errors import DockerApiError

#: ``open_connection(timeout) -> connection``: a socket, a paramiko Channel or alike (sendall,
#: recv, settimeout, close), as the engine's API transports open them.
Opener = Callable[[float], Any]

#: HTTP/1.1 keeps the connection open by default; Host is required by HTTP/1.1 (dockerd ignores it).
REQUEST = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: gpuconsole\r\n\r\n"

#: More than any /_ping answer (headers ~300 bytes): one recv normally holds all of it.
_RECV = 4096
#: An answer whose headers do not end within this many bytes is not dockerd's /_ping.
_MAX_HEAD = 16384


class _Stale(ConnectionResetError):
    """A kept connection gave no byte before it ended: the server closed it as we wrote."""


class RawPing:
    """``GET /_ping`` on one connection of its own, kept open between checks."""

    def __init__(self, open_connection: Opener, timeout: float) -> None:
        self._open = open_connection
        self.timeout = timeout
        #: One check at a time (the connection carries one question at a time).
        self._lock = threading.Lock()
        #: Guards ``_conn`` and ``_generation`` (``close`` must not wait for a check).
        self._state = threading.Lock()
        self._conn: Any = None
        self._generation = 0
        #: Checks answered, and connections opened (tests and benches read them).
        self.checks = 0
        self.opened = 0

    @property
    def connection(self) -> Any:
        """The connection kept for the next check (None when none is open)."""
        return self._conn

    def check(self) -> None:
        """Ask the engine ``GET /_ping``; return when it answered 200, raise otherwise.

        Raises ``TimeoutError`` when opening the connection or any wait for the answer took
        longer than ``timeout``, ``ConnectionError`` (an OSError) when the connection failed or
        the answer was not HTTP, what the opener raises, and ``DockerApiError`` for an answer
        other than 200.
        """
        with self._lock:
            with self._state:
                generation = self._generation
            conn, reused = self._connection(generation)
            try:
                self._ask(conn, reused)
            except _Stale:
                self._discard(conn)
                conn, _ = self._connection(generation)  # not after a ``close``: that raises
                try:
                    self._ask(conn, False)
                except BaseException:
                    self._discard(conn)
                    raise
            except BaseException:
                self._discard(conn)
                raise
            self.checks += 1

    def close(self) -> None:
        """Close the kept connection now (a check waiting on it ends with an error); the next
        check opens a new one."""
        with self._state:
            conn, self._conn = self._conn, None
            self._generation += 1
        if conn is not None:
            _close(conn)

    # -- one check ------------------------------------------------------------------------------

    def _connection(self, generation: int) -> tuple[Any, bool]:
        """(the kept connection if still good, else a new one; whether it was kept). Raises
        ``ConnectionAbortedError`` once ``close`` ran after the check began (``generation``):
        a check that a close woke must not open a connection nobody will close."""
        with self._state:
            conn = self._conn
            closed = generation != self._generation
        if closed:
            raise ConnectionAbortedError(errno.ECONNABORTED, "the engine's connection was closed")
        if conn is not None:
            if not _dropped(conn):
                return conn, True
            self._discard(conn)
        conn = self._open(self.timeout)
        try:
            conn.settimeout(self.timeout)
        except BaseException:
            _close(conn)
            raise
        with self._state:
            if generation == self._generation:
                self._conn = conn
                self.opened += 1
                return conn, False
        _close(conn)  # closed while it opened: keep nothing open after ``close``
        raise ConnectionAbortedError(errno.ECONNABORTED, "the engine's connection was closed")

    def _discard(self, conn: Any) -> None:
        with self._state:
            if self._conn is conn:
                self._conn = None
        _close(conn)

    def _ask(self, conn: Any, reused: bool) -> None:
        try:
            conn.sendall(REQUEST)
        except TimeoutError as exc:
            raise self._timed_out() from exc
        except Exception as exc:
            # A kept connection that cannot take the question is gone (closed by the server as
            # we wrote, or by paramiko: "Socket is closed"): one retry on a new one, whose
            # opening says what is wrong if the engine or the transport really is.
            if reused:
                raise _Stale(errno.ECONNRESET, f"the kept connection was closed: {exc}") from exc
            if isinstance(exc, OSError):
                raise
            # paramiko's SSHException, EOFError: a dead transport
            raise ConnectionResetError(errno.ECONNRESET, f"Connection reset: {exc}") from exc
        data = b""
        while True:
            try:
                chunk = _recv(conn)
            except TimeoutError as exc:
                raise self._timed_out() from exc
            if not chunk:
                if reused and not data:
                    raise _Stale(errno.ECONNRESET, "the kept connection was closed")
                raise ConnectionResetError(
                    errno.ECONNRESET, "Connection reset: the engine closed the connection"
                )
            data += chunk
            answered = _complete(data)
            if answered is not None:
                break
        status, reason, body, keep = answered
        if not keep:
            self._discard(conn)
        if status != 200:
            text = body.decode("utf-8", "replace").strip() or reason
            raise DockerApiError(f"GET /_ping: {status} {text}", status)

    def _timed_out(self) -> TimeoutError:
        """The timeout, worded so: a paramiko channel's says nothing at all ("TimeoutError"),
        and ``engine_errors`` tells a silent engine by the words "timed out"."""
        return TimeoutError(
            errno.ETIMEDOUT, f"GET /_ping: the engine's answer timed out after {self.timeout:g} s"
        )


def _recv(conn: Any) -> bytes:
    try:
        data: bytes = conn.recv(_RECV)
    except OSError:
        raise  # socket.timeout is TimeoutError: the engine did not answer in time
    except Exception as exc:
        raise ConnectionResetError(errno.ECONNRESET, f"Connection reset: {exc}") from exc
    return data


def _complete(data: bytes) -> tuple[int, str, bytes, bool] | None:
    """(status, reason, body, keep the connection) once ``data`` holds the whole answer, else
    None. dockerd answers /_ping with a Content-Length; a chunked answer is read to its last
    chunk; one with neither ends with the connection (not kept)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > _MAX_HEAD:
            raise ConnectionError("the engine's answer to GET /_ping is not HTTP")
        return None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"the engine's answer to GET /_ping is not HTTP: {lines[0]!r}")
    status = int(parts[1])
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    length: int | None = None
    chunked = False
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    rest = data[end + 4 :]
    if chunked:
        if not rest.endswith(b"0\r\n\r\n"):
            return None
        return status, reason, _dechunk(rest), keep
    if length is None:
        return None  # read to the end: _ask sees the close, which raises; not dockerd's way
    if len(rest) < length:
        return None
    return status, reason, rest[:length], keep


def _dechunk(rest: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0] or b"0", 16)
        if size == 0:
            return body
        body += rest[:size]
        rest = rest[size + 2 :]


def _dropped(conn: Any) -> bool:
    """True when an idle connection may not carry a question: closed, ended, or holding bytes
    nobody asked for (a paramiko Channel by its flags; a socket by one poll)."""
    if hasattr(conn, "recv_ready") and hasattr(conn, "eof_received"):  # paramiko.Channel
        return bool(conn.closed or conn.eof_received or conn.recv_ready())
    try:
        fd = conn.fileno()
    except (OSError, ValueError, AttributeError):
        return True
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def _close(conn: Any) -> None:
    """Close now, waking a thread blocked reading it (a socket needs a shutdown for that)."""
    shutdown = getattr(conn, "shutdown", None)
    if shutdown is not None and not hasattr(conn, "recv_ready"):
        with contextlib.suppress(Exception):
            import socket

            shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        conn.close()


__all__ = ["REQUEST", "Opener", "RawPing"]

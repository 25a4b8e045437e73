"""docker-py's low-level ``APIClient`` carried over connections that gpuconsole supplies.

docker-py's own ``ssh://`` transport opens its own SSH client, one remote ``docker system
dial-stdio`` per pooled HTTP connection, keys its pools by URL and cannot cancel its streams
(see DESIGN.md). Here the caller hands in an *opener* — ``open_connection(timeout) ->
Connection`` — and every HTTP connection of the client is one such connection: a
``direct-streamlocal@openssh.com`` channel to the remote docker.sock, a ``dial-stdio`` session
(``dial_stdio_opener``) or a local unix socket (``unix_opener``).

- ONE urllib3 pool per client, whatever the URL: up to ``pool_size`` idle connections are kept
  and reused; a burst above that opens extra connections that are closed after use. An opener
  with a ``max_connections`` attribute (``dial_stdio_opener``: 3) is a hard cap: requests wait
  for an idle connection or a free slot (at most the client's timeout) instead of opening more.
- The client is built with an explicit API version, so the constructor does no I/O;
  ``negotiate_version`` asks the engine once and settles on a version both sides speak.
- Streams (events, logs, pull progress, attach, exec) work; ``close_stream`` ends one from another
  thread, reliably, over any connection (docker-py's ``CancellableStream.close()`` raises on its
  own SSH channels; over this transport it works too, because the socket façade below has
  ``shutdown``).

Exceptions callers see (all mapped to ``HostUnreachable`` by ``backend.docker.errors_map``):

- ``requests.exceptions.ConnectionError`` — the opener failed (channel refused, SSH transport
  gone, no socket, ``dial-stdio`` exited: the remote's stderr is in the message), or a pooled
  connection died mid-request.
- ``requests.exceptions.ConnectTimeout`` (a ``ConnectionError`` and a ``Timeout``) — the opener
  timed out, or every connection of a capped opener stayed busy for the whole timeout.
- ``requests.exceptions.ReadTimeout`` — the engine did not answer within the timeout.
- ``docker.errors.APIError`` (and ``NotFound`` …) — the engine answered with an error.

docker-py's ``CancellableStream`` (events, logs, attach, exec) ends quietly (``StopIteration``)
when its connection is closed or dies; a plain generator (build, pull) may raise
``urllib3.exceptions.ProtocolError`` instead.

Never imports Textual or Rich; docker, requests, urllib3 and paramiko are imported lazily.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import re
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import docker
    import paramiko

__all__ = [
    "DEFAULT_API_VERSION",
    "DIAL_STDIO_COMMAND",
    "DIAL_STDIO_SESSIONS",
    "Connection",
    "DialStdioOpener",
    "Opener",
    "api_client",
    "close_stream",
    "dial_stdio_opener",
    "negotiate_version",
    "open_error",
    "streamlocal_opener",
    "unix_opener",
]

DEFAULT_API_VERSION = "1.41"
"""The highest Docker API version gpuconsole asks for (Docker 20.10)."""

DIAL_STDIO_COMMAND = "docker system dial-stdio"
DIAL_STDIO_SESSIONS = 3
"""sshd allows 10 sessions per connection (MaxSessions); the Docker API takes at most 3."""

_SCHEME = "http+gpuconsole"
_OPEN_FAILED = "cannot open a connection to the Docker engine"
_READ_BUFFER = 65536


class Connection(Protocol):
    """A byte stream to the engine: ``socket.socket``, ``paramiko.Channel`` or alike.

    Optional extras used when present: ``fileno()`` (attach streams poll it), ``gettimeout()``,
    ``shutdown(how)`` (real sockets) and ``is_dropped() -> bool`` (an idle check cheaper than
    polling a file descriptor).
    """

    def sendall(self, data: bytes, /) -> Any: ...

    def recv(self, size: int, /) -> bytes: ...

    def settimeout(self, timeout: float | None, /) -> None: ...

    def close(self) -> None: ...


Opener = Callable[[float], Connection]
"""``open_connection(timeout) -> Connection``: one new connection to the engine's API."""


# --- the socket façade http.client and docker-py see ---------------------------------------


class _ConnSocket:
    """What http.client, urllib3 and docker-py need of a socket, over any ``Connection``.

    ``makefile`` is reference-counted like ``socket.socket``'s: http.client closes the connection
    of a response that ends with the connection (``Connection: close``, attach upgrades) while the
    response is still being read, so the connection really closes only when both are closed.
    ``shutdown``/``abort`` close it at once and wake a thread blocked in ``recv`` (a paramiko
    channel has no half-close for reading; closing it is what wakes the reader).
    """

    def __init__(self, conn: Connection, on_close: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self._on_close = on_close
        self._lock = threading.Lock()
        self._io_refs = 0
        self._close_requested = False
        self._released = False
        self._timeout: float | None = None

    @property
    def connection(self) -> Connection:
        return self._conn

    @property
    def closed(self) -> bool:
        return self._released

    # -- byte stream
    def sendall(self, data: bytes) -> None:
        if self._released:
            raise BrokenPipeError(errno.EPIPE, "the connection to the Docker engine is closed")
        try:
            self._conn.sendall(data)
        except OSError:
            raise
        except Exception as exc:  # paramiko's SSHException, EOFError: a dead transport
            raise ConnectionResetError(errno.ECONNRESET, _describe(exc)) from exc

    def recv(self, size: int) -> bytes:
        if self._released:
            return b""
        try:
            return self._conn.recv(size)
        except OSError:
            if self._released:
                return b""
            raise
        except Exception as exc:
            if self._released:
                return b""
            raise ConnectionResetError(errno.ECONNRESET, _describe(exc)) from exc

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        if not self._released:
            with contextlib.suppress(OSError):
                self._conn.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def fileno(self) -> int:
        fileno = getattr(self._conn, "fileno", None)
        if fileno is None:
            raise io.UnsupportedOperation("this connection has no file descriptor")
        return int(fileno())

    # -- file interface for http.client
    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: Any) -> io.IOBase:
        if set(mode) - {"r", "b"}:
            raise ValueError(f"only binary reading is supported, not mode {mode!r}")
        with self._lock:
            self._io_refs += 1
        raw = _RawReader(self)
        reader = io.BufferedReader(raw, buffering or _READ_BUFFER)
        raw.attach(reader)
        return reader

    def _decref_io(self) -> None:
        with self._lock:
            self._io_refs -= 1
            close_now = self._close_requested and self._io_refs <= 0
        if close_now:
            self._release()

    # -- closing
    def close(self) -> None:
        with self._lock:
            self._close_requested = True
            close_now = self._io_refs <= 0
        if close_now:
            self._release()

    def shutdown(self, how: int) -> None:
        if isinstance(self._conn, socket.socket):
            with contextlib.suppress(OSError):
                self._conn.shutdown(how)
        elif how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._release()
        else:
            shutdown = getattr(self._conn, "shutdown", None)
            if shutdown is not None:
                with contextlib.suppress(Exception):
                    shutdown(how)

    def abort(self) -> None:
        """Close now, whoever still reads: a thread blocked in ``recv`` returns."""
        self.shutdown(socket.SHUT_RDWR)
        self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        try:
            with contextlib.suppress(Exception):
                self._conn.close()
        finally:
            if self._on_close is not None:
                self._on_close()

    def dropped(self) -> bool:
        """True when an idle connection may not be reused (closed, EOF, or unexpected data)."""
        if self._released or self._close_requested:
            return True
        conn: Any = self._conn
        is_dropped = getattr(conn, "is_dropped", None)
        if callable(is_dropped):
            return bool(is_dropped())
        if hasattr(conn, "recv_ready") and hasattr(conn, "eof_received"):  # paramiko.Channel
            return bool(conn.closed or conn.eof_received or conn.recv_ready())
        try:
            fd = self.fileno()
        except (OSError, ValueError):
            return False
        return _readable_now(fd)

    def __del__(self) -> None:  # an abandoned stream still gives its slot back
        with contextlib.suppress(Exception):
            self._release()


class _RawReader(io.RawIOBase):
    """The raw stream under http.client's buffered reader; what docker-py calls the socket.

    docker-py reaches it as ``response.raw._fp.fp.raw``: it sets ``timeout`` through ``_sock``,
    polls ``fileno()`` and reads frames with ``recv`` (attach, exec). ``recv`` first drains what
    the buffered reader already holds, so no byte read with the HTTP headers is lost.
    """

    def __init__(self, sock: _ConnSocket) -> None:
        super().__init__()
        self._sock = sock
        self._reader: weakref.ref[Any] | None = None

    def attach(self, reader: Any) -> None:
        self._reader = weakref.ref(reader)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._sock.recv(len(view))
        view[: len(data)] = data
        return len(data)

    def recv(self, size: int) -> bytes:
        reader = self._reader() if self._reader is not None else None
        if reader is not None and not reader.closed:
            with contextlib.suppress(ValueError):
                return bytes(reader.read1(size))
        return self._sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._sock._decref_io()


def _readable_now(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return True
    text = str(exc).lower()
    return "timed out" in text or "timeout" in text


# --- urllib3 / requests glue, built on first use (docker must not load for --help) -----------


@functools.cache
def _transport_classes() -> tuple[type[Any], type[Any]]:
    """(pool class, adapter class); defined here so importing this module loads no HTTP stack."""
    import queue

    import requests
    import requests.adapters
    import urllib3
    import urllib3.connection
    import urllib3.exceptions

    class GcHTTPConnection(urllib3.connection.HTTPConnection):
        def __init__(self, pool: GcPool, timeout: float) -> None:
            super().__init__("localhost", timeout=timeout)
            self.gc_pool = pool
            self.gc_reserved = False  # holds one of the pool's capped slots, not yet connected

        def __str__(self) -> str:  # urllib3 puts it before its messages
            return str(self.gc_pool.label)

        def connect(self) -> None:
            self.sock = cast("socket.socket", self.gc_pool.open_socket(self))

        @property
        def is_connected(self) -> bool:
            sock = cast("_ConnSocket | None", self.sock)
            return sock is not None and not sock.dropped()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.gc_pool.unreserve(self)

        def discard(self) -> None:
            """Close an idle connection for good (``close`` waits for readers of a response)."""
            sock = cast("_ConnSocket | None", self.sock)
            if sock is not None:
                sock.abort()
            self.close()

    class GcPool(urllib3.HTTPConnectionPool):
        """One pool for the whole engine; idle connections first; an optional hard cap.

        With a cap, ``live`` counts open connections (released when their socket closes, even
        one of an abandoned stream, at garbage collection) and ``reserved`` the connections
        handed out to be opened; a request waits until an idle connection or a slot is free.
        """

        def __init__(
            self,
            opener: Opener,
            *,
            label: str,
            timeout: float,
            maxsize: int,
            max_connections: int | None,
        ) -> None:
            super().__init__("localhost", maxsize=maxsize, block=False)
            self.opener = opener
            self.label = label
            self.default_timeout = timeout
            self.max_connections = max_connections
            self.opened = 0
            self.live = 0
            self.reserved = 0
            self._cond = threading.Condition(threading.RLock())

        def __str__(self) -> str:
            return f"DockerAPI({self.label})"

        def _new_conn(self) -> GcHTTPConnection:
            self.num_connections += 1
            return GcHTTPConnection(self, self.default_timeout)

        def _take_idle(self) -> GcHTTPConnection | None:
            """The most recently used connection that is open, if any (None slots stay)."""
            q = self.pool
            if q is None:
                return None
            with q.mutex:
                items = q.queue
                for index in range(len(items) - 1, -1, -1):
                    if items[index] is not None and items[index].sock is not None:
                        conn = items[index]
                        del items[index]
                        q.not_full.notify()
                        return cast(GcHTTPConnection, conn)
            return None

        def _take_slot(self) -> GcHTTPConnection:
            q = self.pool
            if q is None:
                raise urllib3.exceptions.ClosedPoolError(self, "Pool is closed.")
            try:
                conn = q.get(block=False)
            except queue.Empty:
                conn = None
            return cast("GcHTTPConnection | None", conn) or self._new_conn()

        def _get_conn(self, timeout: float | None = None) -> GcHTTPConnection:
            if self.pool is None:
                raise urllib3.exceptions.ClosedPoolError(self, "Pool is closed.")
            wait = self.default_timeout if timeout is None else timeout
            deadline = time.monotonic() + wait
            with self._cond:
                while True:
                    conn = self._take_idle()
                    if conn is not None:
                        if conn.is_connected:
                            return conn
                        conn.discard()  # frees its slot; the object can connect again
                    cap = self.max_connections
                    if cap is None:
                        return conn or self._take_slot()
                    if self.live + self.reserved < cap:
                        conn = conn or self._take_slot()
                        if not conn.gc_reserved:
                            conn.gc_reserved = True
                            self.reserved += 1
                        return conn
                    if conn is not None:
                        self._put_conn(conn)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._busy(wait)
                    self._cond.wait(remaining)

        def _put_conn(self, conn: Any) -> None:
            if conn is not None:
                self.unreserve(conn)
            try:
                if self.pool is None:
                    raise queue.Full
                self.pool.put(conn, block=False)
            except queue.Full:  # closed pool, or a burst above pool_size: close quietly
                if conn is not None:
                    conn.discard()
            with self._cond:
                self._cond.notify_all()

        def close(self) -> None:
            while (conn := self._take_idle()) is not None:
                conn.discard()
            super().close()

        def unreserve(self, conn: GcHTTPConnection) -> None:
            with self._cond:
                if conn.gc_reserved:
                    conn.gc_reserved = False
                    self.reserved -= 1
                    self._cond.notify_all()

        def _busy(self, waited: float) -> Exception:
            return urllib3.exceptions.ConnectTimeoutError(
                f"{self.label}: all {self.max_connections} connections to the Docker engine "
                f"stayed busy; timed out after {waited:g} s"
            )

        def _slot_released(self) -> None:
            with self._cond:
                self.live -= 1
                self._cond.notify_all()

        def _claim_slot(self, conn: GcHTTPConnection, timeout: float, deadline: float) -> None:
            """Count one more open connection; without a reservation, wait for a slot."""
            while True:
                evict: GcHTTPConnection | None = None
                with self._cond:
                    cap = self.max_connections
                    if conn.gc_reserved:
                        conn.gc_reserved = False
                        self.reserved -= 1
                    elif cap is not None and self.live + self.reserved >= cap:
                        evict = self._take_idle()
                        if evict is None:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                raise self._busy(timeout)
                            self._cond.wait(remaining)
                            continue
                    if evict is None:
                        self.live += 1
                        self.opened += 1
                        return
                evict.discard()  # an idle connection holds the slot we need

        def open_socket(self, conn: GcHTTPConnection) -> _ConnSocket:
            timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else None
            if timeout is None:
                timeout = self.default_timeout
            deadline = time.monotonic() + timeout
            self._claim_slot(conn, timeout, deadline)
            try:
                raw = self.opener(max(deadline - time.monotonic(), 0.001))
            except BaseException as exc:
                self._slot_released()
                if not isinstance(exc, Exception):
                    raise
                message = f"{_OPEN_FAILED}: {_describe(exc)}"
                error: Exception
                if _is_timeout(exc):
                    error = urllib3.exceptions.ConnectTimeoutError(
                        f"{self.label}: {message} (timed out after {timeout:g} s)"
                    )
                else:
                    error = urllib3.exceptions.NewConnectionError(conn, message)
                raise error from exc
            sock = _ConnSocket(raw, on_close=self._slot_released)
            sock.settimeout(conn.timeout if isinstance(conn.timeout, (int, float)) else None)
            return sock

    class GcAdapter(requests.adapters.HTTPAdapter):
        """Every URL of the client goes to the one pool."""

        def __init__(self, pool: GcPool) -> None:
            super().__init__(pool_connections=1, pool_maxsize=1)
            self.gc_pool = pool

        def get_connection_with_tls_context(
            self,
            request: requests.PreparedRequest,
            verify: bool | str | None,
            proxies: Any = None,
            cert: Any = None,
        ) -> GcPool:
            return self.gc_pool

        def get_connection(self, url: str | bytes, proxies: Any = None) -> GcPool:
            return self.gc_pool

        def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
            return request.path_url

        def close(self) -> None:
            super().close()
            self.gc_pool.close()

    return GcPool, GcAdapter


# --- the client -----------------------------------------------------------------------------


def api_client(
    open_connection: Opener,
    *,
    timeout: float = 10.0,
    version: str = DEFAULT_API_VERSION,
    pool_size: int = 8,
    base_label: str = "ssh",
) -> docker.APIClient:
    """A docker-py ``APIClient`` whose every HTTP connection comes from ``open_connection``.

    No I/O happens here: the first request opens the first connection. ``timeout`` bounds each
    call (opening a connection, waiting for a free one, and reading the answer; streams read
    without a timeout). ``version`` is the API version spoken until ``negotiate_version`` is
    called. ``base_label`` names the engine in URLs and error messages (letters, digits, ``.``
    and ``-``; anything else is replaced). If ``open_connection`` has a ``max_connections``
    attribute, the client never holds more connections than that at once.

    ``client.close()`` closes the idle connections; streams still open keep theirs until
    ``close_stream`` or their end.
    """
    import docker

    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    pool_cls, adapter_cls = _transport_classes()
    label = re.sub(r"[^A-Za-z0-9.-]+", "-", base_label).strip("-.") or "engine"
    cap = getattr(open_connection, "max_connections", None)
    max_connections = int(cap) if cap is not None else None
    pool = pool_cls(
        open_connection,
        label=label,
        timeout=timeout,
        maxsize=pool_size,
        max_connections=max_connections,
    )
    # A tcp:// base URL mounts no custom adapter and does no I/O; ours replaces it below.
    client = docker.APIClient(
        base_url="tcp://127.0.0.1:2375", version=version, timeout=cast(int, timeout)
    )
    adapter = adapter_cls(pool)
    for prefix in list(client.adapters):
        client.adapters.pop(prefix).close()
    client.mount(f"{_SCHEME}://", adapter)
    cast(Any, client)._custom_adapter = adapter  # docker-py's get_adapter fallback
    client.base_url = f"{_SCHEME}://{label}"
    client.trust_env = False  # no proxies and no ~/.netrc for an engine reached this way
    return client


def negotiate_version(client: docker.APIClient) -> str:
    """Settle on the API version both sides speak, with ONE request (GET /version).

    The client's current version is our maximum; an older engine brings it down to its own
    ``ApiVersion``. An engine that no longer speaks our version (``MinAPIVersion`` above it,
    as Docker 29 with 1.44) brings it up to that minimum. Raises ``docker.errors.InvalidVersion``
    for an engine older than docker-py supports, and what any call raises otherwise.
    """
    from docker.constants import MINIMUM_DOCKER_API_VERSION
    from docker.errors import DockerException, InvalidVersion
    from docker.utils import version_lt

    info = client.version(api_version=False)
    engine = str(info.get("ApiVersion") or "")
    if not engine:
        raise DockerException("the engine's /version answer names no ApiVersion")
    ours = str(client.api_version)
    chosen = engine if version_lt(engine, ours) else ours
    minimum = str(info.get("MinAPIVersion") or "")
    if minimum and version_lt(chosen, minimum):
        chosen = minimum
    if version_lt(chosen, MINIMUM_DOCKER_API_VERSION):
        raise InvalidVersion(
            f"the engine speaks Docker API {engine}; gpuconsole needs at least "
            f"{MINIMUM_DOCKER_API_VERSION} (Docker 1.12)"
        )
    cast(Any, client)._version = chosen
    return chosen


def open_error(exc: BaseException) -> BaseException | None:
    """The opener's own exception behind what a call raised (e.g. ``StreamLocalRefused``, to
    fall back to ``dial_stdio_opener``), or None when the call failed otherwise."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        cause = current.__cause__
        ours = type(current).__module__.startswith("urllib3") and _OPEN_FAILED in str(current)
        if ours and cause is not None and not type(cause).__module__.startswith("urllib3"):
            return cause
        reason = getattr(current, "reason", None)
        for nxt in (current.__cause__, current.__context__, reason, *current.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return None


# --- closing streams ------------------------------------------------------------------------


def close_stream(stream: object) -> None:
    """End a streaming response now, from any thread; idempotent, never raises.

    Takes what docker-py returns for streams — a ``CancellableStream`` (events, logs, attach,
    exec), a plain generator (pull and build progress; found through its frame), a
    ``requests.Response``, or the socket ``attach_socket`` returns. The connection is closed
    under the response: a thread blocked reading it sees the end at once and its iteration stops
    (``StopIteration``; a plain generator may raise urllib3's ``ProtocolError`` instead). The
    connection is not reused; its pool slot is free again.
    """
    with contextlib.suppress(Exception):
        sock = _stream_socket(stream)
        if isinstance(sock, _ConnSocket):
            sock.abort()
        elif sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _stream_socket(stream: object) -> Any:
    if isinstance(stream, _ConnSocket):
        return stream
    if isinstance(stream, _RawReader):
        return stream._sock
    response = getattr(stream, "_response", None)
    if response is None and hasattr(stream, "gi_frame"):
        frame = getattr(stream, "gi_frame", None)
        response = frame.f_locals.get("response") if frame is not None else None
    if response is None and hasattr(stream, "raw"):
        response = stream
    if response is None:
        return None
    raw = getattr(response, "raw", response)  # requests.Response -> urllib3 response
    # This response's own reader first: once the response has ended it is gone, and the pooled
    # connection may already serve another request.
    fp = getattr(getattr(raw, "_fp", None), "fp", None)  # http.client response -> reader
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is not None:
        return sock
    return getattr(getattr(raw, "_connection", None), "sock", None)


# --- openers --------------------------------------------------------------------------------


def streamlocal_opener(
    transport: paramiko.Transport, socket_path: str = "/var/run/docker.sock"
) -> Opener:
    """Connections that are ``direct-streamlocal@openssh.com`` channels to the remote engine's
    socket (the preferred way: no docker CLI needed there, not counted by MaxSessions)."""

    def open_streamlocal_channel(timeout: float) -> paramiko.Channel:
        from gpuconsole.backend.ssh.streamlocal import open_streamlocal

        return open_streamlocal(transport, socket_path, timeout)

    return open_streamlocal_channel


def unix_opener(path: str) -> Opener:
    """Connections to a local AF_UNIX socket (tests, and the local engine if wanted)."""

    def open_unix(timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock

    return open_unix


class _StdioSession:
    """A session channel running ``docker system dial-stdio``: the channel is the socket.

    When the command ends before sending anything (no docker CLI, no permission on the socket),
    reading raises ``ConnectionResetError`` carrying its stderr and exit status.
    """

    def __init__(self, channel: paramiko.Channel, command: str, release: Callable[[], None]):
        self._channel = channel
        self._command = command
        self._release = release
        self._released = False
        self._lock = threading.RLock()
        self._received = False
        self._closing = False

    @property
    def channel(self) -> paramiko.Channel:
        return self._channel

    def sendall(self, data: bytes) -> None:
        try:
            self._channel.sendall(data)
        except OSError as exc:
            if self._closing or self._received:
                raise
            raise ConnectionResetError(errno.ECONNRESET, self._ended()) from exc

    def recv(self, size: int) -> bytes:
        data = self._channel.recv(size)
        if data:
            self._received = True
        elif not self._received and not self._closing:
            raise ConnectionResetError(errno.ECONNRESET, self._ended())
        return data

    def _ended(self) -> str:
        channel = self._channel
        err = b""
        with contextlib.suppress(Exception):
            while channel.recv_stderr_ready():
                chunk = channel.recv_stderr(4096)
                if not chunk:
                    break
                err += chunk
        status = ""
        deadline = time.monotonic() + 1.0  # the exit status may follow the end of output
        while not channel.exit_status_ready() and time.monotonic() < deadline:
            if channel.closed:  # sshd sends the exit status before closing
                break
            time.sleep(0.01)
        if channel.exit_status_ready():
            status = f" with status {channel.recv_exit_status()}"
        text = err.decode("utf-8", "replace").strip().replace("\n", "; ")
        return f"`{self._command}` on the remote host ended{status}" + (f": {text}" if text else "")

    def settimeout(self, timeout: float | None) -> None:
        self._channel.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._channel.gettimeout()

    def fileno(self) -> int:
        return self._channel.fileno()

    def is_dropped(self) -> bool:
        channel = self._channel
        return bool(
            channel.closed
            or channel.eof_received
            or channel.exit_status_ready()
            or channel.recv_ready()
        )

    def close(self) -> None:
        self._closing = True
        try:
            self._channel.close()
        finally:
            with self._lock:
                released, self._released = self._released, True
            if not released:
                self._release()


class DialStdioOpener:
    """Opener of ``docker system dial-stdio`` sessions over one paramiko Transport.

    The fallback where the server forbids stream-local forwarding. Each connection is a session
    channel (it counts against sshd's MaxSessions, 10 per connection by default), so at most
    ``max_connections`` (3) run at once; a slot is freed when its connection closes.
    """

    def __init__(
        self,
        transport: paramiko.Transport,
        *,
        command: str = DIAL_STDIO_COMMAND,
        max_connections: int = DIAL_STDIO_SESSIONS,
    ) -> None:
        self.transport = transport
        self.command = command
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.RLock()
        self.opened = 0
        """Sessions opened so far."""
        self.open_now = 0
        """Sessions open at the moment."""
        self.peak = 0
        """The most sessions open at once so far."""

    def __call__(self, timeout: float) -> Connection:
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=timeout):
            raise TimeoutError(
                f"all {self.max_connections} `{self.command}` sessions stayed busy; "
                f"timed out after {timeout:g} s"
            )
        with self._lock:
            self.open_now += 1
            self.opened += 1
            self.peak = max(self.peak, self.open_now)
        try:
            channel = self.transport.open_session(timeout=max(deadline - time.monotonic(), 0.01))
            timed_out = threading.Event()

            def expire() -> None:
                timed_out.set()
                channel.close()

            # exec_command waits for the server's reply without a timeout: bound it
            watchdog = threading.Timer(max(deadline - time.monotonic(), 0.01), expire)
            watchdog.daemon = True
            watchdog.start()
            try:
                channel.exec_command(self.command)
            except Exception:
                channel.close()
                if timed_out.is_set():
                    raise TimeoutError(
                        f"`{self.command}` did not start within {timeout:g} s"
                    ) from None
                raise
            finally:
                watchdog.cancel()
            if timed_out.is_set():
                raise TimeoutError(f"`{self.command}` did not start within {timeout:g} s")
        except BaseException:
            self._free()
            raise
        return _StdioSession(channel, self.command, self._free)

    def _free(self) -> None:
        with self._lock:
            self.open_now -= 1
        self._slots.release()


def dial_stdio_opener(
    transport: paramiko.Transport,
    *,
    command: str = DIAL_STDIO_COMMAND,
    max_connections: int = DIAL_STDIO_SESSIONS,
) -> DialStdioOpener:
    """Connections that are ``docker system dial-stdio`` sessions (needs the docker CLI there)."""
    return DialStdioOpener(transport, command=command, max_connections=max_connections)

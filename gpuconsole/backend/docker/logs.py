"""A container's output, as the engine stored it: frames with their stream, byte-exact.

Read straight from the logs endpoint (not docker-py's ``logs()``: for a tty container it reads
one byte per call, and it throws away which stream a frame came from). The body of a non-tty
container is multiplexed — an 8-byte header (stream, 0, 0, 0, big-endian size) before every
frame — and is split here into ``LogChunk(stream, data)``; a tty container's body is raw bytes,
all ``stdout`` (a pty merges the two). Chunks carry bytes, never decoded text, so the CLI can
write exactly what the container wrote and only the screen decodes.

The same code runs over every route the engine has (unix socket, the host's SSH channel), and
``close()`` ends a follow from any thread at once (``close_stream``).
"""

from __future__ import annotations

import contextlib
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from gpuconsole.backend.errors import GpuconsoleError

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost

StreamName = Literal["stdout", "stderr"]

_STREAMS: dict[int, StreamName] = {0: "stdout", 1: "stdout", 2: "stderr"}
_HEADER = struct.Struct(">BxxxL")
_READ = 65536


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes the container wrote to one stream (a frame; not necessarily a whole line)."""

    stream: StreamName
    data: bytes


@dataclass(frozen=True, slots=True)
class ContainerEnd:
    """How a followed container ended: ``exit_code`` None when it is still running (the
    stream was closed) or could not be asked."""

    running: bool
    exit_code: int | None
    error: str = ""


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_since(value: str, now: float | None = None) -> float:
    """``--since``: a duration before now (``90s``, ``10m``, ``1h30m``), a unix time
    (``1700000000``, ``1700000000.5``) or an ISO date/time (``2026-11-27``,
    ``2026-11-27T10:00:00``, with or without a zone; without one it is local time), as the
    docker CLI accepts them. Returns unix seconds; ValueError names the forms."""
    text = value.strip()
    if not text:
        raise ValueError("--since is empty: give a duration (10m, 2h), a date or a unix time")
    now = time.time() if now is None else now
    if _DURATION.match(text):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        return now - seconds
    with contextlib.suppress(ValueError):
        return float(text)
    with contextlib.suppress(ValueError):
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return stamp.timestamp()
    raise ValueError(
        f"--since {value!r} is not a time: give a duration (90s, 10m, 1h30m), a date "
        "(2026-11-27, 2026-11-27T10:00:00) or a unix time"
    )


def parse_tail(value: str | int | None) -> int | None:
    """``--tail``: a count of lines from the end, ``all`` (None) — ValueError otherwise."""
    if value is None or value == "all":
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--tail {value!r} is not a number of lines (or 'all')") from None
    if count < 0:
        raise ValueError(f"--tail {value!r} is negative: give 0 or more lines (or 'all')")
    return count


class ContainerLogs:
    """One logs request: iterate for ``LogChunk``s; ``close()`` from any thread stops it.

    Opened by ``open_logs``, which has already asked the engine (errors are raised there, not
    in the middle of iteration). The iteration ends when the engine ends the body: at once for
    a plain read, when the container stops for a follow — then ``end()`` says how it ended.
    """

    def __init__(self, host: DockerHost, ref: str, container_id: str, tty: bool, response: Any):
        self._host = host
        self.ref = ref
        self.container_id = container_id
        self.tty = tty
        self._response = response
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __iter__(self) -> Iterator[LogChunk]:
        """One chunk per frame (or per piece of a frame that arrived apart)."""
        return self._chunks(merge=False)

    def blocks(self, before_wait: Callable[[], None] | None = None) -> Iterator[LogChunk]:
        """The same bytes in far fewer chunks: the frames of one stream that arrived together
        are joined (a million-line log is a few thousand chunks, not a million). For readers
        that do not need frame boundaries — a line splitter, a byte-exact copy.

        ``before_wait`` is called whenever everything that has arrived has been yielded and the
        next read from the connection may wait: the moment a writer flushes, so that a follow
        shows each line at once while a bulk read is written in blocks, with no timer thread."""
        return self._chunks(merge=True, before_wait=before_wait)

    def _chunks(
        self, merge: bool, before_wait: Callable[[], None] | None = None
    ) -> Iterator[LogChunk]:
        read = _body_reader(self._response, before_wait)
        try:
            if self.tty:
                while True:
                    data = read(_READ)
                    if not data:
                        return
                    yield LogChunk("stdout", bytes(data))
            else:
                for stream, pieces in _runs(read):
                    if merge:
                        yield LogChunk(stream, b"".join(pieces))
                    else:
                        for piece in pieces:
                            yield LogChunk(stream, piece)
        except Exception:
            # A closed or dropped connection ends the stream; whoever closed it knows why.
            if not self._closed.is_set():
                raise
        finally:
            self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        from gpuconsole.backend.ssh.docker_api import close_stream

        close_stream(self._response)

    def end(self, timeout: float = 5.0) -> ContainerEnd:
        """Ask the engine whether the container still runs and, if not, its exit code."""
        from gpuconsole.backend.docker.host import engine_api

        try:
            api, call = engine_api(self._host)
            with call(self.ref, "inspect"):
                state = api.inspect_container(self.container_id).get("State") or {}
        except GpuconsoleError as exc:
            return ContainerEnd(False, None, str(exc))
        running = bool(state.get("Running"))
        code = state.get("ExitCode")
        return ContainerEnd(running, None if running or code is None else int(code))


def _body_reader(
    response: Any, before_wait: Callable[[], None] | None = None
) -> Callable[[int], bytes]:
    """``read(n)``: the body's bytes available now (up to about ``n``; b"" at its end).

    The engine sends every frame as an HTTP chunk of its own; urllib3's ``read1`` goes through
    five layers per chunk (~10 µs: a million-line log took 15 s of CPU), so a chunked body
    not yet touched is de-chunked here, straight from http.client's buffered socket reader.
    Anything else (no chunking, another transport) goes through urllib3. ``before_wait`` runs
    before every read from the connection."""
    raw = response.raw
    fp = getattr(raw, "_fp", None)  # http.client.HTTPResponse
    sock_reader = getattr(fp, "fp", None)
    untouched = getattr(raw, "_fp_bytes_read", None) == 0 and getattr(fp, "chunk_left", 0) is None
    if getattr(fp, "chunked", False) and untouched and hasattr(sock_reader, "read1"):
        return _Dechunker(sock_reader, before_wait).read
    read: Callable[[int], bytes] = raw.read1 if hasattr(raw, "read1") else raw.read
    if before_wait is None:
        return read

    def announced(size: int) -> bytes:
        before_wait()
        return read(size)

    return announced


_SIZE, _CRLF = 0, -1  # _Dechunker.left: expecting a chunk-size line / the CRLF after data


class _Dechunker:
    """HTTP/1.1 chunked transfer decoding over a buffered reader, returning all the data that
    has arrived (one ``read1`` from the socket only when none has)."""

    def __init__(self, reader: Any, before_wait: Callable[[], None] | None = None) -> None:
        self._reader = reader
        self._before_wait = before_wait
        self._buf = b""
        self._left = _SIZE  # > 0: bytes of data left in the current chunk
        self._done = False

    def read(self, size: int = _READ) -> bytes:
        while not self._done:
            data = self._parse()
            if data or self._done:
                return data
            if self._before_wait is not None:
                self._before_wait()
            more = self._reader.read1(size)
            if not more:
                return b""  # the connection ended (closed, or cut mid-body)
            self._buf = self._buf + more if self._buf else bytes(more)
        return b""

    def _parse(self) -> bytes:
        buf, pos, end, left = self._buf, 0, len(self._buf), self._left
        out: list[bytes] = []
        while pos < end:
            if left == _SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                try:
                    left = int(buf[pos:eol], 16)
                except ValueError:  # a chunk extension (";name=value"): the engine sends none
                    left = int(buf[pos:eol].split(b";", 1)[0], 16)
                pos = eol + 2
                if left == 0:  # the last chunk: the body is complete (trailers ignored)
                    self._done = True
                    break
                stop = pos + left
                if stop + 2 <= end:  # the common case: the whole chunk is here
                    out.append(buf[pos:stop])
                    pos, left = stop + 2, _SIZE
            elif left > 0:
                take = min(left, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                left -= take
                if left == 0:
                    left = _CRLF
            else:
                if end - pos < 2:
                    break
                pos += 2
                left = _SIZE
        self._buf, self._left = buf[pos:], left
        return b"".join(out)


def _runs(read: Callable[[int], bytes]) -> Iterator[tuple[StreamName, list[bytes]]]:
    """The multiplexed body without its frame headers: per read, runs of one stream, each a
    list of payloads in order (a frame's payload may come in pieces: a long line arrives over
    several reads). One pass, one slice per frame: a million frames take about a second."""
    buf = b""
    want = 0  # bytes of the current frame's payload not arrived yet
    stream: StreamName = "stdout"
    unpack = _HEADER.unpack_from
    streams = _STREAMS
    while True:
        data = read(_READ)
        if not data:
            return
        buf = buf + data if buf else bytes(data)
        pos, end = 0, len(buf)
        runs: list[tuple[StreamName, list[bytes]]] = []
        pieces: list[bytes] = []
        append = pieces.append
        if want:
            pos = min(want, end)
            pieces.append(buf[:pos])
            want -= pos
        while not want and end - pos >= 8:  # a whole header
            kind, size = unpack(buf, pos)
            kind_stream = streams.get(kind, "stdout")
            if kind_stream != stream:
                if pieces:
                    runs.append((stream, pieces))
                    pieces = []
                    append = pieces.append
                stream = kind_stream
            start = pos + 8
            pos = start + size
            if pos > end:  # the rest of this frame comes with the next reads
                want, pos = pos - end, end
            if pos > start:
                append(buf[start:pos])
        if pieces:
            runs.append((stream, pieces))
        buf = buf[pos:]
        yield from runs


def open_logs(
    host: DockerHost,
    ref: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    since: float | None = None,
    timestamps: bool = False,
    stdout: bool = True,
    stderr: bool = True,
) -> ContainerLogs:
    """Ask the engine for ``ref``'s output (``tail`` lines from the end, None: all; ``since``
    unix seconds). Raises ContainerNotFound, HostUnreachable or DockerApiError before any
    output; reading has no timeout (a follow may be quiet for hours)."""
    from gpuconsole.backend.docker.host import engine_api

    api, call = engine_api(host)
    with call(ref, "logs"):
        info = api.inspect_container(ref)
    container_id = str(info["Id"])
    tty = bool((info.get("Config") or {}).get("Tty"))
    params: dict[str, Any] = {
        "stdout": int(stdout),
        "stderr": int(stderr),
        "follow": int(follow),
        "timestamps": int(timestamps),
        "tail": "all" if tail is None else str(tail),
    }
    if since is not None:
        params["since"] = f"{since:.9f}"
    with call(ref, "logs"):
        response = api._get(
            api._url("/containers/{0}/logs", container_id), params=params, stream=True
        )
        api._raise_for_status(response)
    # No read timeout, followed or not: a follow may be quiet for hours, and the engine may
    # take longer than the client's timeout between two frames of a large log it is still
    # reading (or scanning for ``since``) — as the docker CLI, which waits too.
    with contextlib.suppress(Exception):
        api._disable_socket_timeout(api._get_raw_response_socket(response))
    return ContainerLogs(host, ref, container_id, tty, response)


__all__ = [
    "ContainerEnd",
    "ContainerLogs",
    "LogChunk",
    "StreamName",
    "open_logs",
    "parse_since",
    "parse_tail",
]

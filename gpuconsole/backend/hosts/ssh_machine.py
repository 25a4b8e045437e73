"""``SshMachine``: the Machine protocol over ONE paramiko Transport, with a supervisor.

Everything for a remote host — commands, long-lived streams, file reads, TCP and unix-socket
connections (the Docker API), shells — is carried by one SSH connection. The connection is made
on first use (concurrent callers share the attempt) by the ``connect`` callable, which returns an
authenticated ``paramiko.Transport`` or raises (host-key and auth errors by class name, below).

Supervision (one daemon thread per machine, started with the first connection attempt):

* Liveness: paramiko's keepalive never notices a dead peer and ``global_request(wait=True)`` has
  no timeout, so every ``probe_interval`` seconds (start to start) the supervisor opens a session
  channel with a ``probe_timeout`` and closes it at once. Any answer, a refusal included, proves
  the peer alive; only a timeout is a miss. After ``down_after`` misses in a row (or as soon as the
  transport is no longer active) the link is DOWN and the transport is closed, which ends every
  channel on it. DOWN is therefore noticed within ``probe_interval * down_after + probe_timeout``
  (each probe runs in a short-lived thread, so one stuck inside paramiko counts as a miss).
  Output that arrived on a stream (an nvidia-smi stream: every second) within the last interval
  is as good as a probe, so a host that streams is probed only every ``6 * probe_interval`` (to
  keep its latency current), or never with ``latency_probes=False`` (where no one shows the
  latency: the recorder): a probe thread and a channel every 5 s per host were a third of
  what a fleet's quiet console cost. Silence brings the probes back at once, so DOWN takes at
  most one interval more to notice.
  (A session channel and not a refused ``direct-tcpip`` open: a refusal makes paramiko log an
  ERROR line, and OpenSSH an error line, every probe; an unused session channel starts no process
  and is logged at VERBOSE only.) ``status.latency_ms`` is the last probe's round trip.
* Reconnection: while DOWN, callers get ``MachineUnreachable`` at once — nobody blocks on a
  reconnect — and the supervisor reconnects in the background, 0.5 s doubling to 30 s between
  attempts, plus up to 25 % jitter.
* Errors of ``connect``, by class name (in the class or its bases): ``HostKeyUnknown`` →
  NEEDS_TRUST; ``HostKeyChanged``, ``HostKeyRevoked``, ``SshAuthFailed``, paramiko's
  ``BadHostKeyException`` → REFUSED; neither retries until :meth:`SshMachine.retry_now`. Anything
  else (``MachineUnreachable``, ``OSError``, ``paramiko.SSHException``) → DOWN, retried. The first
  caller gets the original error (a ``GpuconsoleError``, or ``MachineUnreachable`` wrapping
  another exception); later callers get ``MachineUnreachable`` with the reason.
* Listeners (:meth:`SshMachine.add_listener`) get every new :class:`LinkStatus`, in order, on the
  supervisor thread — never on the caller's.

Sessions: OpenSSH allows ``MaxSessions`` (default 10) session channels per connection and refuses
more ("administratively prohibited"). Every session this class opens — ``run``, ``read_files``,
``existing``, ``make_dirs``, ``stream`` and ``open_pty``, each for its whole life — takes one of
``max_sessions`` (default 8) slots first, so callers queue (within their timeout) instead of
failing, and the probe and the odd foreign session still fit. Forwarded channels (``connect_tcp``,
``connect_unix``) are not sessions and take no slot. Long-lived ``stream``/``open_pty`` objects
hold their slot until closed or ended: close them.

paramiko is imported lazily: importing this module costs nothing for local-only use.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import heapq
import itertools
import logging
import random
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.machine import CommandError, MachineUnreachable

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

#: Session channels one machine keeps open at once (sshd's MaxSessions defaults to 10).
MAX_SESSIONS = 8
#: Seconds before the first reconnection attempt; doubled after each failure up to BACKOFF_MAX.
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
#: Seconds ``stream()`` and ``open_pty()`` may take to get a session and start the program.
SETUP_TIMEOUT = 10.0
_CHUNK = 1 << 16

_NEEDS_TRUST_ERRORS = frozenset({"HostKeyUnknown"})
_REFUSED_ERRORS = frozenset(
    {"HostKeyChanged", "HostKeyRevoked", "SshAuthFailed", "BadHostKeyException"}
)

# ``read_files`` on the remote side: ONE command for any number of files, shell builtins only (no
# process per file). Path names come on stdin, one a line. Output per readable regular file: a
# header line ``>PATH``, then the content in one of two framings (see parse_read_files_output).
# Two kernel/shell facts shape it (both seen on this project's test machine):
# * dash's and busybox's ``read`` take one byte per read(2). /proc/sys files answer only a read at
#   offset 0 (the rest reads as EOF), so those shells would return their first byte.
# * bash's ``read`` reads a block and lseek()s back after each line; on a seq_file (cgroup stats,
#   most of /proc) each lseek regenerates the file, so a counter that changed meanwhile tears a
#   line ("0890624" out of memory.stat). ``mapfile`` reads on without seeking.
# So: bash >= 4.4 reads each file whole with ``mapfile -d ''`` and prints it length-prefixed; any
# other shell reads line by line (seq_file-safe byte reads) and leaves /proc/sys out. NUL bytes are
# dropped either way (shell strings cannot hold them).

#: One path ``$p``, as the POSIX readers (dash, busybox ash, old bash) frame it: ``|LINE`` per
#: line, ``=LINE`` for a last line without newline. ``l=`` first: on a read(2) error bash leaves
#: the variable as it was.
_POSIX_ONE_FILE = r"""[ -f "$p" ] && [ -r "$p" ] || continue
case $p in /proc/sys/*) continue ;; esac
{
  printf '>%s\n' "$p"
  while l=; do
    if IFS= read -r l; then printf '|%s\n' "$l"
    else [ -z "$l" ] || printf '=%s\n' "$l"; break
    fi
  done
} < "$p"
"""

#: The POSIX reader: every path on stdin.
READ_FILES_POSIX = "while IFS= read -r p; do\n" + _POSIX_ONE_FILE + "done\nexit 0\n"

#: The bash reader: ``#LENGTH`` (bytes) then exactly that many bytes. Runs as ``bash -c BASH
#: POSIX BASH`` (so $0 is the POSIX reader, for bash < 4.4 without ``mapfile -d``).
READ_FILES_BASH = r"""if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 404)); then
  eval "$0"; exit 0
fi
LC_ALL=C
IFS=
while read -r p; do
  [[ -f $p && -r $p ]] || continue
  parts=()
  mapfile -d '' parts < "$p" || continue
  c="${parts[*]}"
  printf '>%s\n#%d\n%s' "$p" "${#c}" "$c"
done
exit 0
"""

#: Runs as ``sh -c DISPATCH POSIX BASH``: bash where there is one (``exec``, so still one
#: process; ``--norc``: bash sources ~/.bashrc when it thinks sshd started it), else POSIX.
READ_FILES_DISPATCH = r"""exec 2>/dev/null
if [ -n "${BASH_VERSION-}" ]; then eval "$1"
elif command -v bash >/dev/null; then exec bash --norc --noprofile -c "$1" "$0" "$1"
else eval "$0"
fi
"""


def read_files_argv(shell: str = "sh") -> list[str]:
    """The command ``read_files`` runs (paths go on its stdin)."""
    return [shell, "-c", READ_FILES_DISPATCH, READ_FILES_POSIX, READ_FILES_BASH]


# ``read_files`` served: the same readers in a loop over one long-lived session, so a host's
# refreshes (every container's cgroup files every 2 s) cost two packets each instead of a
# session opened, a command started and a session closed (about ten packets and a shell) each.
# A request is its paths, one a line, then an empty line; the answer is the files in the
# framing above, then a line ``.`` where a header would come. The loop ends with its stdin.
# bash writes its standard output line by line (it line-buffers stdout whatever it is), so an
# answer in that framing left as ~150 writes (5 containers' cgroup files) and sshd sent it in
# as many packets as it found writes waiting: 5-10 a refresh, each ~0.1 ms of paramiko in this
# process. The bash server therefore sends each answer as ONE line: ``~``, then the framed
# files with "\" written "\\" and each newline written "\n", then a newline (one write up to
# 8 KiB, one packet; ``unescape_answer`` gives back the framing above).

#: The POSIX server: requests until stdin ends, each answer ended by ".".
READ_FILES_SERVE_POSIX = (
    'while :; do\n  e=\n  while IFS= read -r p; do\n    [ -n "$p" ] || { e=1; break; }\n'
    + _POSIX_ONE_FILE
    + "  done\n  [ -n \"$e\" ] || exit 0\n  printf '.\\n'\ndone\n"
)

#: The bash server; the body as in READ_FILES_BASH, the answer written at once (one packet for
#: a host's cgroup files rather than one per file).
READ_FILES_SERVE_BASH = r"""if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 404)); then
  eval "$0"; exit 0
fi
LC_ALL=C
IFS=
o=
while :; do
  e=
  while read -r p; do
    [[ -n $p ]] || { e=1; break; }
    [[ -f $p && -r $p ]] || continue
    parts=()
    mapfile -d '' parts < "$p" || continue
    c="${parts[*]}"
    o+=">$p"$'\n'"#${#c}"$'\n'"$c"
  done
  [[ -n $e ]] || exit 0
  o=${o//\\/\\\\}
  printf '~%s\n' "${o//$'\n'/\\n}"
  o=
done
"""


def read_files_serve_argv(shell: str = "sh") -> list[str]:
    """The command that serves ``read_files`` requests over one session (see above)."""
    return [shell, "-c", READ_FILES_DISPATCH, READ_FILES_SERVE_POSIX, READ_FILES_SERVE_BASH]


def unescape_answer(line: bytes | bytearray) -> bytes:
    """The framed files of the bash server's one-line answer (without its ``~`` and newline):
    "\\\\" is a backslash and "\\n" a newline, read left to right."""
    return b"\\".join(part.replace(b"\\n", b"\n") for part in bytes(line).split(b"\\\\"))


def answer_end(out: bytes | bytearray, start: int = 0) -> tuple[int, tuple[int, int] | None]:
    """Where a served answer ends: ``(resume, None)`` while it is incomplete (``resume``: a
    frame boundary to scan on from once more has come), else ``(_, (the end of its files, the
    end of its "." line))``. The bash server's one-line answer (``~...``) ends at its first
    newline; its files are ``out[1:end]``, escaped (``unescape_answer``)."""
    if out[:1] == b"~":
        nl = out.find(b"\n", max(start, 1))
        return (len(out), None) if nl < 0 else (nl, (nl, nl + 1))
    i, end = start, len(out)
    while i < end:
        nl = out.find(b"\n", i)
        if nl < 0:
            break
        tag = out[i : i + 1]
        if tag == b"." and nl == i + 1:
            return i, (i, nl + 1)
        if tag == b"#" and out[i + 1 : nl].isdigit():
            # a length frame: the bytes after it are content, whatever they look like
            size = int(out[i + 1 : nl])
            if nl + 1 + size > end:
                break
            i = nl + 1 + size
            continue
        i = nl + 1
    return i, None


#: ``existing`` on the remote side: path names on stdin; prints those that exist (``[ -e ]``).
EXISTING_SCRIPT = r"""while IFS= read -r p; do
  [ -e "$p" ] && printf '%s\n' "$p"
done
exit 0
"""

#: ``make_dirs``: one ``mkdir -p`` for all paths; on failure, find the path that fails and name it
#: on stderr's last line as ``>PATH``.
MAKE_DIRS_SCRIPT = r"""mkdir -p -- "$@" 2>/dev/null && exit 0
for p do
  mkdir -p -- "$p" || { printf '>%s\n' "$p" >&2; exit 1; }
done
exit 0
"""


class LinkState(enum.Enum):
    """Where the SSH connection to a machine stands."""

    CONNECTING = "connecting"  #: not connected yet, or retrying on request (retry_now)
    UP = "up"  #: connected and answering probes
    DOWN = "down"  #: lost or unreachable; reconnecting in the background with backoff
    NEEDS_TRUST = "needs-trust"  #: the host key is unknown; waits for retry_now()
    REFUSED = "refused"  #: host key changed/revoked or authentication failed; waits for retry_now()


@dataclass(frozen=True)
class LinkStatus:
    """One immutable reading of the link: ``since`` is on the machine's clock (monotonic)."""

    state: LinkState
    reason: str = ""
    latency_ms: float | None = None
    since: float = 0.0


def _no_delay(t: paramiko.Transport) -> None:
    """TCP_NODELAY on the connection's socket. paramiko leaves Nagle on, and SSH sends small
    messages in pairs (a channel's EOF and CLOSE, a request and its data): with Nagle and the
    peer's delayed ACK each channel open then waited ~34 ms here instead of ~1 ms."""
    sock = getattr(t, "sock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _classify(exc: BaseException) -> LinkState:
    names = _class_names(exc)
    if names & _NEEDS_TRUST_ERRORS:
        return LinkState.NEEDS_TRUST
    if names & _REFUSED_ERRORS:
        return LinkState.REFUSED
    return LinkState.DOWN


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MachineUnreachable):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _nothing() -> None:
    pass


class _Alarm:
    __slots__ = ("_action", "_done", "_lock")

    def __init__(self, action: Callable[[], None]) -> None:
        self._action = action
        self._lock = threading.Lock()
        self._done = False

    @property
    def pending(self) -> bool:
        return not self._done

    def cancel(self) -> None:
        with self._lock:
            self._done = True
            self._action = _nothing  # the heap keeps the alarm until its time: drop the channel

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            action, self._action = self._action, _nothing
        try:
            action()
        except Exception:
            log.exception("deadline action failed")


class _Deadlines:
    """One daemon thread for the whole process that runs actions at deadlines (monotonic).

    paramiko's ``exec_command``, ``get_pty`` and ``sendall`` wait without a timeout; closing the
    channel at the deadline wakes them, which bounds every call by its own timeout.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, action: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(action)
        with self._cv:
            heapq.heappush(self._heap, (when, next(self._seq), alarm))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gpuconsole-ssh-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is alarm:
                self._cv.notify()
        return alarm

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    while self._heap and not self._heap[0][2].pending:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cv.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        alarm = heapq.heappop(self._heap)[2]
                        break
                    self._cv.wait(delay)
            alarm.fire()


_DEADLINES = _Deadlines()


class _Slot:
    """One of a machine's session slots, released once."""

    __slots__ = ("_lock", "_sem")

    def __init__(self, sem: threading.BoundedSemaphore) -> None:
        self._sem: threading.BoundedSemaphore | None = sem
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            sem, self._sem = self._sem, None
        if sem is not None:
            sem.release()


class _OwnedChannel:
    """A session channel and the session slot it holds, both given back once by ``close()``."""

    def __init__(self, chan: paramiko.Channel, slot: _Slot) -> None:
        self._chan = chan
        self._slot = slot
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Close the channel (waking a thread blocked on it) and free the slot. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._chan.close()
        except (EOFError, OSError):
            pass  # the connection is already gone: so is the channel
        finally:
            self._slot.release()


class SshLineStream(_OwnedChannel):
    """``LineStream`` over a session channel (stderr merged): text lines without their "\\n"."""

    def __init__(
        self, chan: paramiko.Channel, slot: _Slot, heard: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(chan, slot)
        self._heard = heard
        #: What ``poll_batches`` read past the last newline.
        self._partial = b""

    @property
    def exit_status(self) -> int | None:
        """The command's exit status once it has ended (-1: ended without one), else None."""
        return self._chan.exit_status if self._chan.status_event.is_set() else None

    def __iter__(self) -> Iterator[str]:
        for lines in self.batches():
            yield from lines

    def batches(self) -> Iterator[list[str]]:
        """The lines as they come: all the complete lines of one read at a time (a reader
        takes its lock once per read, not once per line: nvidia-smi prints a round at once)."""
        pending = b""
        try:
            while True:
                data = self._chan.recv(_CHUNK)
                if not data:
                    break
                self._heard()
                pending += data
                *lines, pending = pending.split(b"\n")
                if lines:
                    yield [line.decode("utf-8", errors="replace") for line in lines]
            if pending:
                yield [pending.decode("utf-8", errors="replace")]
            if not self._closed:  # the command ended: its exit status may come after the EOF
                self._chan.status_event.wait(2.0)
        finally:
            self.close()

    def poll_batches(self) -> tuple[list[list[str]], bool]:
        """Without waiting: the complete lines that came since the last call (a read's lines
        per list), and whether the command's output has ended — then with its last line
        even without a "\\n", and the channel closed. For a reader that visits many streams
        in turn from one thread; not to be mixed with iterating the same stream."""
        chan = self._chan
        ended = chan.eof_received or chan.closed  # before reading: all data came before it
        out: list[list[str]] = []
        while chan.recv_ready():
            data = chan.recv(_CHUNK)
            if not data:
                break
            self._heard()
            *lines, self._partial = (self._partial + data).split(b"\n")
            if lines:
                out.append([line.decode("utf-8", errors="replace") for line in lines])
        if ended or self._closed:
            if self._partial:
                out.append([self._partial.decode("utf-8", errors="replace")])
                self._partial = b""
            self.close()
            return out, True
        return out, False

    def send(self, data: bytes) -> None:
        """Write to the command's standard input (a question to a command that answers on
        its output, as the GPU process list's session)."""
        self._chan.sendall(data)


class _FileServer(_OwnedChannel):
    """A long-lived ``read_files`` server (READ_FILES_SERVE_*) on its own session."""

    def __init__(self, chan: paramiko.Channel, slot: _Slot) -> None:
        super().__init__(chan, slot)
        #: Set while stdout holds data or the channel closed (paramiko clears it on reads).
        self._ready = threading.Event()
        chan.in_buffer.set_event(self._ready)

    @property
    def usable(self) -> bool:
        chan = self._chan
        return not (self._closed or chan.closed or chan.eof_received)

    def ask(self, request: bytes, deadline: float) -> bytes:
        """Send one request (paths, one a line, then an empty line); the answer's files.
        EOFError when the server ended, TimeoutError past ``deadline``."""
        chan = self._chan
        chan.sendall(request + b"\n")
        buf = bytearray()
        scanned = 0
        while True:
            while chan.recv_ready():
                buf += chan.recv(_CHUNK)
            scanned, found = answer_end(buf, scanned)
            if found is not None:
                if found[1] != len(buf):  # more than one answer: out of step, do not reuse
                    self.close()
                if buf[:1] == b"~":
                    return unescape_answer(buf[1 : found[0]])
                return bytes(buf[: found[0]])
            if chan.eof_received or chan.closed:
                raise EOFError("the read_files server ended")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._ready.wait(remaining)


class SshPty(_OwnedChannel):
    """A program on a pseudo-terminal of the remote machine (the ``Pty`` protocol)."""

    @property
    def channel(self) -> paramiko.Channel:
        return self._chan

    def read(self, size: int = 65536) -> bytes:
        """Blocks until output arrives; b"" once the program has ended (or after close)."""
        return self._chan.recv(size)

    def write(self, data: bytes) -> None:
        self._chan.sendall(data)

    def resize(self, cols: int, rows: int) -> None:
        self._chan.resize_pty(width=cols, height=rows)

    def fileno(self) -> int:
        """Readable (for select) when output is waiting or the program has ended."""
        return self._chan.fileno()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status (-1: ended without one), or None if still running after ``timeout``."""
        if self._chan.status_event.wait(timeout):
            return self._chan.exit_status
        return None


class SshMachine:
    """A remote computer reached over one supervised SSH connection (see the module's notes)."""

    def __init__(
        self,
        name: str,
        address: str,
        connect: Callable[[], paramiko.Transport],
        *,
        probe_interval: float = 5.0,
        probe_timeout: float = 3.0,
        down_after: int = 2,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
        latency_probes: bool = True,
    ) -> None:
        self._name = name
        self._address = address
        self._connect = connect
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._down_after = max(1, down_after)
        self._latency_probes = latency_probes
        self._clock = clock
        self._max_sessions = max_sessions
        self._slots = threading.BoundedSemaphore(max_sessions)

        self._lock = threading.Lock()  # guards the fields below; held only briefly
        self._connect_lock = threading.Lock()  # one connection attempt at a time
        self._transport: paramiko.Transport | None = None
        self._status = LinkStatus(LinkState.CONNECTING, "not connected yet", None, clock())
        self._closed = False
        self._retry_requested = False
        self._backoff = BACKOFF_START
        self._next_attempt = 0.0
        self._next_probe = 0.0
        self._misses = 0
        #: When a stream last brought output (monotonic), and when a probe last ran.
        self._heard_at = -1e9
        self._probed_at = -1e9
        self._supervisor: threading.Thread | None = None
        self._probe_thread: threading.Thread | None = None
        self._listeners: list[Callable[[LinkStatus], None]] = []
        self._pending: SimpleQueue[LinkStatus] = SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()

        #: The exception of the last failed connection attempt (the console shows a
        #: HostKeyUnknown's fingerprint from it and can trust that key).
        self.last_error: BaseException | None = None
        #: The ``read_files`` server session (one caller at a time; others run their own).
        self._server_lock = threading.Lock()
        self._server: _FileServer | None = None
        self._count_lock = threading.Lock()
        self._connects = 0
        self._sessions_opened = 0
        self._execs = 0
        self._probes = 0

    # -- identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def address(self) -> str:
        return self._address

    @property
    def is_local(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"SshMachine({self._name!r}, {self._address!r}, {self._status.state.value})"

    # -- counters ---------------------------------------------------------------------------

    @property
    def connects(self) -> int:
        """Successful logins (connections made) so far."""
        return self._connects

    @property
    def sessions_opened(self) -> int:
        """Session channels opened for callers (probes not counted)."""
        return self._sessions_opened

    @property
    def execs(self) -> int:
        """Exec requests sent (one per run/read_files/existing/make_dirs/stream/open_pty)."""
        return self._execs

    @property
    def probes(self) -> int:
        """Liveness probes sent."""
        return self._probes

    def _bump(self, counter: str) -> None:
        with self._count_lock:
            setattr(self, counter, getattr(self, counter) + 1)

    # -- link state -------------------------------------------------------------------------

    @property
    def status(self) -> LinkStatus:
        return self._status

    def add_listener(self, callback: Callable[[LinkStatus], None]) -> None:
        """Call ``callback(status)`` on every change, on the supervisor thread."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[LinkStatus], None]) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def retry_now(self) -> None:
        """Try to connect now (after trusting a key or fixing a login); no-op while UP.

        The state becomes CONNECTING; callers meanwhile wait for that one attempt.
        """
        with self._lock:
            if self._closed or self._status.state in (LinkState.UP, LinkState.CONNECTING):
                return
            self._backoff = BACKOFF_START
            self._retry_requested = True
            self._set_status_locked(LinkState.CONNECTING, "retrying")
            self._ensure_supervisor_locked()
        self._wake.set()

    def _set_status_locked(
        self, state: LinkState, reason: str = "", latency_ms: float | None = None
    ) -> None:
        old = self._status
        if (old.state, old.reason, old.latency_ms) == (state, reason, latency_ms):
            return
        since = old.since if state is old.state else self._clock()
        self._status = new = LinkStatus(state, reason, latency_ms, since)
        self._pending.put(new)
        self._wake.set()

    def _unreachable(self) -> MachineUnreachable:
        st = self._status
        hint = {
            LinkState.DOWN: "reconnecting in the background",
            LinkState.NEEDS_TRUST: "the host key is not trusted yet; trust it, then retry",
            LinkState.REFUSED: "fix the host key or login, then retry",
        }.get(st.state, "")
        if self._closed:
            return MachineUnreachable(self._name, self._address, "the connection was closed")
        reason = st.reason or st.state.value
        return MachineUnreachable(self._name, self._address, reason, hint)

    def _schedule_retry_locked(self) -> None:
        delay = self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        self._next_attempt = time.monotonic() + delay + random.uniform(0.0, delay / 4)

    def _ensure_supervisor_locked(self) -> None:
        if self._supervisor is None and not self._closed:
            self._supervisor = threading.Thread(
                target=self._supervise, name=f"gpuconsole-ssh-{self._name}", daemon=True
            )
            self._supervisor.start()

    # -- the connection ---------------------------------------------------------------------

    def transport(self) -> paramiko.Transport:
        """The live transport; connects on first use (concurrent callers share the attempt).

        Raises MachineUnreachable at once when the link is DOWN, NEEDS_TRUST or REFUSED.
        """
        t = self._transport
        if t is not None and t.is_active():
            return t
        dead: paramiko.Transport | None = None
        with self._lock:
            if self._closed:
                raise self._unreachable()
            t = self._transport
            if t is not None:
                if t.is_active():
                    return t
                dead = t
            state = self._status.state
        if dead is not None:
            self._lose(dead, self._dead_reason(dead))
            raise self._unreachable()
        if state is not LinkState.CONNECTING:
            raise self._unreachable()
        with self._connect_lock:
            with self._lock:
                t = self._transport
                if t is not None and t.is_active():
                    return t
                if self._closed or self._status.state is not LinkState.CONNECTING:
                    raise self._unreachable()
                self._ensure_supervisor_locked()
            try:
                return self._attempt()
            except GpuconsoleError:
                raise
            except Exception as e:
                raise MachineUnreachable(self._name, self._address, _reason(e)) from e

    def _attempt(self) -> paramiko.Transport:
        """One connection attempt; the caller holds ``_connect_lock``."""
        try:
            t = self._connect()
            _no_delay(t)
            if not t.is_active():
                t.close()
                raise MachineUnreachable(
                    self._name, self._address, "the SSH connection closed during login"
                )
        except Exception as e:
            state = _classify(e)
            self.last_error = e
            with self._lock:
                self._retry_requested = False
                if not self._closed:
                    self._set_status_locked(state, _reason(e))
                    if state is LinkState.DOWN:
                        self._schedule_retry_locked()
            raise
        with self._lock:
            if self._closed:
                t.close()
                raise self._unreachable()
            self._transport = t
            self._retry_requested = False
            self._misses = 0
            self._backoff = BACKOFF_START
            self._next_probe = time.monotonic() + self._probe_interval
            self._set_status_locked(LinkState.UP)
        self._bump("_connects")
        return t

    def _dead_reason(self, t: paramiko.Transport) -> str:
        e = t.get_exception()
        return f"the SSH connection was lost ({e})" if e else "the SSH connection was lost"

    def _lose(self, t: paramiko.Transport, reason: str) -> None:
        """Mark the link DOWN because ``t`` is dead or silent, and close ``t``."""
        with self._lock:
            if self._transport is not t:
                return
            self._transport = None
            self._misses = 0
            if not self._closed:
                self._set_status_locked(LinkState.DOWN, reason)
                self._schedule_retry_locked()
        try:
            t.close()
        except Exception:
            log.debug("closing a lost transport failed", exc_info=True)

    # -- the supervisor ---------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                self._dispatch()
                delay = self._step()
                if delay is None or delay > 0:
                    self._wake.wait(delay)
        finally:
            self._dispatch()

    def _dispatch(self) -> None:
        while not self._pending.empty():
            try:
                status = self._pending.get_nowait()
            except Empty:
                return
            with self._lock:
                listeners = list(self._listeners)
            for callback in listeners:
                try:
                    callback(status)
                except Exception:
                    log.exception("link listener of %s failed", self._name)

    def _step(self) -> float | None:
        """Do what is due; return how long to sleep (None: until woken)."""
        with self._lock:
            if self._closed:
                return 0.0
            state, t = self._status.state, self._transport
            retry = self._retry_requested
        now = time.monotonic()
        if state is LinkState.UP and t is not None:
            if not t.is_active():
                self._lose(t, self._dead_reason(t))
                return 0.0
            if now < self._next_probe:
                return self._next_probe - now
            self._next_probe = now + self._probe_interval
            heard = time.monotonic() - self._heard_at < self._probe_interval
            if heard and (
                not self._latency_probes or now - self._probed_at < 6 * self._probe_interval
            ):
                with self._lock:
                    self._misses = 0  # the peer spoke within the interval: as good as a probe
                return self._probe_interval  # (a status change meanwhile wakes it sooner)
            self._probed_at = now
            self._probe(t)
            return max(0.0, self._next_probe - time.monotonic())
        if state is LinkState.DOWN:
            if now < self._next_attempt:
                return self._next_attempt - now
            self._reconnect()
            return 0.0
        if state is LinkState.CONNECTING and retry:
            self._reconnect()
            return 0.0
        return None

    def _reconnect(self) -> None:
        with self._connect_lock:
            with self._lock:
                if self._closed or self._status.state not in (
                    LinkState.DOWN,
                    LinkState.CONNECTING,
                ):
                    return
            try:
                self._attempt()
            except Exception as e:
                log.debug("reconnecting to %s failed: %s", self._name, e)

    def _probe(self, t: paramiko.Transport) -> None:
        """One liveness probe, in a thread of its own: paramiko can block in a send (a full TCP
        buffer, a key exchange in progress) beyond any timeout, and the supervisor must still
        decide within ``probe_timeout``. A probe still running at the next one is a miss."""
        outcome = "miss"
        latency_ms: float | None = None
        if self._probe_thread is None or not self._probe_thread.is_alive():
            result: list[tuple[str, float]] = []
            done = threading.Event()

            def work() -> None:
                result.append(self._probe_once(t))
                done.set()

            self._probe_thread = threading.Thread(
                target=work, name=f"gpuconsole-ssh-probe-{self._name}", daemon=True
            )
            self._probe_thread.start()
            if done.wait(self._probe_timeout + 0.2):
                outcome, elapsed = result[0]
                if elapsed > self._probe_timeout:
                    outcome = "miss"  # an answer that came too late is no answer
                latency_ms = round(elapsed * 1000.0, 2)
        self._bump("_probes")
        if outcome == "dead":
            self._lose(t, self._dead_reason(t))
            return
        with self._lock:
            if self._transport is not t or self._closed:
                return
            if outcome == "alive":
                self._misses = 0
                self._set_status_locked(LinkState.UP, "", latency_ms)
                return
            self._misses += 1
            misses = self._misses
        if misses >= self._down_after:
            self._lose(
                t,
                f"the SSH server stopped answering ({misses} probes got no answer "
                f"within {self._probe_timeout:g} s)",
            )

    def _probe_once(self, t: paramiko.Transport) -> tuple[str, float]:
        """("alive" | "miss" | "dead", seconds): open a session channel and close it at once."""
        import paramiko

        from gpuconsole.backend.ssh.streamlocal import ChannelOpenTimeout, open_channel

        start = time.monotonic()
        outcome = "alive"
        try:
            open_channel(t, "session", timeout=self._probe_timeout).close()
        except ChannelOpenTimeout:
            outcome = "miss"
        except paramiko.ChannelException:
            pass  # refused (MaxSessions reached by others): answered all the same
        except Exception:
            outcome = "alive" if t.is_active() else "dead"
        return outcome, time.monotonic() - start

    # -- sessions -----------------------------------------------------------------------------

    def _open_session(
        self, t: paramiko.Transport, deadline: float, what: str, timeout: float
    ) -> tuple[paramiko.Channel, _Slot]:
        from gpuconsole.backend.ssh.streamlocal import open_channel

        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise CommandError(
                f"{what} did not answer within {timeout:g} s: all {self._max_sessions} SSH "
                f"sessions to {self._name} stay busy"
            )
        import paramiko

        slot = _Slot(self._slots)
        pause = 0.05
        while True:
            try:
                chan = open_channel(t, "session", timeout=max(0.05, deadline - time.monotonic()))
                break
            except paramiko.ChannelException as e:
                # sshd counts a session we just closed until its own cleanup ran, so a burst
                # can meet MaxSessions a moment early: that refusal is retried, briefly.
                if time.monotonic() + pause >= deadline or not t.is_active():
                    slot.release()
                    raise self._failure(t, e, what, timeout) from e
                time.sleep(pause)
                pause = min(pause * 2, 0.4)
            except Exception as e:
                slot.release()
                raise self._failure(t, e, what, timeout) from e
        self._bump("_sessions_opened")
        return chan, slot

    def _failure(
        self, t: paramiko.Transport, exc: BaseException, what: str, timeout: float
    ) -> GpuconsoleError:
        """The error a caller sees for ``exc`` raised while using ``t``."""
        import paramiko

        from gpuconsole.backend.ssh.streamlocal import ChannelOpenTimeout

        if isinstance(exc, GpuconsoleError):
            return exc
        if not t.is_active():
            self._lose(t, self._dead_reason(t))
            return self._unreachable()
        if isinstance(exc, ChannelOpenTimeout):
            return CommandError(f"{what} did not answer within {timeout:g} s")
        if isinstance(exc, paramiko.ChannelException):
            return CommandError(f"{what}: {self._name} refused an SSH session ({exc.text})")
        return CommandError(f"{what} on {self._name} failed: {_reason(exc)}")

    def _execute(
        self, command: str, what: str, timeout: float, stdin: bytes | None
    ) -> tuple[int, bytes, bytes]:
        """Run ``command`` in one session; stdout and stderr read together; bounded by timeout."""
        deadline = time.monotonic() + timeout
        t = self.transport()
        chan, slot = self._open_session(t, deadline, what, timeout)
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            chan.close()

        alarm = _DEADLINES.schedule(deadline, expire)
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            ready = threading.Event()  # set when either stream has data or has ended
            chan.in_buffer.set_event(ready)
            chan.in_stderr_buffer.set_event(ready)
            chan.exec_command(command)
            self._bump("_execs")
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            while True:
                eof = chan.eof_received or chan.closed
                while chan.recv_ready():
                    out.append(chan.recv(_CHUNK))
                while chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(_CHUNK))
                if eof:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    expired.set()
                    break
                ready.wait(remaining)
            if not expired.is_set() and not chan.status_event.wait(
                max(0.0, deadline - time.monotonic())
            ):
                expired.set()
            status = chan.exit_status
        except Exception as e:
            if expired.is_set():
                raise CommandError(f"{what} did not answer within {timeout:g} s") from None
            raise self._failure(t, e, what, timeout) from e
        finally:
            alarm.cancel()
            chan.close()
            slot.release()
        if expired.is_set():
            raise CommandError(f"{what} did not answer within {timeout:g} s")
        if status == -1 and not t.is_active():
            raise self._failure(t, EOFError("connection lost"), what, timeout)
        return status, b"".join(out), b"".join(err)

    # -- the Machine protocol -------------------------------------------------------------------

    def run(self, argv: Sequence[str], timeout: float, *, stdin: bytes | None = None) -> str:
        """Run ``argv`` (quoted for a POSIX shell) to completion and return its stdout.

        CommandError on exit != 0 (the first stderr line, or "X exited N") and on timeout ("X
        did not answer within N s"; the channel is closed: sshd sends no signal, the remote
        command ends at its next write, by SIGPIPE, or on its own). MachineUnreachable when the
        link is down or drops meanwhile.
        """
        what = argv[0] if argv else "command"
        status, out, err = self._execute(shlex.join(argv), what, timeout, stdin)
        if status != 0:
            first = next(
                (ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()),
                "",
            )
            if first:
                raise CommandError(first)
            if status == -1:
                raise CommandError(f"{what} ended without an exit status (killed by a signal?)")
            raise CommandError(f"{what} exited {status}")
        return out.decode("utf-8", errors="replace")

    def stream(self, argv: Sequence[str]) -> SshLineStream:
        """Start ``argv`` with stderr merged; iterate its lines until it ends; ``close()`` stops
        it. Holds one session slot until closed or ended."""
        what = argv[0] if argv else "command"

        def start(chan: paramiko.Channel) -> None:
            chan.set_combine_stderr(True)
            chan.exec_command(shlex.join(argv))
            self._bump("_execs")

        return SshLineStream(*self._start_session(what, start), heard=self._heard)

    def _heard(self) -> None:
        """Output arrived from the peer: the link is alive now (see the probes)."""
        self._heard_at = time.monotonic()

    def _start_session(
        self, what: str, start: Callable[[paramiko.Channel], None]
    ) -> tuple[paramiko.Channel, _Slot]:
        """A session channel set up by ``start`` within SETUP_TIMEOUT, with its slot held;
        on any failure both are given back and the error says what failed."""
        deadline = time.monotonic() + SETUP_TIMEOUT
        t = self.transport()
        chan, slot = self._open_session(t, deadline, what, SETUP_TIMEOUT)
        alarm = _DEADLINES.schedule(deadline, chan.close)
        try:
            start(chan)
        except Exception as e:
            chan.close()
            slot.release()
            if not alarm.pending:
                raise CommandError(f"{what} did not start within {SETUP_TIMEOUT:g} s") from None
            raise self._failure(t, e, what, SETUP_TIMEOUT) from e
        finally:
            alarm.cancel()
        return chan, slot

    def read_files(self, paths: Sequence[str], timeout: float = 10.0) -> dict[str, str]:
        """Read many small text files with ONE remote command (shell builtins, no process per
        file); missing, unreadable and non-regular paths are left out.

        The content is exact (a last line without "\\n" stays without), decoded as UTF-8 with
        replacement, except that NUL bytes are dropped (shell strings cannot hold them: read
        /proc/PID/cmdline and environ another way), and a file that opens but fails to read
        (write-only cgroup control files) comes back empty. /proc and /sys files (size 0) read
        fine; /proc/sys files only where the remote has bash (see READ_FILES_BASH). Paths
        containing a newline cannot be named on the script's stdin and are left out.
        """
        wanted = list(dict.fromkeys(p for p in paths if p and "\n" not in p))
        if not wanted:
            return {}
        stdin = "".join(p + "\n" for p in wanted).encode("utf-8", errors="surrogateescape")
        if self._max_sessions >= 4 and self._server_lock.acquire(blocking=False):
            try:
                served = self._served(stdin, timeout)
            finally:
                self._server_lock.release()
            if served is not None:
                return parse_read_files_output(served)
        status, out, err = self._execute(
            shlex.join(read_files_argv()),
            "read_files",
            timeout,
            stdin,
        )
        if status != 0:
            raise CommandError(
                f"reading files on {self._name} failed: "
                f"{err.decode('utf-8', 'replace').strip() or f'sh exited {status}'}"
            )
        return parse_read_files_output(out)

    def _served(self, stdin: bytes, timeout: float) -> bytes | None:
        """``read_files`` through the server session (started on first use, and again after
        it ended); None when it ended under this request (the caller runs the command once
        instead). The caller holds ``_server_lock``."""
        deadline = time.monotonic() + timeout
        server = self._server
        if server is None or not server.usable:
            if server is not None:
                server.close()
            self._server = None

            def start(chan: paramiko.Channel) -> None:
                chan.exec_command(shlex.join(read_files_serve_argv()))
                self._bump("_execs")

            server = self._server = _FileServer(*self._start_session("read_files", start))
        alarm = _DEADLINES.schedule(deadline, server.close)
        try:
            out = server.ask(stdin, deadline)
        except Exception as e:
            server.close()
            self._server = None
            t = self._transport
            if t is None or not t.is_active():
                if t is not None:
                    self._lose(t, self._dead_reason(t))
                raise self._unreachable() from e
            if isinstance(e, TimeoutError) or not alarm.pending:
                raise CommandError(f"read_files did not answer within {timeout:g} s") from None
            return None
        finally:
            alarm.cancel()
        self._heard()
        return out

    def existing(self, paths: Sequence[str], timeout: float = 10.0) -> frozenset[str]:
        """Which of ``paths`` exist (``[ -e ]``: a dangling symlink does not), in one command."""
        wanted = list(dict.fromkeys(p for p in paths if p and "\n" not in p))
        if not wanted:
            return frozenset()
        stdin = "".join(p + "\n" for p in wanted).encode("utf-8", errors="surrogateescape")
        status, out, err = self._execute(
            shlex.join(["sh", "-c", EXISTING_SCRIPT]), "existing", timeout, stdin
        )
        if status != 0:
            raise CommandError(
                f"checking paths on {self._name} failed: "
                f"{err.decode('utf-8', 'replace').strip() or f'sh exited {status}'}"
            )
        found = set(out.decode("utf-8", errors="surrogateescape").split("\n"))
        return frozenset(p for p in wanted if p in found)

    def make_dirs(self, paths: Sequence[str], timeout: float = 10.0) -> None:
        """``mkdir -p`` every path in one command; CommandError naming the one that failed."""
        wanted = list(dict.fromkeys(p for p in paths if p))
        if not wanted:
            return
        argv = ["sh", "-c", MAKE_DIRS_SCRIPT, "sh", *wanted]
        status, _out, err = self._execute(shlex.join(argv), "mkdir", timeout, None)
        if status == 0:
            return
        lines = err.decode("utf-8", errors="replace").splitlines()
        failed = next((ln[1:] for ln in reversed(lines) if ln.startswith(">")), "")
        detail = next((ln for ln in lines if ln and not ln.startswith(">")), "")
        if failed:
            raise CommandError(
                f"cannot create directory {failed} on {self._name}"
                + (f": {detail}" if detail else "")
            )
        raise CommandError(
            f"cannot create directories on {self._name}: {detail or f'mkdir exited {status}'}"
        )

    def connect_tcp(self, host: str, port: int, timeout: float = 5.0) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to ``host:port`` as the remote machine sees it.

        ConnectionRefusedError when the server could not connect (nothing listens, forwarding
        forbidden), TimeoutError when it did not answer in time, MachineUnreachable when the link
        is down: a caller can treat it like ``socket.create_connection``.
        """
        from paramiko.message import Message

        from gpuconsole.backend.ssh.streamlocal import open_channel

        m = Message()
        m.add_string(host)
        m.add_int(port)
        m.add_string("127.0.0.1")
        m.add_int(0)
        fields = m.asbytes()
        return self._forward(
            lambda t: open_channel(t, "direct-tcpip", fields, timeout=timeout),
            f"{host}:{port}",
            timeout,
        )

    def connect_unix(self, path: str, timeout: float = 5.0) -> paramiko.Channel:
        """A ``direct-streamlocal@openssh.com`` channel to the unix socket ``path`` (the Docker
        engine's), not a session: no slot, no MaxSessions.

        Raises ``StreamLocalRefused`` (a GpuconsoleError) when the server forbids it
        (``AllowStreamLocalForwarding no``): fall back to ``docker system dial-stdio``. Otherwise
        as :meth:`connect_tcp` (ConnectionRefusedError also for a missing socket).
        """
        from gpuconsole.backend.ssh.streamlocal import open_streamlocal

        return self._forward(lambda t: open_streamlocal(t, path, timeout), path, timeout)

    def _forward(
        self,
        opener: Callable[[paramiko.Transport], paramiko.Channel],
        where: str,
        timeout: float,
    ) -> paramiko.Channel:
        import paramiko

        from gpuconsole.backend.ssh.streamlocal import ChannelOpenTimeout, StreamLocalRefused

        t = self.transport()
        try:
            return opener(t)
        except StreamLocalRefused:
            raise
        except ChannelOpenTimeout:
            raise TimeoutError(
                errno.ETIMEDOUT,
                f"connecting to {where} on {self._name} timed out after {timeout:g} s",
            ) from None
        except paramiko.ChannelException as e:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"{self._name} could not connect to {where}: {e.text}"
            ) from e
        except Exception as e:
            raise self._failure(t, e, f"connecting to {where}", timeout) from e

    def open_pty(
        self,
        argv: Sequence[str] | None,
        *,
        cols: int = 80,
        rows: int = 24,
        term: str = "xterm-256color",
    ) -> SshPty:
        """Run ``argv`` (None: the login shell) on a remote pseudo-terminal; holds a session
        slot until closed."""
        what = argv[0] if argv else "shell"

        def start(chan: paramiko.Channel) -> None:
            chan.get_pty(term=term, width=cols, height=rows)
            if argv is None:
                chan.invoke_shell()
            else:
                chan.exec_command(shlex.join(argv))
                self._bump("_execs")

        return SshPty(*self._start_session(what, start))

    def close(self) -> None:
        """Stop the supervisor and close the connection (every channel on it ends). Returns
        within about a second; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._set_status_locked(LinkState.DOWN, "closed")
            self._closed = True
            t, self._transport = self._transport, None
            supervisor = self._supervisor
            server, self._server = self._server, None
        if server is not None:
            server.close()
        self._stop.set()
        self._wake.set()
        if t is not None:
            try:
                t.close()
            except Exception:
                log.debug("closing the transport of %s failed", self._name, exc_info=True)
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(1.0)


def parse_read_files_output(out: bytes) -> dict[str, str]:
    """Parse the read_files command's output into {path: content}.

    After a ``>PATH`` header comes either ``#N`` and N raw bytes (bash), or lines ``|LINE``
    (a line and its newline) and ``=LINE`` (a last line without one). Paths are decoded as they
    were encoded (UTF-8, surrogateescape), contents as UTF-8 with replacement.
    """
    result: dict[str, str] = {}
    path: str | None = None
    parts: list[bytes] = []

    def flush() -> None:
        if path is not None:
            result[path] = b"".join(parts).decode("utf-8", errors="replace")

    i, end = 0, len(out)
    while i < end:
        nl = out.find(b"\n", i)
        if nl < 0:
            nl = end
        tag, rest = out[i : i + 1], out[i + 1 : nl]
        i = nl + 1
        if tag == b">":
            flush()
            path, parts = rest.decode("utf-8", errors="surrogateescape"), []
        elif path is None:
            continue
        elif tag == b"#" and not parts and rest.isdigit():
            size = int(rest)
            parts.append(out[i : i + size])
            i += size
        elif tag == b"|":
            parts.extend((rest, b"\n"))
        elif tag == b"=":
            parts.append(rest)
    flush()
    return result


__all__ = [
    "MAX_SESSIONS",
    "READ_FILES_BASH",
    "READ_FILES_DISPATCH",
    "READ_FILES_POSIX",
    "LinkState",
    "LinkStatus",
    "SshLineStream",
    "SshMachine",
    "SshPty",
    "parse_read_files_output",
    "read_files_argv",
    "read_files_serve_argv",
    "unescape_answer",
]

"""GPU telemetry from ONE long-lived ``nvidia-smi --query-gpu ... -lms N`` process.

A ``nvidia-smi`` process costs ~35 ms of CPU; at 1 Hz over eight hosts one process per sample
would cost more than the console itself. So one stream is kept open per host and a daemon
thread parses each line into a latest-value slot that ``sample()`` copies (cheap, no I/O). The
process list changes slowly and has no stream form that tells "nothing running" from "no output
yet", so it is a one-shot ``--query-compute-apps`` at a lower rate, run by the same reader thread.
The command runner is injectable: remote hosts supply one that runs over their SSH connection.

``read_in_sample`` (the recorder, over SSH): no reader thread; ``sample()`` takes what came on
the stream since the last sample without waiting, so one thread that samples many hosts in turn
reads all their streams. The process list is asked on a second session kept open (a shell that
answers a line with the list and its origins) and its answer polled the same way: no remote
command, channel or thread per list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, cast

from gpuconsole.backend.errors import HostUnreachable
from gpuconsole.backend.gpu.models import GpuProcess, GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.backend.gpu.runner import (
    CommandError,
    CommandRunner,
    LineStream,
    LocalCommandRunner,
)
from gpuconsole.backend.gpu.smi_origins import (
    END_MARK,
    Origins,
    origins_argv,
    parse_origins_output,
    query_server_argv,
)
from gpuconsole.backend.gpu.smi_parser import (
    SmiParseError,
    parse_apps_csv,
    parse_gpu_line,
    query_apps_args,
    query_gpu_args,
)

log = logging.getLogger(__name__)


def describe_smi_message(line: str) -> str:
    """Turn an nvidia-smi complaint into the sentence the console shows."""
    low = line.lower()
    if "couldn't communicate with the nvidia driver" in low or "driver/library" in low:
        if "mismatch" in low:
            return f"NVIDIA driver/library version mismatch: {line}"
        return f"no NVIDIA driver on this host (nvidia-smi: {line})"
    if "no devices were found" in low:
        return "no NVIDIA GPU on this host"
    if "gpu is lost" in low:
        return f"a GPU fell off the bus ({line})"
    if "requires reset" in low:
        return f"a GPU needs a reset ({line})"
    return f"nvidia-smi: {line}"


def _looks_like_data(line: str) -> bool:
    """A line that was meant as a row of query output (it starts like one: a number and a
    comma), as opposed to a message nvidia-smi printed instead."""
    head, comma, _ = line.partition(",")
    return bool(comma) and head.strip().isdigit()


#: A GPU the memory at the last process list does not have (any value but an int or None).
_ABSENT = object()


class _PollableStream(LineStream, Protocol):
    """A stream that can be read without waiting (an SSH channel's): see SshLineStream."""

    def poll_batches(self) -> tuple[list[list[str]], bool]: ...


class _AskableStream(_PollableStream, Protocol):
    """A pollable stream whose command reads what is sent to it (an SSH session's)."""

    def send(self, data: bytes) -> None: ...


@dataclasses.dataclass
class _QuerySession:
    """The process-list session (read in sample): a question is a line sent, its answer the
    lines polled up to ``END_MARK``."""

    stream: _AskableStream
    #: When the question still out was sent (None: none is out).
    asked_at: float | None = None
    lines: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Reading:
    """What the reading of one stream has seen so far."""

    got_reading: bool = False
    #: When nvidia-smi last printed a message (not a row): the reason it may stop.
    said_at: float | None = None


def _batches(stream: LineStream) -> Iterator[Sequence[str]]:
    """The stream's lines, all those of one read at a time where the stream tells them apart
    (an SSH channel: nvidia-smi prints a round at once), else one by one."""
    batches: Callable[[], Iterator[Sequence[str]]] | None = getattr(stream, "batches", None)
    if batches is not None:
        return batches()
    return ((line,) for line in stream)


def _printable(line: str, limit: int = 80) -> str:
    """A line from the tool as it can be shown on one line of a terminal."""
    text = "".join(ch if ch.isprintable() else "?" for ch in line)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SmiStreamSource:
    """GpuSource reading a persistent nvidia-smi stream through a CommandRunner."""

    def __init__(
        self,
        runner: CommandRunner | None = None,
        *,
        host: str = "local",
        interval: float = 1.0,
        process_interval: float = 5.0,
        process_max_interval: float = 30.0,
        executable: str = "nvidia-smi",
        restart_delay: float = 5.0,
        stale_after: float | None = None,
        command_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        with_origins: bool = False,
        read_in_sample: bool = False,
    ) -> None:
        self._runner: CommandRunner = runner or LocalCommandRunner()
        self._host = host
        self._interval = interval
        self._process_interval = process_interval
        self._process_max_interval = max(process_interval, process_max_interval)
        #: Memory used per GPU when the process list was last asked for: a process starting
        #: (a CUDA context takes hundreds of MiB at once) or ending changes it, so while it
        #: stays the same the list is asked for only every ``process_max_interval`` — the
        #: remote command every 5 s was most of what a quiet host cost (a channel, a process).
        self._memory_at_query: dict[int, int | None] = {}
        self._executable = executable
        self._restart_delay = restart_delay
        self._stale_after = stale_after if stale_after is not None else max(5.0, 3 * interval)
        self._command_timeout = command_timeout
        self._with_origins = with_origins
        #: Restarts back off (up to 5 min) while the stream dies without one reading, so a
        #: host without nvidia-smi does not get a remote process every few seconds.
        self._failed_starts = 0
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._stream: LineStream | None = None
        #: The reader thread, or (read in sample) the thread that ends a stream that ended.
        self._thread: threading.Thread | None = None
        #: Read the stream in ``sample()`` where it can be read without waiting (an SSH
        #: channel) instead of in a reader thread: the recorder samples all its hosts in
        #: turn, so one thread reads every stream back to back, its code warm. A reader
        #: thread per host is woken by every round of readings with its code gone cold
        #: (its first line parsed in 90 us, the next ones in 20): with 10 hosts, 1.13 ms of
        #: CPU per host and second against 0.79 read in sample, SSH included. The process
        #: list is then asked for in a thread of its own (at most one at a time).
        self._read_in_sample = read_in_sample
        #: The stream ``sample()`` reads (read in sample, while it runs), with what was read.
        self._polled: tuple[_PollableStream, _Reading] | None = None
        self._poll_lock = threading.Lock()
        self._query_thread: threading.Thread | None = None
        #: Read in sample, with origins: the process list is asked for on one session kept
        #: open (``query_server_argv``), polled like the stream; None until first asked, and
        #: again once it failed. ``_query_sessions``: False where the runner's streams take
        #: no input (then a command per list, in a thread, as without read in sample).
        self._queries: _QuerySession | None = None
        self._query_sessions = with_origins
        self._latest: dict[int, GpuSample] = {}
        #: The highest GPU index in ``_latest`` (GPUs are never dropped from it).
        self._top_index: int | None = None
        self._gpu_at: dict[int, float] = {}
        self._processes: tuple[GpuProcess, ...] = ()
        #: The last process list with GPU indices: (list, UUID -> index, the list indexed).
        self._indexed: (
            tuple[tuple[GpuProcess, ...], dict[str, int], tuple[GpuProcess, ...]] | None
        ) = None
        self._origins: Origins = ()
        self._processes_at: float | None = None
        #: The first round of GPU lines is complete (a GPU index came round again, or the
        #: stream ended): until then the GPU count is not known and no process list is asked.
        self._first_round_done = False
        self._last_index: int | None = None
        self._started_at: float | None = None
        self._line_at: float | None = None
        self._line_wall: float | None = None
        self._error: str | None = None
        self._error_at: float | None = None
        self._apps_error: str | None = None
        self._ended_at: float | None = None
        self._closed = False
        #: How many long-lived streams were started (1 unless the stream died and was restarted).
        self.spawns = 0

    @property
    def name(self) -> str:
        return "nvidia-smi"

    @property
    def host(self) -> str:
        return self._host

    @property
    def replayed(self) -> bool:
        return False

    @property
    def processes_pending(self) -> bool:
        """The stream runs but its first process list has not come back yet (it is asked for
        after the first round of GPU lines): a one-shot reader waits for it."""
        with self._lock:
            return self._running() and self._processes_at is None

    def _running(self) -> bool:
        """Under the lock: a stream was started and has not ended."""
        return self._ended_at is None and (self._thread is not None or self._polled is not None)

    @property
    def argv(self) -> list[str]:
        ms = max(1, round(self._interval * 1000))
        return [self._executable, *query_gpu_args(), "-lms", str(ms)]

    def start(self) -> None:
        """Start the stream unless it runs (or died less than ``restart_delay`` ago)."""
        with self._lock:
            if self._closed or self._polled is not None:
                return
            if self._thread is not None and self._thread.is_alive():
                return
            delay = min(300.0, self._restart_delay * 2 ** min(self._failed_starts, 6))
            if self._ended_at is not None and self._clock() - self._ended_at < delay:
                return
            self._ended_at = None
            self._started_at = self._clock()
            self._first_round_done = False
            self._last_index = None
        self.spawns += 1
        try:
            stream = self._runner.stream(self.argv)
        except CommandError as err:
            with self._lock:
                self._set_error(str(err))
                self._ended_at = self._clock()
            return
        self._stream = stream
        if self._read_in_sample and hasattr(stream, "poll_batches"):
            with self._lock:
                self._thread = None
                self._polled = (cast("_PollableStream", stream), _Reading())
            return
        self._thread = threading.Thread(
            target=self._read, args=(stream,), name=f"nvidia-smi stream {self._host}", daemon=True
        )
        self._thread.start()

    def _set_error(self, message: str) -> None:
        self._error = message
        self._error_at = self._clock()

    def _read(self, stream: LineStream) -> None:
        reading = _Reading()
        for lines in _batches(stream):
            self._take_batch(lines, reading, self._query_processes)
        self._finish(stream, reading)

    def _poll(self) -> None:
        """Read in sample: what came on the stream since the last sample, without waiting."""
        if not self._poll_lock.acquire(blocking=False):
            return  # another thread samples this host right now: it reads
        try:
            polled = self._polled
            if polled is None:
                return
            stream, reading = polled
            try:
                batches, ended = stream.poll_batches()
            except Exception as exc:  # a stream that cannot be read has ended
                log.debug("%s: reading the nvidia-smi stream failed: %s", self._host, exc)
                batches, ended = [], True
            for lines in batches:
                self._take_batch(lines, reading, self._query_soon)
            if ended:
                # What the reader thread does after the stream's end (it may ask for the
                # process list and wait for it): in a thread, as the process list.
                thread = threading.Thread(
                    target=self._finish,
                    args=(stream, reading),
                    name=f"nvidia-smi end {self._host}",
                    daemon=True,
                )
                with self._lock:
                    if self._polled is not polled:
                        return  # closed meanwhile: close() saw to the stream
                    self._polled = None
                    self._thread = thread
                thread.start()
        finally:
            self._poll_lock.release()

    def _take_batch(
        self, lines: Sequence[str], reading: _Reading, query: Callable[[], None]
    ) -> None:
        """One read's lines: rows parsed, then taken under one lock up to the end of a round
        whose process list is due; ``query`` asks for it (outside the lock)."""
        gpus: list[GpuSample] = []
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            try:
                gpus.append(parse_gpu_line(line))
            except SmiParseError:
                with self._lock:
                    if _looks_like_data(line):
                        # A garbled or cut-off row: skipped, and said, but it is no reason.
                        self._set_error(f"skipped a line nvidia-smi garbled: {_printable(line)!r}")
                    else:
                        self._set_error(describe_smi_message(_printable(line, 200)))
                        reading.said_at = self._error_at
        if gpus:
            reading.got_reading = True
        rows = iter(gpus)
        more = bool(gpus)
        while more:
            more = False
            now = self._clock()
            with self._lock:
                wall = self._wall_clock()
                for gpu in rows:
                    if self._take(gpu, now, wall):
                        more = True
                        break
            if more:  # a round is complete and the process list is due
                query()

    def _finish(self, stream: LineStream, reading: _Reading) -> None:
        """The stream ended (the process, or its connection)."""
        # Make sure the process is gone, not left running with nobody reading it (a stream
        # that ended on undecodable output, say).
        with contextlib.suppress(Exception):
            stream.close()
        asking = self._query_thread
        if asking is not None:
            asking.join(self._command_timeout + 1)
        with self._lock:
            query = reading.got_reading and self._processes_at is None and not self._closed
            self._first_round_done = True
        if query:  # the one round it printed is complete: who used the GPUs then
            self._query_processes()
        with self._lock:
            self._ended_at = self._clock()
            self._failed_starts = 0 if reading.got_reading else self._failed_starts + 1
            if not self._closed:
                # Keep what nvidia-smi said just before it exited (the driver message); an
                # old complaint from hours ago is not the reason it stopped.
                said_at = reading.said_at
                said = said_at is not None and self._ended_at - said_at < 1.0
                self._set_error(
                    self._error if said and self._error else "nvidia-smi stopped streaming"
                )

    def _query_soon(self) -> None:
        """Read in sample: the process list, asked for on the query session, else in a
        thread of its own (the memory it is asked at is taken now); none while the last one
        is still out."""
        if self._query_sessions and self._ask_session():
            return
        asking = self._query_thread
        if asking is not None and asking.is_alive():
            return
        memory = self._memory_now()
        thread = threading.Thread(
            target=self._query_processes,
            args=(memory,),
            name=f"nvidia-smi processes {self._host}",
            daemon=True,
        )
        self._query_thread = thread
        thread.start()

    def _ask_session(self) -> bool:
        """Send the question on the query session (opened first if need be); False where the
        runner cannot keep one (the caller asks another way)."""
        session = self._queries
        if session is not None and session.asked_at is not None:
            return True  # the answer is still out
        memory = self._memory_now()
        if session is None:
            try:
                stream = self._runner.stream(query_server_argv(self._executable, query_apps_args()))
            except Exception as err:  # the samples go on without a new list; said
                self._no_answer(f"cannot list GPU processes: {err}")
                return True
            if not (hasattr(stream, "poll_batches") and hasattr(stream, "send")):
                stream.close()
                self._query_sessions = False
                return False
            session = self._queries = _QuerySession(cast("_AskableStream", stream))
        try:
            session.stream.send(b"\n")
        except Exception as err:  # the session is gone with its channel: opened again next time
            self._drop_session(f"cannot list GPU processes: {err}")
            return True
        with self._lock:
            self._memory_at_query = memory
        session.asked_at = self._clock()
        return True

    def _poll_session(self) -> None:
        """Read in sample: the query session's answer, if it came."""
        session = self._queries
        if session is None or session.asked_at is None:
            return
        try:
            batches, ended = session.stream.poll_batches()
        except Exception:  # a session that cannot be read has ended
            batches, ended = [], True
        for lines in batches:
            for line in lines:
                if line != END_MARK:
                    session.lines.append(line)
                    continue
                output = "\n".join(session.lines)
                session.lines = []
                session.asked_at = None
                self._store_processes(output)
        if ended:
            self._drop_session(
                None if session.asked_at is None else "the GPU process query ended unanswered"
            )
        elif session.asked_at is not None and (
            self._clock() - session.asked_at > self._command_timeout
        ):
            self._drop_session(
                f"cannot list GPU processes: nvidia-smi did not answer within "
                f"{self._command_timeout:g} s"
            )

    def _drop_session(self, problem: str | None) -> None:
        """Close the query session (opened again at the next question); ``problem``: why, if
        an answer was lost with it."""
        session, self._queries = self._queries, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.stream.close()
        if problem is not None:
            self._no_answer(problem)

    def _no_answer(self, problem: str) -> None:
        with self._lock:
            self._processes_at = self._clock()
            self._apps_error = problem

    def _take(self, gpu: GpuSample, now: float, wall: float) -> bool:
        """Under the lock: one GPU row read at ``now``; True when it completes a round and the
        process list is due."""
        previous = self._latest.get(gpu.index)
        if gpu.error and previous is not None:
            # A GPU that needs a reset reads "[GPU requires reset]" even for its name and
            # UUID: it is still the GPU that was there (its card, its history).
            gpu = dataclasses.replace(
                gpu,
                uuid=gpu.uuid or previous.uuid,
                name=gpu.name or previous.name,
                memory_total_bytes=gpu.memory_total_bytes or previous.memory_total_bytes,
            )
        wrapped = self._last_index is not None and gpu.index <= self._last_index
        self._last_index = gpu.index
        if wrapped:
            self._first_round_done = True
        self._latest[gpu.index] = gpu
        self._gpu_at[gpu.index] = now
        self._line_at = now
        self._line_wall = wall
        top = self._top_index
        if top is None or gpu.index > top:
            self._top_index = top = gpu.index
        return self._first_round_done and (wrapped or gpu.index == top) and self._processes_due(now)

    def _processes_due(self, now: float) -> bool:
        """Under the lock: time to ask for the process list again?"""
        if self._processes_at is None:
            return True
        age = now - self._processes_at
        if age >= self._process_max_interval:
            return True
        if age < self._process_interval:
            return False  # asked for less than process_interval ago: not due, whatever changed
        # Has any GPU's used memory changed since the list was asked for (the dict of
        # ``_memory_now`` compared, without building one every round)?
        asked = self._memory_at_query
        if len(asked) != len(self._latest):
            return True
        return any(asked.get(i, _ABSENT) != g.memory_used_bytes for i, g in self._latest.items())

    def _memory_now(self) -> dict[int, int | None]:
        with self._lock:
            return {i: g.memory_used_bytes for i, g in self._latest.items()}

    def _query_processes(self, memory: dict[int, int | None] | None = None) -> None:
        """Ask for the process list; ``memory``: what the GPUs used when it was due (default:
        now)."""
        memory = self._memory_now() if memory is None else memory
        with self._lock:
            self._memory_at_query = memory
        try:
            if self._with_origins:
                output = self._runner.run(
                    origins_argv(self._executable, query_apps_args()),
                    timeout=self._command_timeout,
                )
            else:
                output = self._runner.run(
                    [self._executable, *query_apps_args()], timeout=self._command_timeout
                )
        except (CommandError, HostUnreachable) as err:
            # HostUnreachable: the SSH host went down under the query; the stream ends with it
            # and is restarted (with its back-off) once the host is back.
            self._no_answer(f"cannot list GPU processes: {err}")
            return
        self._store_processes(output)

    def _store_processes(self, output: str) -> None:
        """The process list (with origins where asked for them) as the query printed it."""
        origins: Origins = ()
        try:
            if self._with_origins:
                output, origins = parse_origins_output(output)
            procs = parse_apps_csv(output, {})
        except (CommandError, SmiParseError) as err:
            self._no_answer(f"cannot list GPU processes: {err}")
            return
        with self._lock:
            self._processes = procs
            self._origins = origins
            self._processes_at = self._clock()
            self._apps_error = None

    def sample(self) -> GpuSnapshot:
        self.start()
        if self._polled is not None:
            self._poll()
        if self._queries is not None:
            self._poll_session()
        now = self._clock()
        with self._lock:
            gpus = tuple(self._latest[i] for i in sorted(self._latest))
            # Copied only when some GPU's row is late (usually none is).
            late = now - min(self._gpu_at.values(), default=now) > self._stale_after
            gpu_at = dict(self._gpu_at) if late else {}
            processes = self._processes
            origins = self._origins
            line_at, line_wall = self._line_at, self._line_wall
            error = self._error
            recent_error = self._error_at is not None and now - self._error_at <= self._stale_after
            apps_error = self._apps_error
            running = self._running()
            started_at = self._started_at
        processes = self._with_gpu_indices(processes, gpus)
        timestamp = line_wall if line_wall is not None else self._wall_clock()
        if not gpus:
            state = (
                GpuSourceState.STARTING if running and error is None else GpuSourceState.UNAVAILABLE
            )
            if (
                state is GpuSourceState.STARTING
                and started_at is not None
                and now - started_at > self._stale_after
            ):
                state = GpuSourceState.STALE
                error = (
                    f"no reading from nvidia-smi for {now - started_at:.0f} s since it started "
                    "— it is not answering (a hung NVIDIA driver?)"
                )
            return GpuSnapshot(
                host=self._host, source=self.name, state=state, timestamp=timestamp, error=error
            )
        if late and line_at is not None and now - line_at <= self._stale_after:
            # The stream is alive but one GPU stopped appearing in it: nvidia-smi prints an
            # error line instead of that GPU's row when it falls off the bus.
            gpus = tuple(
                GpuSample(
                    index=g.index,
                    uuid=g.uuid,
                    name=g.name,
                    memory_total_bytes=g.memory_total_bytes,
                    error=f"GPU {g.index} stopped answering",
                )
                if now - gpu_at.get(g.index, now) > self._stale_after and not g.error
                else g
                for g in gpus
            )
        lost = [g.error for g in gpus if g.error]
        if line_at is not None and now - line_at > self._stale_after:
            state = GpuSourceState.STALE
            error = f"no reading from nvidia-smi for {now - line_at:.0f} s" + (
                f" ({error})" if error else " — it stopped answering (a hung NVIDIA driver?)"
            )
        elif lost or recent_error or apps_error:
            state = GpuSourceState.DEGRADED if lost else GpuSourceState.OK
            messages = [e for e in lost if e]
            if recent_error and error:
                messages.append(error)
            if apps_error:
                messages.append(apps_error)
            error = "; ".join(messages)
        else:
            state, error = GpuSourceState.OK, None
        return GpuSnapshot(
            host=self._host,
            source=self.name,
            state=state,
            timestamp=timestamp,
            gpus=gpus,
            processes=processes,
            error=error or None,
            origins=origins,
            origins_read=self._with_origins,
        )

    def _with_gpu_indices(
        self, processes: tuple[GpuProcess, ...], gpus: tuple[GpuSample, ...]
    ) -> tuple[GpuProcess, ...]:
        """The process list (asked for by GPU UUID) with each GPU's index where the GPU is
        known; the same tuple as the last sample's while neither the list nor the GPUs'
        indices changed (the list changes every few seconds at most, a sample every second)."""
        by_uuid = {g.uuid: g.index for g in gpus}
        last = self._indexed
        if last is not None and last[0] is processes and last[1] == by_uuid:
            return last[2]
        indexed = tuple(
            dataclasses.replace(p, gpu_index=by_uuid[p.gpu_uuid])
            if p.gpu_index < 0 and p.gpu_uuid in by_uuid
            else p
            for p in processes
        )
        self._indexed = (processes, by_uuid, indexed)
        return indexed

    def close(self) -> None:
        """Stop the nvidia-smi process; the reader thread ends at its EOF."""
        with self._lock:
            self._closed = True
            stream, self._stream = self._stream, None
            self._polled = None
        if stream is not None:
            stream.close()
        self._drop_session(None)
        for thread in (self._thread, self._query_thread):
            if thread is not None:
                thread.join(timeout=2)

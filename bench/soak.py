"""A soak: the real console for a long time under container churn, its RSS, threads and fds.

    eval "$(scripts/dev-env)" && .venv/bin/python -m bench.soak [--minutes 60] [--containers 100]
        [--warmup-minutes 5] [--sample-seconds 10] [--churn-seconds 2] [--gpus standin8|replay]
        [--csv FILE]

Starts N busybox sleepers on the engine in DOCKER_HOST (labels ``gpuconsole-bench=1`` and this
run's own ``gpuconsole-bench-run=ID``, by which they are removed at the end), then the real
console (``python -m gpuconsole``) in a real pty of 180x50 whose output this bench drains all
the time (and keeps the last few minutes of), with a throw-away HOME and a config of its own:
``ui.refresh_seconds = 1`` and ``gpu.interval_seconds = 1`` (1 Hz). GPUs: ``standin8`` (the
default) puts tests/fixtures/bin/nvidia-smi first on PATH with GPUCONSOLE_SMI_STUB_GPUS=8, so
the console streams 8 stand-in GPUs replaying the recorded H100 (NVML fails where there is no
driver); ``replay`` passes ``--gpu-replay`` the recording itself (1 GPU, no child process).

While the console runs, a churn thread does one operation every --churn-seconds (jittered by
±50 %) on this run's containers: stop a running one, start a stopped one, remove one and create
another, or create one (removing one instead while the population is above N; it is kept within
±10 % of N). Every --sample-seconds the main thread reads the console process's RSS
(/proc/PID/status VmRSS), threads (/proc/PID/task), open fds (/proc/PID/fd) and CPU time, and
apart from them its child processes' (the stand-in nvidia-smi): their number, summed RSS and
CPU (live children, plus the reaped ones through the console's cutime/cstime). Threads and fds
are read 8 times 0.25 s apart for each sample: the fewest is the settled count, what the console
holds between two refreshes (a refresh in flight holds a few more for a moment: pooled
connections to the engine, its inspect workers, the pipes of an nvidia-smi query, a cgroup
file), the most is the peak; both are printed, the settled ones are judged (a leaked thread or
fd stays, so it is in the settled count as much as in the peak).

--minutes is the whole run, warm-up included; the first --warmup-minutes are not judged. Over
the measured window the bench prints a table: RSS at its start and end, its max, a linear
least-squares fit's slope (MiB/hour: a GC sawtooth fools it less than first/last), the growth
both ways (and the slope over the window's second half alone: a leak keeps its slope, a
bounded cache filling up flattens), threads and fds min/max, the churn operations done (and
failed), CPU %, and whether the console is still alive and still showing rows at the end (this
run's container names written to its terminal in the last 30 s: a frozen screen writes none).

Targets (exit status 1 when one is missed, 0 otherwise):
  - RSS growth ≤ 10 % over the measured window, judged on the fit (fitted end over fitted
    start); the raw last/first growth is printed beside it;
  - threads flat: over the window's settled counts, p95 - min ≤ 2, and no upward trend: the
    median of the last quarter of the samples at most 1 above the median of the first quarter
    (one more pooled connection or worker kept for good is no leak; a leak soon breaks the
    spread). p95, not max: on a loaded machine a refresh's short-lived worker pool (the engine
    client starts up to 8 inspect or 16 stats threads per refresh) now and then outlives a
    whole 2-second burst, and a sample in hundreds lands on it (an hour on 2 shared cores: 328
    of the window's 330 samples at 8 threads, one at 10, one at 11); a leaked thread never goes
    away, so it lifts the p95 all the same. The max is printed beside it;
  - fds flat: the same rule with settled p95 - min ≤ 4 (the engine client keeps up to 10 idle
    connections, and how many it holds between refreshes follows the last burst of calls);
  - the console alive, and showing rows, at the end.
When threads or fds are not flat, the thread names (/proc/PID/task/*/comm) or the fd targets
(/proc/PID/fd/*) at the start and at the end of the window are printed side by side.

The containers, the console (its process group, the stand-in included) and the temp dir are
removed at the end, also on Ctrl-C or SIGTERM. Other benches remove every gpuconsole-bench
container (bench/containers.py, bench/remote.py): if one runs meanwhile, this bench notices its
containers gone, creates others to keep N, and counts them as vanished in the table.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import random
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.tmuxpane import cpu_seconds, percentile, print_targets

COLS, ROWS = 180, 50
LABEL = "gpuconsole-bench"
RUN_LABEL = "gpuconsole-bench-run"
REPO = Path(__file__).resolve().parent.parent
REPLAY = REPO / "tests/fixtures/gpu/h100/nvml-recording-h100.jsonl"
STANDIN_BIN = REPO / "tests/fixtures/bin"
TICK = os.sysconf("SC_CLK_TCK")

#: The targets (see the docstring).
RSS_GROWTH_MAX = 10.0
THREADS_SPREAD_MAX = 2
FDS_SPREAD_MAX = 4
#: Threads and fds are read BURST times, BURST_GAP_S apart, for each sample: the fewest is the
#: settled count (what the console holds between two refreshes), the most its peak.
BURST = 8
BURST_GAP_S = 0.25
#: The console counts as showing rows when this run's names reached its terminal this recently.
ROWS_RECENT_S = 30.0


def say(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Options:
    minutes: float = 60.0
    containers: int = 100
    warmup_minutes: float = 5.0
    sample_seconds: float = 10.0
    churn_seconds: float = 2.0
    gpus: str = "standin8"
    image: str = os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
    url: str = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    #: More labels on every container (the suite adds its own, which its clean-up removes).
    extra_labels: dict[str, str] = field(default_factory=dict)
    csv: str | None = None
    seed: int | None = None


@dataclass
class Sample:
    t: float  # seconds since the console started
    rss_kib: int
    threads: int  # settled: the fewest of BURST reads over about a second
    fds: int  # settled, the same way
    threads_peak: int  # the most of those reads
    fds_peak: int
    cpu_s: float  # the console's own utime + stime
    child_cpu_s: float  # live children's utime + stime, plus the reaped ones' (cutime + cstime)
    children: int
    child_rss_kib: int
    population: int


@dataclass
class Result:
    opts: Options
    run_id: str
    samples: list[Sample]
    warmup_s: float
    ops: Counter[str]
    op_errors: int
    vanished: int
    alive: bool
    exit_status: int | None
    rows_shown: bool
    last_rows_age_s: float | None
    output_bytes: int
    child_pids_seen: int
    #: The end of what the console wrote, as text, when it exited (its traceback, if any).
    last_words: str = ""
    start_detail: dict[str, Counter[str]] = field(default_factory=dict)
    end_detail: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def window(self) -> list[Sample]:
        return [s for s in self.samples if s.t >= self.warmup_s]


# -- /proc -------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def count_dir(path: str) -> int:
    try:
        return len(os.listdir(path))
    except OSError:
        return 0


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (through /proc/PID/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in os.listdir(f"/proc/{p}/task") if os.path.isdir(f"/proc/{p}/task") else []:
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{p}/task/{task}/children").read_text().split():
                    out.append(int(child))
                    todo.append(int(child))
    return out


def reaped_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / TICK


def thread_names(pid: int) -> Counter[str]:
    names: Counter[str] = Counter()
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            names[Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()] += 1
    return names


def fd_targets(pid: int) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            kinds[target.split("[", 1)[0] + "[]" if "[" in target else target] += 1
    return kinds


def sample(pid: int, t: float, population: int, seen: set[int]) -> Sample:
    threads, fds = [], []
    for i in range(BURST):
        if i:
            time.sleep(BURST_GAP_S)
        threads.append(count_dir(f"/proc/{pid}/task"))
        fds.append(count_dir(f"/proc/{pid}/fd"))
    kids = children_of(pid)
    seen.update(kids)
    child_cpu = reaped_cpu_s(pid)
    child_rss = 0
    for kid in kids:
        with contextlib.suppress(OSError, ValueError):
            child_cpu += cpu_seconds(kid)
            child_rss += rss_kib(kid)
    return Sample(
        t=t,
        rss_kib=rss_kib(pid),
        threads=min(threads),
        fds=min(fds),
        threads_peak=max(threads),
        fds_peak=max(fds),
        cpu_s=cpu_seconds(pid),
        child_cpu_s=child_cpu,
        children=len(kids),
        child_rss_kib=child_rss,
        population=population,
    )


# -- the console in a pty ----------------------------------------------------------------------


class Console:
    """``python -m gpuconsole`` on a pty of COLS x ROWS, its output drained by a thread."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))

        def controlling_tty() -> None:  # after setsid (start_new_session): the pty is its tty
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=controlling_tty,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.total = 0
        #: (monotonic time, chunk) of the recent output: a few minutes' worth at most.
        self.recent: deque[tuple[float, bytes]] = deque()
        self.recent_bytes = 0
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._drain, name="soak-drain", daemon=True)
        self.thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        while not self.closed.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if not ready:
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            now = time.monotonic()
            with self.lock:
                self.total += len(data)
                self.recent.append((now, data))
                self.recent_bytes += len(data)
                while self.recent and (
                    self.recent_bytes > 4 << 20 or now - self.recent[0][0] > 300
                ):
                    self.recent_bytes -= len(self.recent.popleft()[1])
        self.closed.set()

    def output_since(self, seconds: float) -> bytes:
        cutoff = time.monotonic() - seconds
        with self.lock:
            return b"".join(chunk for at, chunk in self.recent if at >= cutoff)

    def last_seen(self, needle: bytes) -> float | None:
        """Seconds since ``needle`` last reached the terminal (within the kept output)."""
        with self.lock:
            chunks = list(self.recent)
        now = time.monotonic()
        for i in range(len(chunks) - 1, -1, -1):
            at, chunk = chunks[i]
            # Across a chunk boundary too: the tail of the one before, then this one.
            joined = (chunks[i - 1][1][-len(needle) :] if i else b"") + chunk
            if needle in joined:
                return now - at
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """The console and everything in its process group, gone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children left in its group
        self.closed.set()
        self.thread.join(2)
        with contextlib.suppress(OSError):
            os.close(self.master)
        return self.proc.returncode


# -- containers and their churn ----------------------------------------------------------------


class Churn:
    """This run's containers: created, then stopped, started, removed and created again."""

    def __init__(self, opts: Options, run_id: str, rng: random.Random) -> None:
        import docker

        self.client = docker.DockerClient(base_url=opts.url, timeout=120)
        self.opts = opts
        self.run_id = run_id
        self.rng = rng
        self.labels = {LABEL: "1", RUN_LABEL: run_id, **opts.extra_labels}
        self.running: set[str] = set()  # names
        self.stopped: set[str] = set()
        self.ops: Counter[str] = Counter()
        self.errors = 0
        self.vanished = 0
        self.last_error = ""
        self.created_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def prefix(self) -> str:
        return f"soak-{self.run_id}-"

    @property
    def population(self) -> int:
        with self.lock:
            return len(self.running) + len(self.stopped)

    def _new_name(self) -> str:
        return f"{self.prefix}{self.rng.randrange(16**6):06x}"

    def create(self, name: str | None = None) -> str:
        name = name or self._new_name()
        self.client.containers.run(
            self.opts.image,
            ["sleep", "86400"],
            name=name,
            detach=True,
            labels=self.labels,
            network_mode="none",
        )
        with self.lock:
            self.running.add(name)
            self.created_at[name] = time.monotonic()
        return name

    def populate(self) -> None:
        names = {self._new_name() for _ in range(self.opts.containers)}
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(self.create, names))

    def remove_all(self) -> int:
        gone = 0
        mine: dict[str, Any] = {"label": f"{RUN_LABEL}={self.run_id}"}
        for c in self.client.containers.list(all=True, filters=mine):
            with contextlib.suppress(Exception):
                c.remove(force=True)
                gone += 1
        return gone

    def resync(self) -> None:
        """What the engine has of this run (another bench may have removed them)."""
        found = self.client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"}
        )
        running = {str(c.name) for c in found if c.status == "running"}
        stopped = {str(c.name) for c in found if c.status != "running"}
        with self.lock:
            before = self.running | self.stopped
            self.vanished += len(before - running - stopped)
            self.running, self.stopped = running, stopped

    def one(self) -> None:
        """One operation, chosen to keep the population within ±10 % of N."""
        n = self.opts.containers
        with self.lock:
            running, stopped = sorted(self.running), sorted(self.stopped)
        pop = len(running) + len(stopped)
        choices: list[str]
        if pop < 0.9 * n:
            choices = ["create"]
        elif pop > 1.1 * n:
            choices = ["remove"]
        else:
            choices = ["replace", "create" if pop <= n else "remove"]
            if len(running) > pop // 2:
                choices.append("stop")
            if stopped:
                choices.append("start")
        op = self.rng.choice(choices)
        if op == "stop":
            name = self.rng.choice(running)
            self.client.containers.get(name).stop(timeout=0)
            with self.lock:
                self.running.discard(name)
                self.stopped.add(name)
        elif op == "start":
            name = self.rng.choice(stopped)
            self.client.containers.get(name).start()
            with self.lock:
                self.stopped.discard(name)
                self.running.add(name)
        elif op in ("remove", "replace"):
            name = self.rng.choice(running + stopped)
            self.client.containers.get(name).remove(force=True)
            with self.lock:
                self.running.discard(name)
                self.stopped.discard(name)
                self.created_at.pop(name, None)
            if op == "replace":
                self.create()
        else:
            self.create()
        self.ops[op] += 1

    def _run(self) -> None:
        last_sync = time.monotonic()
        while not self.stop_event.is_set():
            try:
                self.one()
            except Exception as exc:  # an op on a container another bench removed, a slow engine
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(Exception):
                    self.resync()
                    last_sync = time.monotonic()
            if time.monotonic() - last_sync > 30:
                with contextlib.suppress(Exception):
                    self.resync()
                last_sync = time.monotonic()
            self.stop_event.wait(self.opts.churn_seconds * self.rng.uniform(0.5, 1.5))

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="soak-churn", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(150)


# -- the run -----------------------------------------------------------------------------------


def console_setup(opts: Options, tmp: Path) -> tuple[list[str], dict[str, str]]:
    home = tmp / "home"
    home.mkdir()
    config = tmp / "config.toml"
    config.write_text("[ui]\nrefresh_seconds = 1.0\n\n[gpu]\ninterval_seconds = 1.0\n")
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {
        "HOME": str(home),
        "PATH": path,
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "DOCKER_HOST": opts.url,
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    argv = [sys.executable, "-m", "gpuconsole", "--config", str(config), "--docker-host", opts.url]
    if opts.gpus == "standin8":
        env["PATH"] = f"{STANDIN_BIN}:{path}"
        env["GPUCONSOLE_SMI_STUB_GPUS"] = "8"
    elif opts.gpus == "replay":
        argv += ["--gpu-replay", str(REPLAY)]
    else:
        raise ValueError(f"--gpus {opts.gpus}: standin8 or replay")
    return argv, env


def run(opts: Options) -> Result:
    """The whole soak; everything it started is gone when it returns (or raises)."""
    rng = random.Random(opts.seed)
    run_id = uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix="gpcbench-soak-"))
    churn = Churn(opts, run_id, rng)
    console: Console | None = None
    samples: list[Sample] = []
    seen: set[int] = set()
    start_detail: dict[str, Counter[str]] = {}
    end_detail: dict[str, Counter[str]] = {}
    warmup_s = opts.warmup_minutes * 60
    try:
        say(f"run {run_id}: {opts.containers} sleepers ({opts.image}) on {opts.url}")
        churn.populate()
        argv, env = console_setup(opts, tmp)
        say(f"the console, {COLS}x{ROWS}, 1 Hz, GPUs: {opts.gpus}")
        console = Console(argv, env)
        t0 = time.monotonic()
        needle = churn.prefix.encode()
        while console.last_seen(needle) is None:
            if not console.alive():
                tail = screen_text(console.output_since(600)[-6000:])
                raise RuntimeError(f"the console exited ({console.proc.returncode}): {tail}")
            if time.monotonic() - t0 > 120:
                raise RuntimeError("the console showed none of this run's containers in 120 s")
            time.sleep(0.2)
        shown = time.monotonic() - t0
        say(f"rows shown after {shown:.1f} s; churn every ~{opts.churn_seconds:g} s")
        churn.start()
        end = t0 + opts.minutes * 60
        next_at = t0
        last_report = t0
        while True:
            now = time.monotonic()
            if now >= end or not console.alive():
                break
            if now >= next_at:
                t = now - t0
                try:
                    s = sample(console.pid, t, churn.population, seen)
                except (OSError, ValueError):
                    break  # the console went away between two reads
                samples.append(s)
                if opts.csv:  # as it goes: a long run's figures survive a crash of this bench
                    write_csv(opts.csv, samples[-1:], header=len(samples) == 1)
                if t >= warmup_s and not start_detail:
                    start_detail = detail(console.pid)
                next_at += opts.sample_seconds
                if now - last_report >= 300 or len(samples) == 1:
                    last_report = now
                    say(
                        f"t={t / 60:.1f} min rss={s.rss_kib / 1024:.1f} MiB threads={s.threads} "
                        f"fds={s.fds} children={s.children} pop={s.population} "
                        f"ops={sum(churn.ops.values())} errors={churn.errors}"
                    )
            time.sleep(max(0.0, min(next_at, end) - time.monotonic()))
        if console.alive():
            end_detail = detail(console.pid)
        churn.stop()
        age = console.last_seen(needle)
        alive = console.alive()
        last_words = "" if alive else screen_text(console.output_since(600)[-6000:])
        return Result(
            opts=opts,
            run_id=run_id,
            samples=samples,
            warmup_s=warmup_s,
            ops=churn.ops,
            op_errors=churn.errors,
            vanished=churn.vanished,
            alive=alive,
            exit_status=console.proc.returncode,
            rows_shown=alive and age is not None and age <= ROWS_RECENT_S,
            last_rows_age_s=age,
            output_bytes=console.total,
            child_pids_seen=len(seen),
            last_words=last_words,
            start_detail=start_detail,
            end_detail=end_detail,
        )
    finally:
        churn.stop()
        if console is not None:
            console.stop()
        with contextlib.suppress(Exception):
            say(f"removed {churn.remove_all()} containers of run {run_id}")
        with contextlib.suppress(Exception):
            churn.client.close()
        shutil.rmtree(tmp, ignore_errors=True)


def screen_text(raw: bytes) -> str:
    """Terminal output as plain text: escape sequences out, lines kept."""
    text = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Z0-9]|\x1b.",
                  "", raw.decode(errors="replace"))  # fmt: skip
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(line for line in lines if line.strip())


def detail(pid: int) -> dict[str, Counter[str]]:
    try:
        return {"threads": thread_names(pid), "fds": fd_targets(pid)}
    except OSError:
        return {}


def write_csv(path: str, samples: list[Sample], header: bool) -> None:
    """``samples`` appended to the CSV file (a new file with its header when ``header``)."""
    cols = list(Sample.__dataclass_fields__)
    lines = [",".join(cols)] if header else []
    lines += [",".join(str(getattr(s, c)) for c in cols) for s in samples]
    with open(path, "w" if header else "a") as out:
        out.write("\n".join(lines) + "\n")


# -- judging -----------------------------------------------------------------------------------


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx


def flat(values: Sequence[int], spread: int) -> tuple[bool, str]:
    """p95 - min ≤ spread, and the last quarter's median at most 1 above the first quarter's."""
    if not values:
        return False, "no samples"
    q = max(1, len(values) // 4)
    first, last = statistics.median(values[:q]), statistics.median(values[-q:])
    p95 = int(percentile(values, 95))
    ok = p95 - min(values) <= spread and last - first <= 1
    return ok, f"{min(values)}-{max(values)}, p95 {p95} (median {first:g} → {last:g})"


@dataclass
class Verdict:
    rss_start_mib: float
    rss_end_mib: float
    rss_max_mib: float
    slope_mib_h: float
    half_slope_mib_h: float
    growth_fit_pct: float
    growth_raw_pct: float
    threads_ok: bool
    threads_text: str
    fds_ok: bool
    fds_text: str
    cpu_pct: float
    child_cpu_pct: float
    rows: list[tuple[str, str, str, bool | None]]

    @property
    def rss_ok(self) -> bool:
        return self.growth_fit_pct <= RSS_GROWTH_MAX

    @property
    def ok(self) -> bool:
        return all(ok is not False for *_, ok in self.rows)


def judge(result: Result) -> Verdict:
    win = result.window
    if len(win) < 3:
        raise RuntimeError(f"only {len(win)} samples after the warm-up: run longer")
    xs = [s.t / 3600 for s in win]
    ys = [s.rss_kib / 1024 for s in win]
    slope, icpt = fit(xs, ys)
    fit_start, fit_end = icpt + slope * xs[0], icpt + slope * xs[-1]
    growth_fit = (fit_end - fit_start) / fit_start * 100
    growth_raw = (ys[-1] - ys[0]) / ys[0] * 100
    # A leak keeps its slope; a cache or a ring buffer filling up (the GPU history holds 10
    # minutes) flattens out: the second half's slope tells them apart.
    half = len(xs) // 2
    half_slope = fit(xs[half:], ys[half:])[0] if len(xs) - half >= 2 else slope
    threads_ok, threads_text = flat([s.threads for s in win], THREADS_SPREAD_MAX)
    fds_ok, fds_text = flat([s.fds for s in win], FDS_SPREAD_MAX)
    span = win[-1].t - win[0].t
    cpu = (win[-1].cpu_s - win[0].cpu_s) / span * 100
    child_cpu = (win[-1].child_cpu_s - win[0].child_cpu_s) / span * 100
    kids = [s.children for s in win]
    tpk = [s.threads_peak for s in win]
    fpk = [s.fds_peak for s in win]
    child_rss = [s.child_rss_kib / 1024 for s in win]
    pops = [s.population for s in win]
    ops = result.ops
    o = result.opts
    age = "-" if result.last_rows_age_s is None else f"{result.last_rows_age_s:.1f} s ago"
    rows: list[tuple[str, str, str, bool | None]] = [
        ("measured window", f"{win[0].t / 60:.1f}-{win[-1].t / 60:.1f} min, {len(win)} samples",
         "after the warm-up", None),
        ("RSS at the window's start / end", f"{ys[0]:.1f} / {ys[-1]:.1f} MiB", "", None),
        ("RSS max (min)", f"{max(ys):.1f} MiB ({min(ys):.1f})", "", None),
        ("RSS slope (least squares; its second half alone)",
         f"{slope:+.2f} MiB/hour ({half_slope:+.2f})", "", None),
        ("RSS growth, fitted (raw last/first)", f"{growth_fit:+.2f} % ({growth_raw:+.2f} %)",
         f"≤ {RSS_GROWTH_MAX:g} %", growth_fit <= RSS_GROWTH_MAX),
        ("threads (settled)", threads_text, f"p95 - min ≤ {THREADS_SPREAD_MAX}, no rise",
         threads_ok),
        ("open fds (settled)", fds_text, f"p95 - min ≤ {FDS_SPREAD_MAX}, no rise", fds_ok),
        ("threads, fds: peaks min-max",
         f"{min(tpk)}-{max(tpk)}, {min(fpk)}-{max(fpk)}", "", None),
        ("console CPU (its threads)", f"{cpu:.1f} % of a core", "", None),
        ("children: count, RSS, CPU",
         f"{min(kids)}-{max(kids)}, {min(child_rss):.1f}-{max(child_rss):.1f} MiB, "
         f"{child_cpu:.1f} % ({result.child_pids_seen} pids seen)", "", None),
        ("churn operations (whole run)",
         f"{sum(ops.values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
         + f"; {result.op_errors} failed, {result.vanished} vanished", "", None),
        ("population in the window", f"{min(pops)}-{max(pops)} (N={o.containers})", "", None),
        ("bytes to the terminal (whole run)", f"{result.output_bytes / 1e6:.1f} MB", "", None),
        ("console alive at the end", "yes" if result.alive else f"no (exit {result.exit_status})",
         "alive", result.alive),
        ("rows shown at the end", f"this run's names last written {age}",
         f"within {ROWS_RECENT_S:g} s", result.rows_shown),
    ]  # fmt: skip
    return Verdict(
        rss_start_mib=ys[0],
        rss_end_mib=ys[-1],
        rss_max_mib=max(ys),
        slope_mib_h=slope,
        half_slope_mib_h=half_slope,
        growth_fit_pct=growth_fit,
        growth_raw_pct=growth_raw,
        threads_ok=threads_ok,
        threads_text=threads_text,
        fds_ok=fds_ok,
        fds_text=fds_text,
        cpu_pct=cpu,
        child_cpu_pct=child_cpu,
        rows=rows,
    )


def report(result: Result, verdict: Verdict) -> None:
    o = result.opts
    print(
        f"soak {result.run_id}: {o.minutes:g} min ({o.warmup_minutes:g} warm-up), "
        f"{o.containers} containers churned every ~{o.churn_seconds:g} s, GPUs {o.gpus}, "
        f"console at 1 Hz in a {COLS}x{ROWS} pty, samples every {o.sample_seconds:g} s; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    print()
    print_targets(("what", "figure", "target", "met"), verdict.rows)
    for what, ok in (("threads", verdict.threads_ok), ("fds", verdict.fds_ok)):
        if ok or what not in result.start_detail or what not in result.end_detail:
            continue
        a, b = result.start_detail[what], result.end_detail[what]
        changed = [key for key in sorted(set(a) | set(b)) if a[key] != b[key]]
        print(f"\n{what} at the window's start → end (those that changed):")
        for key in changed:
            print(f"  {key}: {a[key]} → {b[key]}")
        if not changed:
            print("  none: the same at both ends (what differed came and went in between)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="the whole run (default 60)")
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--churn-seconds", type=float, default=2.0, help="between two operations")
    parser.add_argument("--gpus", choices=("standin8", "replay"), default="standin8")
    parser.add_argument("--image", default=Options.image)
    parser.add_argument("--csv", help="write every sample to this CSV file, as it is taken")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    if args.warmup_minutes >= args.minutes:
        parser.error("--warmup-minutes must be shorter than --minutes")
    opts = Options(
        minutes=args.minutes,
        containers=args.containers,
        warmup_minutes=args.warmup_minutes,
        sample_seconds=args.sample_seconds,
        churn_seconds=args.churn_seconds,
        gpus=args.gpus,
        image=args.image,
        csv=args.csv,
        seed=args.seed,
    )

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        result = run(opts)
    except KeyboardInterrupt:
        say("interrupted: everything this run started is removed")
        return 130
    if not result.alive:
        say(f"the console exited ({result.exit_status}); its last output:\n{result.last_words}")
    if len(result.window) < 3:
        say(f"only {len(result.window)} samples after the warm-up: nothing to judge")
        return 1
    verdict = judge(result)
    report(result, verdict)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())

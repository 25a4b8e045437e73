"""Logs: ``gpuconsole logs`` against ``docker logs``, side by side in one run, here and over SSH.

    eval "$(scripts/dev-env)" && .venv/bin/python -m bench.logs [--lines N] [--repeat R]
        [--no-remote]

Needs the development services of scripts/dev-env and the docker CLI. The SSH side is the
bench's own sshd (bench.remote's rig: a throw-away HOME, ``docker -H ssh://gpcbench`` through an
ssh wrapper, gpuconsole ``--host remote`` with the same key), whose engine is the local one, so
both tools read the same log over SSH that they read here.

(a) A container that wrote N lines (1,000,000; 35.9 MB) and exited. Wall time of
    ``gpuconsole logs NAME > /dev/null`` and ``docker logs NAME > /dev/null``, alternating,
    median of R runs each (1: a run takes 10-20 s, the whole bench about 2.5 min), with each
    command's CPU time (its own and its reaped children's: for ``docker -H ssh://`` that
    includes its ssh client); then both at once into pipes read by this process: the bytes
    must be equal to each other and to what the container printed.
(b) A chatty container: 10,000 lines/s (1,000 every 0.1 s by its clock) for 10 s.
    ``gpuconsole logs -f`` and ``docker logs -f`` are started together as it starts and read to
    their end: lines received, bytes equal to what it printed, and the lag from the container's
    exit (the engine's FinishedAt) to the command's exit.

Prints one table with ratios (gpuconsole / docker; below 1 is faster) and exits 1 if a byte
comparison failed or a follow missed lines. Every container carries the label gpuconsole-bench=1
and this run's id, and is removed at the end; so are the sshd and the temporary directories.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.remote import ALIAS, LABEL, RUN_LABEL, Containers, Rig, load_average, say

CHATTY_LINES = 100_000
#: 1,000 lines, then sleep until the next tenth of a second of its own clock (/proc/uptime, in
#: centiseconds): 10,000 lines/s for 10 s, whatever printing a batch costs.
CHATTY_SH = r"""
now() { cut -d' ' -f1 /proc/uptime | tr -d .; }
start=$(now); i=0
while [ $i -lt 100 ]; do
  seq $((i*1000+1)) $((i*1000+1000)) | sed 's/^/chatty /'
  i=$((i+1)); wait=$((start + i*10 - $(now)))
  if [ $wait -gt 0 ] && [ $wait -lt 100 ]; then sleep 0.$(printf %02d $wait); fi
done
"""
BIG_LINE = b"line of some log text number %d\n"
TIMEOUT_S = 300


@dataclass
class Run:
    """One command's run: wall and CPU seconds, what it wrote, how it ended."""

    wall: float = 0.0
    cpu: float = 0.0
    rc: int | None = None
    size: int = 0
    lines: int = 0
    digest: str = ""
    ended_at: float = 0.0  # unix time of its exit
    stderr: bytes = b""


@dataclass
class Table:
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        self.rows.append(cells)
        print("  " + " | ".join(cells), file=sys.stderr, flush=True)

    def check(self, ok: bool, what: str) -> str:
        if not ok:
            self.failed.append(what)
        return "yes" if ok else "NO"

    def print(self, header: Sequence[str]) -> None:
        print()
        for line in header:
            print(line)
        print()
        head = ("part", "what", "gpuconsole", "docker", "ratio")
        widths = [max(len(r[i]) for r in (head, *self.rows)) for i in range(len(head))]
        for row in (head, tuple("-" * w for w in widths), *self.rows):
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        for note in self.notes:
            print(f"- {note}")


def wait_rusage(proc: subprocess.Popen[bytes], timeout: float = TIMEOUT_S) -> tuple[int, float]:
    """(exit status, CPU seconds) of a child, from wait4: its own and its reaped children's."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.002)


def run_to_devnull(argv: Sequence[str], env: dict[str, str]) -> Run:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    rc, cpu = wait_rusage(proc)
    run = Run(wall=time.perf_counter() - started, cpu=cpu, rc=rc)
    assert proc.stderr is not None
    run.stderr = proc.stderr.read()
    return run


class Reader:
    """A command whose stdout this process reads (hashed, counted) to its end."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.run = Run()
        self._started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        digest = hashlib.sha256()
        fd = self.proc.stdout.fileno()
        while data := os.read(fd, 1 << 20):
            digest.update(data)
            self.run.size += len(data)
            self.run.lines += data.count(b"\n")
        self.run.rc, self.run.cpu = wait_rusage(self.proc)
        self.run.ended_at = time.time()
        self.run.wall = time.perf_counter() - self._started
        self.run.digest = digest.hexdigest()
        self.run.stderr = self.proc.stderr.read()

    def result(self) -> Run:
        self._thread.join(TIMEOUT_S + 10)
        return self.run


def expected(lines: int, line: bytes) -> tuple[int, str]:
    """Size and sha256 of what a container printing ``line % i`` for 1..lines wrote."""
    digest, size = hashlib.sha256(), 0
    for start in range(1, lines + 1, 100_000):
        block = b"".join(line % i for i in range(start, min(start + 100_000, lines + 1)))
        digest.update(block)
        size += len(block)
    return size, digest.hexdigest()


def engine_time(stamp: str) -> float:
    """Unix time of one of the engine's RFC 3339 UTC stamps (2026-11-27T19:58:54.181350592Z)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    when = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
    return when + float(f"0.{fraction or 0}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


# -- the commands, here and over SSH ------------------------------------------------------------


@dataclass
class Route:
    name: str  # "local" or "ssh"
    gc_argv: list[str]
    gc_env: dict[str, str]
    docker_argv: list[str]
    docker_env: dict[str, str]

    def gpuconsole(self, *args: str) -> list[str]:
        return [*self.gc_argv, *args]

    def docker(self, *args: str) -> list[str]:
        return [*self.docker_argv, *args]


def routes(rig: Rig, remote: bool) -> list[Route]:
    here = [sys.executable, "-m", "gpuconsole"]
    out = [Route("local", here, rig.env(), ["docker"], rig.env())]
    if remote:
        config = rig.config("logs", [("remote", rig.port)])
        out.append(
            Route(
                "ssh",
                [*rig.gpuconsole(config), "--host", "remote"],
                rig.env(),
                ["docker", "-H", f"ssh://{ALIAS}"],
                rig.env(docker_cli=True),
            )
        )
    return out


# -- (a) a large log, read whole --------------------------------------------------------------


def big_container(boxes: Containers, lines: int) -> Any:
    script = f"seq 1 {lines} | sed 's/^/{BIG_LINE.decode().split('%')[0]}/'"
    say(f"(a) a container printing {lines:,} lines")
    c = boxes.client.containers.run(
        boxes.image,
        ["sh", "-c", script],
        name=f"bench-logs-big-{boxes.run_id}",
        detach=True,
        labels={LABEL: "1", RUN_LABEL: boxes.run_id},
        network_mode="none",
    )
    c.wait(timeout=TIMEOUT_S)
    return c


def part_a(route: Route, name: str, lines: int, repeat: int, table: Table) -> None:
    size, digest = expected(lines, BIG_LINE)
    say(f"(a) {route.name}: {repeat} x each to /dev/null, alternating")
    gc_runs, docker_runs = [], []
    for _ in range(repeat):
        gc_runs.append(run_to_devnull(route.gpuconsole("logs", name), route.gc_env))
        docker_runs.append(run_to_devnull(route.docker("logs", name), route.docker_env))
    for run in (*gc_runs, *docker_runs):
        if run.rc != 0:
            table.failed.append(f"(a) {route.name}: exit {run.rc}: {run.stderr[-300:]!r}")
    gc_wall = statistics.median(r.wall for r in gc_runs)
    docker_wall = statistics.median(r.wall for r in docker_runs)
    gc_cpu = statistics.median(r.cpu for r in gc_runs)
    docker_cpu = statistics.median(r.cpu for r in docker_runs)
    what = f"{route.name}: {lines:,} lines ({size / 1e6:.1f} MB) > /dev/null"
    table.add(
        "a",
        f"{what}, wall",
        f"{gc_wall:.2f} s",
        f"{docker_wall:.2f} s",
        ratio(gc_wall, docker_wall),
    )
    table.add(
        "a",
        f"{route.name}: the same, CPU",
        f"{gc_cpu:.2f} s",
        f"{docker_cpu:.2f} s",
        ratio(gc_cpu, docker_cpu),
    )
    if repeat > 1:
        table.notes.append(
            f"(a) {route.name} wall samples: gpuconsole "
            + ", ".join(f"{r.wall:.2f}" for r in gc_runs)
            + " s; docker "
            + ", ".join(f"{r.wall:.2f}" for r in docker_runs)
            + " s"
        )
    say(f"(a) {route.name}: both into pipes, bytes compared")
    both = [
        Reader(route.gpuconsole("logs", name), route.gc_env),
        Reader(route.docker("logs", name), route.docker_env),
    ]
    gc_run, docker_run = (r.result() for r in both)
    same = gc_run.digest == docker_run.digest
    table.add(
        "a",
        f"{route.name}: bytes equal (each other; what it printed)",
        table.check(
            gc_run.digest == digest and gc_run.size == size, f"(a) {route.name} gpuconsole bytes"
        ),
        table.check(docker_run.digest == digest, f"(a) {route.name} docker bytes"),
        table.check(same, f"(a) {route.name} gpuconsole == docker"),
    )


# -- (b) a chatty container, followed -----------------------------------------------------------


def part_b(route: Route, boxes: Containers, table: Table) -> None:
    size, digest = expected(CHATTY_LINES, b"chatty %d\n")
    say(f"(b) {route.name}: a container printing 10,000 lines/s for 10 s, followed by both")
    c = boxes.client.containers.create(
        boxes.image,
        ["sh", "-c", CHATTY_SH],
        name=f"bench-logs-chatty-{route.name}-{boxes.run_id}",
        labels={LABEL: "1", RUN_LABEL: boxes.run_id},
        network_mode="none",
    )
    c.start()
    both = [
        Reader(route.gpuconsole("logs", "-f", str(c.name)), route.gc_env),
        Reader(route.docker("logs", "-f", str(c.name)), route.docker_env),
    ]
    c.wait(timeout=TIMEOUT_S)
    gc_run, docker_run = (r.result() for r in both)
    c.reload()
    exited = engine_time(c.attrs["State"]["FinishedAt"])
    elapsed = exited - engine_time(c.attrs["State"]["StartedAt"])
    table.add(
        "b",
        f"{route.name}: lines received of {CHATTY_LINES:,} ({elapsed:.1f} s of output)",
        f"{gc_run.lines:,}",
        f"{docker_run.lines:,}",
        "",
    )
    table.add(
        "b",
        f"{route.name}: bytes equal (each other; what it printed)",
        table.check(
            gc_run.digest == digest and gc_run.size == size, f"(b) {route.name} gpuconsole bytes"
        ),
        table.check(docker_run.digest == digest, f"(b) {route.name} docker bytes"),
        table.check(gc_run.digest == docker_run.digest, f"(b) {route.name} gpuconsole == docker"),
    )
    gc_lag, docker_lag = gc_run.ended_at - exited, docker_run.ended_at - exited
    table.add(
        "b",
        f"{route.name}: lag, container exit -> command exit",
        f"{gc_lag * 1000:.0f} ms",
        f"{docker_lag * 1000:.0f} ms",
        ratio(gc_lag, docker_lag),
    )
    table.add(
        "b",
        f"{route.name}: CPU over the follow",
        f"{gc_run.cpu:.2f} s",
        f"{docker_run.cpu:.2f} s",
        ratio(gc_run.cpu, docker_run.cpu),
    )
    for who, run in (("gpuconsole", gc_run), ("docker", docker_run)):
        if run.rc != 0:
            table.failed.append(f"(b) {route.name} {who}: exit {run.rc}: {run.stderr[-300:]!r}")


# -------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="(a): lines of the big log")
    parser.add_argument("--repeat", type=int, default=1, help="(a): timed runs of each command")
    parser.add_argument("--no-remote", action="store_true", help="skip the SSH side")
    parser.add_argument(
        "--image", default=os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
    )
    args = parser.parse_args()
    if shutil.which("docker") is None:
        raise SystemExit("the docker CLI is needed (apt-get install docker.io)")
    table = Table()
    tmp = Path(tempfile.mkdtemp(prefix="gpcbench-logs-"))
    rig = Rig(tmp)
    boxes = Containers(rig.engine_url, args.image)
    started, load_before = time.monotonic(), load_average()
    try:
        if not args.no_remote:
            rig.start_sshd()
            say(f"sshd on 127.0.0.1:{rig.port}; HOME {rig.home}")
        paths = routes(rig, not args.no_remote)
        big = big_container(boxes, args.lines)
        for route in paths:
            part_a(route, big.name, args.lines, args.repeat, table)
        for route in paths:
            part_b(route, boxes, table)
    finally:
        boxes.close()
        rig.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    cli = subprocess.run(
        ["docker", "version", "--format", "{{.Client.Version}} / {{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DOCKER_HOST": rig.engine_url},
    ).stdout.strip()
    command = ".venv/bin/python -m bench.logs" + (" --no-remote" if args.no_remote else "")
    if args.lines != 1_000_000 or args.repeat != 1:
        command += f" --lines {args.lines} --repeat {args.repeat}"
    table.notes.append(
        f"load average (1, 5, 15 min) at the start {load_before}, at the end {load_average()}: "
        "the machine is shared (the engine, sshd and both tools on the same cores)"
    )
    table.print(
        [
            f'`eval "$(scripts/dev-env)" && {command}` ({time.monotonic() - started:.0f} s)',
            f"docker CLI / engine {cli}; {os.cpu_count()} CPUs; ssh: the bench's own sshd on "
            "127.0.0.1 (gpuconsole: one paramiko connection; docker: ssh + docker system "
            "dial-stdio); ratio = gpuconsole / docker",
        ]
    )
    if table.failed:
        print("\nfailed: " + "; ".join(table.failed))
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())

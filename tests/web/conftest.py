"""``gpuconsole serve`` as a user runs it: a real server process on a free port, against the
test engine; its stderr (the access log) kept in a file to read at any time."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import engine_url, wait_for

REPLAY = Path(__file__).parent.parent / "fixtures" / "gpu" / "h100" / "nvml-recording-h100.jsonl"
URL = re.compile(r"^https?://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{40,})$")


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])

    @property
    def base(self) -> str:
        return f"{self.url.split(':')[0]}://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.url.rsplit("=", 1)[1]

    def log(self) -> str:
        return self.log_path.read_text()

    def session_pids(self) -> list[int]:
        """Consoles the server says it opened (its log: "session PID opened")."""
        return [int(p) for p in re.findall(r"session (\d+) opened", self.log())]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


def alive(pid: int) -> bool:
    """A process that still runs (not gone, not a zombie waiting for its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``gpuconsole [before...] serve --port 0 [after...]``; stopped (and checked to leave
    no console behind) after the test."""
    started: list[Served] = []

    def start(*after: str, before: tuple[str, ...] = ()) -> Served:
        log_path = tmp_path / f"serve-{len(started)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "gpuconsole", *before, "serve", "--port", "0", *after],
            stdout=subprocess.PIPE,
            stderr=log_path.open("w"),
            text=True,
            env={**os.environ, "DOCKER_HOST": engine_url()},
        )
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        served = Served(process, first, log_path)
        started.append(served)
        assert URL.match(first), f"first stdout line is not the URL: {first!r}; {served.log()}"
        return served

    yield start
    for served in started:
        with contextlib.suppress(Exception):
            served.stop()
        for pid in served.session_pids():
            wait_for(lambda pid=pid: not alive(pid), 10, f"console {pid} to end with its server")

"""A person's view for benches: a program in a private tmux server, keys in, the pane read back.

One tmux control-mode client per session sends keys and captures the pane without starting a
process each time, so a key's latency is measured from ``send-keys`` to the pane showing its
effect with little of the harness's own cost in it. Also: the CPU time of a process and of the
whole machine (``/proc``), and the nearest-rank percentile the benches report.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

#: The private tmux server of this bench process (``tmux -L``).
TMUX_SOCKET = f"gpcbench-{os.getpid()}"


def tmux(*args: str) -> str:
    proc = subprocess.run(
        ["tmux", "-L", TMUX_SOCKET, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def start_tmux_server() -> None:
    """One private tmux server for the whole run, kept up between sessions."""
    tmux(
        "start-server",
        ";",
        "set-option",
        "-g",
        "exit-empty",
        "off",
        ";",
        "set-option",
        "-g",
        "remain-on-exit",
        "on",
    )


def kill_tmux_server() -> None:
    """The private server and its socket file, gone (never raises)."""
    with contextlib.suppress(RuntimeError):
        tmux("kill-server")
    tmux_dir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
    (tmux_dir / TMUX_SOCKET).unlink(missing_ok=True)


class Control:
    """One tmux control-mode client: send-keys and capture-pane without a process each."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.proc = subprocess.Popen(
            ["tmux", "-L", TMUX_SOCKET, "-C", "attach-session", "-t", session],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.marker = 0
        self.command("refresh-client -f no-output")
        self.sync()

    def _block(self) -> list[str]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the tmux control client ended")
            if line.startswith(b"%begin"):
                break
        out: list[str] = []
        while True:
            line = self.proc.stdout.readline()
            if not line or line.startswith((b"%end", b"%error")):
                return out
            out.append(line.decode("utf-8", "replace"))

    def command(self, line: str) -> list[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        return self._block()

    def sync(self) -> None:
        """Read up to the answer of a marked command (skips the attach's own block)."""
        self.marker += 1
        mark = f"gpcbench-sync-{self.marker}"
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"display-message -p {mark}\n".encode())
        while mark not in "".join(self._block()):
            pass

    def screen(self) -> str:
        return "".join(self.command(f"capture-pane -p -t {self.session}"))

    def send(self, *keys: str) -> None:
        self.command(f"send-keys -t {self.session} {' '.join(keys)}")

    def wait_for(self, check: Callable[[str], bool], timeout: float) -> float | None:
        """Seconds until ``check(pane)`` holds; None if not within ``timeout``."""
        start = time.perf_counter()
        while True:
            if check(self.screen()):
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                return None

    def key_until(
        self, key: str, check: Callable[[str], bool], timeout: float, poll: float = 0.0
    ) -> float | None:
        """Seconds from sending ``key`` to ``check(pane)`` holding; None if not in time.
        ``poll``: a pause between two captures (on a busy machine the harness's own tight
        loop of captures takes CPU from what it measures)."""
        start = time.perf_counter()
        self.send(key)
        while True:
            if check(self.screen()):
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                return None
            if poll:
                time.sleep(poll)

    def key_latency(self, key: str, mark: str, shown: bool, timeout: float) -> float | None:
        """Seconds from sending ``key`` to ``mark`` being on the pane (``shown``) or gone;
        None if that did not happen within ``timeout``."""
        return self.key_until(key, lambda pane: (mark in pane) == shown, timeout)

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


__all__ = [
    "TMUX_SOCKET",
    "Control",
    "cpu_seconds",
    "kill_tmux_server",
    "machine_busy",
    "percentile",
    "start_tmux_server",
    "tmux",
]


def print_targets(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A markdown table whose last column is met (True), missed (False) or not a target
    (None): how every bench reports, so the figures paste into notes as they are."""
    print(" | ".join(columns))
    print(" | ".join("---" for _ in columns))
    for *cells, ok in rows:
        met = "" if ok is None else ("yes" if ok else "**NO**")
        print(" | ".join([*(str(c) for c in cells), met]))

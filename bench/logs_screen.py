"""The logs screen under a chatty container: key latency and CPU while 10,000 lines/s stream in.

    eval "$(scripts/dev-env)" && .venv/bin/python -m bench.logs_screen [--rate 10000]
        [--seconds 10]

The real console (``python -m gpuconsole``) runs in a private tmux server at 160x50 against the
engine in DOCKER_HOST, with a throw-away HOME (no user config). A busybox container waits for a
go signal, then writes ``--rate`` lines a second for ``--seconds`` (one awk process paced by
/proc/uptime, every tenth line to stderr, ~85-byte lines) and exits 0. The bench selects it the
way a person does (``/`` NAME, enter, ``l``), sends the go, and while the lines stream presses
``t`` (timestamps off / on) again and again, timing each press from send-keys to the pane's log
rows showing the change (through one tmux control-mode client, bench/tmuxpane.py). It reports
p50/p95 of those presses, the console's CPU over the stream, how long after the container's exit
the end marker is on the pane, the same key at rest on the full 20,000-line buffer, and the rate
the container really achieved (from the engine's timestamps of its lines). ``less`` runs in a
second pane of the same tmux server and gets a key in turn with every console key (``h`` /
``q``, its help on and off): what a trivial full-screen program shows through the same harness
under the same load.

Prints one table and exits 1 if the target (key p95 <= 50 ms while streaming) is missed. The
container carries the label gpuconsole-bench=1 (and this run's own, by which it is removed at
the end), and the tmux server and the temporary HOME go too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

#: This run's own label (RUN_LABEL): other benches clean up every LABEL container when they end.
from bench.remote import LABEL, RUN_LABEL
from bench.tmuxpane import (
    Control,
    cpu_seconds,
    kill_tmux_server,
    machine_busy,
    percentile,
    print_targets,
    start_tmux_server,
    tmux,
)

COLS, ROWS = 160, 50
SESSION = "logs"
LESS_SESSION = "less"
LESS_MARK = "SUMMARY OF LESS COMMANDS"
HELP_MARK = "Mouse: click a row"  # the console's help screen (gpuconsole/ui/screens/help.py)
KEY_TIMEOUT = 5.0
#: Pause between two captures of the pane while waiting for a key's effect (resolution).
POLL = 0.002
TARGET_P95 = 0.050
# A log row with its timestamp shown: "...123456789Z chatty 000123 ..."
STAMPED_ROW = re.compile(r"\dZ chatty \d{6}")
BARE_ROW = re.compile(r"^\S?\s+chatty \d{6}", re.M)


def say(text: str) -> None:
    print(f"-- {text}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def latency_text(samples: list[float], timeouts: int) -> str:
    if not samples:
        return "not measured"
    text = (
        f"p50 {ms(statistics.median(samples))}, p95 {ms(percentile(samples, 95))}, "
        f"max {ms(max(samples))} ({len(samples)} presses)"
    )
    if timeouts:
        text += f"; {timeouts} not within {KEY_TIMEOUT:g} s"
    return text


def stamps_shown(pane: str) -> bool:
    return bool(STAMPED_ROW.search(pane))


def stamps_hidden(pane: str) -> bool:
    return not STAMPED_ROW.search(pane) and bool(BARE_ROW.search(pane))


def generator(rate: int, seconds: float) -> str:
    """The container's command: wait for /tmp/go, then ``rate`` lines/s for ``seconds``."""
    awk = (
        'function now(  l, a) { getline l < "/proc/uptime"; close("/proc/uptime"); '
        'split(l, a, " "); return a[1] } '
        "BEGIN { t0 = now(); n = 0; "
        "while (1) { e = now() - t0; if (e >= dur) break; due = int(e * rate); "
        "while (n < due) { "
        'line = sprintf("chatty %06d the quick brown fox jumps over the lazy dog, '
        'once more, line after line", n); '
        'if (n % 10 == 9) print line > "/dev/stderr"; else print line; n++ } '
        'fflush(); fflush("/dev/stderr"); system("usleep 10000") } }'
    )
    return (
        "while [ ! -e /tmp/go ]; do usleep 20000; done; "
        f"awk -v rate={rate} -v dur={seconds} {shlex.quote(awk)}"
    )


def real_rate(api: Any, container_id: str) -> tuple[int, float]:
    """(lines, lines per second) of the chatty lines, from the engine's own timestamps."""
    body = api.logs(container_id, stdout=True, stderr=True, timestamps=True)
    stamps = [line.split(b" ", 1)[0] for line in body.splitlines() if b" chatty " in line[:45]]
    if len(stamps) < 2:
        return len(stamps), 0.0

    def parse(stamp: bytes) -> float:
        text = stamp.decode()
        whole, _, frac = text.rstrip("Z").partition(".")
        base = datetime.fromisoformat(whole + "+00:00").timestamp()
        return base + float("0." + (frac or "0"))

    span = parse(stamps[-1]) - parse(stamps[0])
    return len(stamps), len(stamps) / span if span > 0 else 0.0


class Toggle:
    """A key pressed again and again, each press flipping what the pane shows (``keys``: the
    key that shows, the key that hides); ``press`` returns the seconds one took."""

    def __init__(
        self,
        ctl: Control,
        keys: tuple[str, str],
        shown: Callable[[str], bool],
        hidden: Callable[[str], bool],
    ) -> None:
        self.ctl = ctl
        self.keys = keys
        self.shown_check = shown
        self.hidden_check = hidden
        self.shown = shown(ctl.screen())
        self.samples: list[float] = []
        self.timeouts = 0

    def press(self) -> float | None:
        key = self.keys[1] if self.shown else self.keys[0]
        check = self.hidden_check if self.shown else self.shown_check
        took = self.ctl.key_until(key, check, KEY_TIMEOUT, POLL)
        if took is None:
            self.timeouts += 1
            self.shown = self.shown_check(self.ctl.screen())  # where it stands now
            return None
        self.shown = not self.shown
        return took


def console_toggle(ctl: Control) -> Toggle:
    """``t`` on the logs screen: the log rows lose their timestamps, or get them back."""
    return Toggle(ctl, ("t", "t"), stamps_shown, stamps_hidden)


def help_toggle(ctl: Control) -> Toggle:
    """``?`` / ``escape`` on the containers screen: the help, and back."""
    return Toggle(
        ctl, ("?", "Escape"), lambda pane: HELP_MARK in pane, lambda pane: HELP_MARK not in pane
    )


def less_toggle(ctl: Control) -> Toggle:
    """``h`` / ``q`` in less: its help page, and back (the harness's own latency)."""
    return Toggle(
        ctl, ("h", "q"), lambda pane: LESS_MARK in pane, lambda pane: LESS_MARK not in pane
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="lines a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long it writes")
    parser.add_argument("--rest-presses", type=int, default=20)
    parser.add_argument(
        "--image", default=os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
    )
    args = parser.parse_args()
    url = os.environ.get("DOCKER_HOST", "")
    if not url:
        raise SystemExit('DOCKER_HOST unset: run `eval "$(scripts/dev-env)"` first')
    for tool in ("tmux", "less"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for this bench (apt-get install {tool})")

    import docker

    client = docker.DockerClient(base_url=url, version="auto", timeout=60)
    tmp = Path(tempfile.mkdtemp(prefix="gpcbench-logs-"))
    run_id = uuid.uuid4().hex[:6]
    name = f"gpcbench-logs-{run_id}"
    rows: list[tuple[str, str, str, bool | None]] = []
    notes: list[str] = []
    started = time.monotonic()

    def add(what: str, result: str, target: str = "", ok: bool | None = None) -> None:
        rows.append((what, result, target, ok))
        mark = "" if ok is None else (" [ok]" if ok else " [MISSED]")
        print(f"  {what}: {result}{mark}", file=sys.stderr, flush=True)

    try:
        container = client.containers.run(
            args.image,
            ["sh", "-c", generator(args.rate, args.seconds)],
            name=name,
            detach=True,
            labels={LABEL: "1", RUN_LABEL: run_id},
            network_mode="none",
        )
        home = tmp / "home"
        home.mkdir()
        start_tmux_server()
        env = ["env", f"HOME={home}", f"DOCKER_HOST={url}", f"PATH={os.environ['PATH']}"]
        argv = [*env, sys.executable, "-m", "gpuconsole", "--docker-host", url]
        tmux(
            "new-session", "-d", "-s", SESSION, "-x", str(COLS), "-y", str(ROWS),
            "exec " + shlex.join(argv),
        )  # fmt: skip
        pid = int(tmux("display-message", "-p", "-t", SESSION, "#{pane_pid}").strip())
        text = tmp / "less.txt"
        text.write_text("".join(f"line {i} of a file for less\n" for i in range(2000)))
        tmux(
            "new-session", "-d", "-s", LESS_SESSION, "-x", str(COLS), "-y", str(ROWS),
            "exec " + shlex.join(["less", str(text)]),
        )  # fmt: skip
        ctl = Control(SESSION)
        less_ctl = Control(LESS_SESSION)
        try:
            say(f"console pid {pid}; waiting for {name} in the table")
            if ctl.wait_for(lambda pane: name in pane, 60) is None:
                raise SystemExit(f"the console never showed {name}:\n{ctl.screen()}")
            # Select it as a person does: filter by its name, enter (keys paced by the pane).
            ctl.send("/")
            ctl.wait_for(lambda pane: "filter by name" in pane, 10)
            ctl.command(f"send-keys -t {SESSION} -l {name}")
            ctl.wait_for(lambda pane: f"filter: {name}" in pane, 10)
            ctl.send("Enter")
            time.sleep(0.5)
            opened = ctl.key_until("l", lambda pane: f"Logs: {name} on" in pane, 15)
            if opened is None:
                raise SystemExit(f"`l` did not open the logs screen:\n{ctl.screen()}")
            add("`l` to the logs screen on the pane", ms(opened))
            time.sleep(1.0)

            say(f"go: {args.rate} lines/s for {args.seconds:g} s")
            container.exec_run(["touch", "/tmp/go"])
            go = time.monotonic()
            first = ctl.wait_for(lambda pane: "chatty" in pane, 15)
            if first is None:
                raise SystemExit(f"no line reached the pane:\n{ctl.screen()}")
            add("first line on the pane after the go", ms(first))
            exited = threading.Event()
            exit_code: list[Any] = []

            def wait_exit() -> None:
                exit_code.append(container.wait(timeout=args.seconds + 60))
                exited.set()

            threading.Thread(target=wait_exit, daemon=True).start()

            c0, t0, m0 = cpu_seconds(pid), time.monotonic(), machine_busy()
            stream, less = console_toggle(ctl), less_toggle(less_ctl)
            stream_end = go + args.seconds - 0.3  # presses must end while it still writes
            streaming = True
            while streaming:
                # The console and less in turn: the same load on the machine for both.
                for toggle in (stream, less):
                    took = toggle.press()
                    if time.monotonic() >= stream_end or exited.is_set():
                        streaming = False  # it may have ended during this press: not counted
                        break
                    if took is not None:
                        toggle.samples.append(took)
                    time.sleep(random.uniform(0.05, 0.1))
            c1, t1, m1 = cpu_seconds(pid), time.monotonic(), machine_busy()
            add(
                f"key `t` (timestamps off/on) while {args.rate:,} lines/s stream",
                latency_text(stream.samples, stream.timeouts),
                "p95 <= 50 ms, 20+ presses",
                len(stream.samples) >= 20
                and not stream.timeouts
                and percentile(stream.samples, 95) <= TARGET_P95,
            )
            add(
                "... `less` in the same window, `h` / `q` (help on / off) in turn with the "
                "console's presses",
                latency_text(less.samples, less.timeouts),
            )
            busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * 100
            add(
                f"console CPU over those {t1 - t0:.1f} s",
                f"{(c1 - c0) / (t1 - t0) * 100:.0f} % of a core (whole machine: {busy:.0f} % "
                f"of {os.cpu_count()} cores, the engine and the writer included)",
            )

            if not exited.wait(args.seconds + 60):
                raise SystemExit("the chatty container did not exit")
            done = time.monotonic()
            marker = ctl.wait_for(lambda pane: "container exited with code 0" in pane, 30)
            add(
                "end marker on the pane after the container exited",
                "not within 30 s" if marker is None else ms(time.monotonic() - done),
                "",
            )
            pane = ctl.screen()
            status = next((ln.strip() for ln in pane.splitlines() if " lines" in ln), "?")
            notes.append(f"the logs screen's status line after the stream: `{status}`")
            time.sleep(0.5)
            c2, t2 = cpu_seconds(pid), time.monotonic()
            time.sleep(5.0)
            c3, t3 = cpu_seconds(pid), time.monotonic()
            rest, less_rest = console_toggle(ctl), less_toggle(less_ctl)
            for _ in range(args.rest_presses):
                for toggle in (rest, less_rest):
                    took = toggle.press()
                    if took is not None:
                        toggle.samples.append(took)
                    time.sleep(random.uniform(0.05, 0.1))
            add(
                "key `t` at rest, 20,000 lines in the buffer",
                latency_text(rest.samples, rest.timeouts),
            )
            add("... `less` in turn with it", latency_text(less_rest.samples, less_rest.timeouts))
            add(
                "console CPU at rest on the logs screen (5 s, stream ended)",
                f"{(c3 - c2) / (t3 - t2) * 100:.1f} % of a core",
            )
            alive = Path(f"/proc/{pid}").exists()
            add("console still running at the end", "yes" if alive else "NO", "yes", alive)
            # The console's own baseline in this run: the containers screen's help, a key
            # with no log view behind it.
            back = ctl.key_until("Escape", lambda pane: "Logs:" not in pane, KEY_TIMEOUT, POLL)
            if back is not None:
                helper, less_last = help_toggle(ctl), less_toggle(less_ctl)
                for _ in range(args.rest_presses // 2):
                    for toggle in (helper, less_last):
                        for _ in range(2):
                            took = toggle.press()
                            if took is not None:
                                toggle.samples.append(took)
                            time.sleep(random.uniform(0.05, 0.1))
                add(
                    "the console's containers screen, `?` / `escape` (help on / off), at rest",
                    latency_text(helper.samples, helper.timeouts),
                )
                add(
                    "... `less` in turn with it",
                    latency_text(less_last.samples, less_last.timeouts),
                )
        finally:
            ctl.close()
            less_ctl.close()
        count, rate = real_rate(client.api, str(container.id))
        add(
            "the container's real rate (engine timestamps)",
            f"{rate:,.0f} lines/s ({count:,} lines in {count / rate if rate else 0:.1f} s)",
            f"~{args.rate:,} lines/s",
        )
        notes.append(f"container exit: {exit_code[0] if exit_code else '?'}")
    finally:
        with contextlib.suppress(Exception):
            kill_tmux_server()
        mine: dict[str, str | list[str] | bool] = {"label": f"{RUN_LABEL}={run_id}"}
        for c in client.containers.list(all=True, filters=mine):
            with contextlib.suppress(Exception):
                c.remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)

    engine = client.version().get("Version")
    client.close()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print()
    print(
        f'`eval "$(scripts/dev-env)" && .venv/bin/python -m bench.logs_screen` '
        f"({time.monotonic() - started:.0f} s); engine {engine} at {url}; console in tmux "
        f"{COLS}x{ROWS}; {os.cpu_count()} CPUs; load average at the end {load}; gpuconsole at "
        f"{head or '?'} plus uncommitted changes where any"
    )
    print()
    print_targets(("measurement", "result", "target", "met"), rows)
    print()
    for note in notes:
        print(f"- {note}")
    missed = [r for r in rows if r[3] is False]
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())

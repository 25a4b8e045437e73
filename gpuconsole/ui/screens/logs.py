"""`l`: a container's output, the last lines then live, on any host.

A worker thread reads the engine's frames and cuts them into lines into a bounded queue; the
screen takes what has gathered every tick (``TICK``) and hands it to the view in one batch, so a
container writing 10,000 lines a second costs a few batches a second on the event loop, never a
message per line. Pausing stops taking from the queue (the view freezes, the reader keeps going
and the new lines are counted); leaving closes the stream, which ends the reader at once.

Timestamps are always asked of the engine: the ``t`` toggle only shows or hides them. When the
follow ends the view gets a marker line: the container's exit code, the error that cut the
stream, or, for a container that was already stopped, that it is not running.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static
from textual.worker import Worker

from gpuconsole.backend.docker.logs import ContainerEnd, ContainerLogs, open_logs
from gpuconsole.ui.screens.quiet_focus import QuietFocusScreen
from gpuconsole.ui.widgets.footer import QuietFooter
from gpuconsole.ui.widgets.help_panel import HelpPanel
from gpuconsole.ui.widgets.log_lines import LineSplitter, LogLine, marker
from gpuconsole.ui.widgets.log_view import STDERR_MARK, LogView, batch_widths

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost
    from gpuconsole.backend.hosts.host import Host

#: Seconds between two batches handed to the view.
TICK = 0.1
#: Under a flood (FLOOD_LINES or more waiting at a tick), the view takes a batch this often.
FLOOD_TICK = 0.2
FLOOD_LINES = 200
TAIL = 1000
#: After a read that waited for the container, how long the reader lets output gather; a
#: gap between two pieces longer than CAUGHT_UP means the read waited.
GATHER = 0.02
CAUGHT_UP = 0.002
BOUND = 20_000


class LogFollower:
    """One follow of one container's output; ``run`` blocks (a worker thread), ``close``
    ends it from any thread. Lines gather in ``pending`` (bounded: a reader far ahead of the
    screen loses the oldest, which the view would drop anyway); ``ended`` is the end marker's
    text once the follow is over."""

    def __init__(self, engine: DockerHost, ref: str, tail: int, bound: int) -> None:
        self.engine = engine
        self.ref = ref
        self.tail = tail
        self.bound = bound
        self.pending: deque[LogLine] = deque(maxlen=bound)
        #: The container's lines read so far (one writer: the reader thread).
        self.received = 0
        #: Lines that fell out of a full ``pending`` since the screen last took it.
        self.skipped = 0
        #: ``batch_widths`` of the lines put since the screen last took them.
        self._widest = self._stamp = 0
        self._queue = threading.Lock()
        self.ended: str | None = None
        self._stop = threading.Event()
        #: Set when ``run`` has returned: no thread reads this stream any more.
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._logs: ContainerLogs | None = None

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        with self._lock:
            self._stop.set()
            logs = self._logs
        if logs is not None:
            logs.close()

    def _put(self, lines: list[LogLine]) -> None:
        if not lines:
            return
        # Measured here, on the reader's thread: the view needs its widest line and stamp
        # for its scroll width, and a flood's batch is thousands of lines that the event loop
        # would otherwise measure while a key waits.
        widest, stamp = batch_widths(lines)
        with self._queue:
            room = self.bound - len(self.pending)
            if len(lines) > room:
                self.skipped += len(lines) - room
            self.pending.extend(lines)
            self._widest = max(self._widest, widest)
            self._stamp = max(self._stamp, stamp)

    def take(self) -> tuple[list[LogLine], int, tuple[int, int]]:
        """Everything waiting, how many lines fell out before it, and the widths of what
        waited (``batch_widths``; of the lines that fell out too, which only widens the
        scroll a little) — the screen's side."""
        with self._queue:
            lines, skipped = list(self.pending), self.skipped
            widths = (self._widest, self._stamp)
            self.pending.clear()
            self.skipped = self._widest = self._stamp = 0
        return lines, skipped, widths

    def _finish(self, text: str) -> None:
        self._put([marker(text)])
        self.ended = text

    def run(self) -> None:
        try:
            self._follow()
        finally:
            self.done.set()

    def _follow(self) -> None:
        try:
            logs = open_logs(self.engine, self.ref, follow=True, tail=self.tail, timestamps=True)
        except Exception as exc:  # any failure is shown in the screen, never raised
            if not self.stopped:
                self._finish(f"could not open the logs: {exc}")
            return
        with self._lock:
            if self._stop.is_set():
                logs.close()
                return
            self._logs = logs
        before = _ask_end(logs)
        was_running = before.running or bool(before.error)  # unknown: say "exited" later
        splitter = LineSplitter(stamped=True)
        error = ""
        # Joined runs of frames where the backend offers them: far fewer, larger pieces.
        chunks = logs.blocks() if hasattr(logs, "blocks") else iter(logs)
        try:
            last = time.monotonic()
            for chunk in chunks:
                waited = time.monotonic() - last > CAUGHT_UP
                lines = splitter.feed(chunk.stream, chunk.data)
                if lines:
                    self._put(lines)
                    self.received += len(lines)
                if waited and not self.stopped:
                    # The read had to wait for the container: caught up. Let the next read
                    # find a good deal gathered, rather than a read per frame (a chatty
                    # container's frames come one or two lines at a time).
                    time.sleep(GATHER)
                last = time.monotonic()
        except Exception as exc:  # a dropped connection ends the follow; say why
            error = str(exc) or type(exc).__name__
        rest = splitter.flush()
        self._put(rest)
        self.received += len(rest)
        if self.stopped:
            return
        end = _ask_end(logs)
        if error or end.error:
            self._finish(f"log stream ended: {error or end.error}")
        elif end.running:
            self._finish("log stream ended while the container runs (r reopens it)")
        elif not was_running:
            self._finish(f"container is not running (exited with code {end.exit_code})")
        else:
            self._finish(f"container exited with code {end.exit_code}")


def _ask_end(logs: ContainerLogs) -> ContainerEnd:
    """How the container stands; an error here is said in the end marker, never raised."""
    try:
        return logs.end()
    except Exception as exc:
        return ContainerEnd(False, None, str(exc) or type(exc).__name__)


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", part).strip("._") or "container"


class LogsScreen(QuietFocusScreen[None]):
    BINDINGS = [
        Binding("slash", "search", "Search", tooltip="Search the lines (enter runs it)"),
        Binding("n", "next_match", "Next", tooltip="Next match (wraps around)"),
        Binding("N", "prev_match", "Prev", tooltip="Previous match (wraps around)"),
        Binding("t", "toggle_stamps", "Timestamps", tooltip="Show or hide timestamps"),
        Binding("w", "toggle_wrap", "Wrap", tooltip="Wrap long lines to the width, or not"),
        Binding("p", "pause", "Pause", tooltip="Freeze the view (new lines are counted)"),
        Binding("s", "save", "Save", tooltip="Save the lines to ./NAME-HOST-TIME.log"),
        Binding("G", "live_end", "Live end", tooltip="Back to the end, following new lines"),
        Binding("r", "reopen", "Reopen", tooltip="Open the logs again (after a restart)"),
        Binding("question_mark", "help", "Help", tooltip="This help"),
        Binding("escape,q", "back", "Back", tooltip="Back to the containers"),
    ]

    def __init__(
        self,
        host: Host,
        ref: str,
        name: str,
        *,
        tail: int = TAIL,
        bound: int = BOUND,
        directory: Path | None = None,
    ) -> None:
        super().__init__()
        self.host = host
        self.ref = ref
        self.container_name = name
        self.tail = tail
        self.bound = bound
        self.directory = directory
        self.paused = False
        self._paused_at = 0
        self.follower = LogFollower(host.engine, ref, tail, bound)
        self.reader: Worker[None] | None = None
        self._status = ""
        self._added_at = 0.0

    def compose(self) -> ComposeResult:
        title = f"Logs: {self.container_name} on {self.host.name}"
        yield HelpPanel(notes=())  # first: see ContainersScreen.compose
        yield Static(title, id="logs-title", markup=False)
        yield Input(placeholder="search — enter to find, esc to cancel", id="logs-search")
        yield LogView(self.bound, id="log-view")
        yield Static("", id="logs-status", markup=False)
        yield QuietFooter()

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    @property
    def status_text(self) -> str:
        return self._status

    def on_mount(self) -> None:
        box = self.query_one("#logs-search", Input)
        box.display = False
        box.disabled = True
        self.view.focus()
        self._start()
        self.set_interval(TICK, self._tick)
        self._show_status()

    def on_unmount(self) -> None:
        # No gc.freeze / gc.unfreeze here: the app froze what start-up made (ui/gc_settle.py),
        # and unfreezing, which knows no "only what I froze", gave every full collection after
        # this screen the whole app to walk again (~115 ms each, on the keys that followed).
        # The lines themselves are tuples of strings, which the collector stops tracking.
        self.follower.close()

    def _start(self) -> None:
        self.reader = self.run_worker(
            self.follower.run,
            thread=True,
            group="logs-reader",
            name=f"logs {self.container_name}",
            exit_on_error=False,
        )

    # -- the batch --------------------------------------------------------------------------

    def _tick(self) -> None:
        pending = self.follower.pending
        if pending and not self.paused:
            now = time.monotonic()
            # A flood (more than a screenful a tick) repaints every row of the view each
            # time: at most FLOOD_TICK apart, which nobody reads faster, and keys stay quick.
            if len(pending) < FLOOD_LINES or now - self._added_at >= FLOOD_TICK:
                batch, skipped, widths = self.follower.take()
                self.view.add(batch, skipped, widths)
                self._added_at = now
        self._show_status()

    def _show_status(self) -> None:
        view, follower = self.view, self.follower
        parts: list[str] = []
        if self.paused:
            parts.append(f"PAUSED, {follower.received - self._paused_at:,} new")
        elif follower.ended is not None:
            parts.append("ended")
        elif not view.following:
            parts.append(f"{view.unseen:,} new lines (G: live end)" if view.unseen else "scrolled")
        else:
            parts.append("following")
        kept = len(view.lines)
        parts.append(f"last {kept:,} of {view.total:,} lines" if view.first else f"{kept:,} lines")
        if view.needle:
            at = view.match_position()
            parts.append(
                f"/{view.needle}: match {at[0]} of {at[1]}" if at else f"/{view.needle}: no match"
            )
        parts.append(f"{STDERR_MARK} stderr")
        parts.append(f"timestamps {'on' if view.stamps else 'off'}")
        parts.append(f"wrap {'on' if view.wrap else 'off'}")
        text = " · ".join(parts)
        if text != self._status:
            self._status = text
            self.query_one("#logs-status", Static).update(text, layout=False)

    # -- keys -------------------------------------------------------------------------------

    def action_back(self) -> None:
        box = self.query_one("#logs-search", Input)
        if box.display:
            self._hide_search()
            return
        self.follower.close()
        self.dismiss()

    def action_search(self) -> None:
        box = self.query_one("#logs-search", Input)
        box.disabled = False
        box.display = True
        box.value = self.view.needle
        box.focus()

    def _hide_search(self) -> None:
        box = self.query_one("#logs-search", Input)
        box.display = False
        box.disabled = True
        self.view.focus()

    @on(Input.Submitted, "#logs-search")
    def _search(self, event: Input.Submitted) -> None:
        self._hide_search()
        found = self.view.search(event.value)
        if event.value and not found:
            self.notify(f"no line holds {event.value!r}", severity="warning", timeout=3)
        self._show_status()

    def action_next_match(self) -> None:
        self.view.step_match(1)
        self._show_status()

    def action_prev_match(self) -> None:
        self.view.step_match(-1)
        self._show_status()

    def action_toggle_stamps(self) -> None:
        self.view.set_stamps(not self.view.stamps)
        self._show_status()

    def action_toggle_wrap(self) -> None:
        self.view.set_wrap(not self.view.wrap)
        self._show_status()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._paused_at = self.follower.received
        if not self.paused:
            self._tick()
        self._show_status()

    def action_live_end(self) -> None:
        self.view.go_end()
        self._show_status()

    def action_reopen(self) -> None:
        self.follower.close()
        self.follower = LogFollower(self.host.engine, self.ref, self.tail, self.bound)
        self.paused = False
        self.view.clear()
        self._start()
        self._show_status()

    def action_help(self) -> None:
        self.query_one(HelpPanel).open(list(self.BINDINGS))

    def action_save(self) -> None:
        lines = self.view.shown_text()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{_safe(self.container_name)}-{_safe(self.host.name)}-{stamp}"
        directory = self.directory or Path.cwd()
        self.run_worker(
            lambda: self._write(directory, base, lines),
            thread=True,
            group="logs-save",
            exit_on_error=False,
        )

    def _write(self, directory: Path, base: str, lines: list[str]) -> None:
        """Write ``lines`` to a new file, readable by its owner only (logs hold secrets)."""
        data = ("\n".join(lines) + "\n" if lines else "").encode("utf-8")
        try:
            for n in range(100):
                path = directory / (f"{base}.log" if n == 0 else f"{base}-{n}.log")
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    continue
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                break
            else:
                raise FileExistsError(f"{directory / base}.log and 99 others exist")
        except OSError as exc:
            self.app.call_from_thread(
                self.notify, f"not saved: {exc}", title="Save", severity="error"
            )
            return
        self.app.call_from_thread(
            self.notify, f"{len(lines):,} lines saved to {path}", title="Saved", timeout=8
        )


__all__ = ["BOUND", "TAIL", "LogFollower", "LogsScreen"]

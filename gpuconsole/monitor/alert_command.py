"""``[alerts] command``: a user's command run for every alert raised or cleared (a chat webhook).

Run as ``sh -c COMMAND`` with the alert as one JSON object on stdin — never in argv, where
``ps`` shows it to every user of the box. Runs happen in background threads so no monitor thread
ever waits on a webhook: one alert's runs go one at a time, in order (its clear never overtakes
its raise), a few alerts run side by side, and a run that outlives its timeout is killed with
its whole process group. A failure is logged and handed to ``on_failure``; it never raises.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable

from gpuconsole.monitor.alerts import Alert

log = logging.getLogger(__name__)

#: Seconds a run may take before it is killed.
DEFAULT_TIMEOUT_S = 10.0
#: The last bytes of a failed run's stderr kept for the message.
_STDERR_TAIL = 300


class AlertCommand:
    """Runs one shell command per alert, in the background; see the module docstring."""

    def __init__(
        self,
        command: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_failure: Callable[[Alert, str], object] | None = None,
        max_parallel: int = 4,
        max_pending: int = 64,
        shell: str = "/bin/sh",
    ) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self._on_failure = on_failure
        self._shell = shell
        self._max_pending = max_pending
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queues: dict[tuple[str, str, str], deque[Alert]] = {}
        self._pending = 0
        self._closed = False
        #: Runs finished, and the failures among them (tests and the status line read them).
        self.runs = 0
        self.failures = 0

    def submit(self, alert: Alert) -> bool:
        """Queue a run for ``alert``; returns at once. False when it was dropped (closed, or
        too many runs waiting behind a hung command)."""
        with self._lock:
            if self._closed:
                return False
            if self._pending >= self._max_pending:
                log.warning("alert command: %d runs waiting, dropped: %s", self._pending, alert)
                return False
            queue = self._queues.get(alert.key)
            self._pending += 1
            if queue is not None:  # a run for this alert is under way: this one follows it
                queue.append(alert)
                return True
            self._queues[alert.key] = deque([alert])
        thread = threading.Thread(
            target=self._drain, args=(alert.key,), name="alert-command", daemon=True
        )
        thread.start()
        return True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no run is queued or under way; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._queues, timeout)

    def close(self) -> None:
        """Accept nothing more; runs under way finish (or time out) on their own."""
        with self._lock:
            self._closed = True

    def _drain(self, key: tuple[str, str, str]) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                alert = queue[0]
            with self._slots:
                self._run(alert)
            with self._lock:
                queue.popleft()
                self._pending -= 1
                if not queue:
                    del self._queues[key]
                    self._idle.notify_all()
                    return

    def _run(self, alert: Alert) -> None:
        payload = json.dumps(alert.to_json()).encode() + b"\n"
        try:
            proc = subprocess.Popen(
                [self._shell, "-c", self.command],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as exc:
            self._failed(alert, f"could not start: {exc}")
            return
        try:
            _, err = proc.communicate(payload, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            self._failed(alert, f"did not finish in {self.timeout_s:g} s and was killed")
            return
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-_STDERR_TAIL:]
            said = f": {tail}" if tail else ""
            self._failed(alert, f"exited with status {proc.returncode}{said}")
            return
        with self._lock:
            self.runs += 1

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        # A child that left the group may still hold the pipe: do not read it, just close ours.
        for pipe in (proc.stdin, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _failed(self, alert: Alert, why: str) -> None:
        message = f"alert command {why}"
        log.warning("%s (%s %s on %s)", message, alert.kind.value, alert.state, alert.host)
        with self._lock:
            self.runs += 1
            self.failures += 1
        if self._on_failure is not None:
            try:
                self._on_failure(alert, message)
            except Exception:  # a failing listener must not take the runner down
                log.exception("alert command: failure listener raised")

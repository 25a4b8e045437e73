"""``[alerts] command``: real ``sh -c`` runs with the alert as JSON on stdin, in the background,
killed after their timeout, one at a time per alert; and a real HostMonitor sending its alerts
there (the GPU is the NVML stand-in; engine and attribution are real)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from gpuconsole.backend.gpu.nvml_source import NvmlSource
from gpuconsole.backend.gpu.nvml_standin import StandInNvml, h100_devices
from gpuconsole.monitor.alert_command import AlertCommand
from gpuconsole.monitor.alerts import Alert, AlertKind, AlertSeverity
from gpuconsole.monitor.events import AlertChanged, AlertCommandFailed, MonitorEvent
from gpuconsole.monitor.fleet import Fleet
from gpuconsole.settings.config import AlertSettings

from support import host_at


def alert(raised: bool = True, gpu: int = 0, message: str = "GPU 0 on gpu1 is at 91 °C") -> Alert:
    return Alert(
        AlertKind.TEMPERATURE,
        AlertSeverity.ERROR,
        "gpu1",
        message,
        started_at=1_800_000_000.0,
        at=1_800_000_001.0 + (0 if raised else 60),
        raised=raised,
        gpu_index=gpu,
        gpu_uuid=f"GPU-{gpu:04d}",
        value=91,
        threshold=85,
    )


def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {cond}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill 0; it is dead for our purpose.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def test_the_command_reads_the_alert_as_json_on_stdin_and_nothing_in_argv(tmp_path: Path) -> None:
    out, args = tmp_path / "alert.json", tmp_path / "args"
    secret = "a message with 'quotes' and $(not run)"
    runner = AlertCommand(f'cat > {out}; printf \'%s|%s\' "$0" "$#" > {args}')
    assert runner.submit(alert(message=secret))
    assert runner.wait_idle(10)
    data = json.loads(out.read_text())
    assert data == alert(message=secret).to_json()
    assert data["message"] == secret and data["state"] == "raised" and data["kind"] == "temperature"
    assert args.read_text() == "/bin/sh|0"  # sh -c COMMAND: no alert text among the arguments
    assert (runner.runs, runner.failures) == (1, 0)


def test_a_hanging_command_is_killed_after_the_timeout_and_blocks_nothing(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    failures: list[tuple[Alert, str]] = []
    runner = AlertCommand(
        f"sleep 60 & echo $$ $! > {pids}; wait",
        timeout_s=0.5,
        on_failure=lambda a, why: failures.append((a, why)),
    )
    started = time.monotonic()
    assert runner.submit(alert())
    assert runner.submit(alert(gpu=1))  # another alert: its own run, side by side
    assert time.monotonic() - started < 0.2  # submit never waits for the command
    wait_for(lambda: pids.exists() and pids.read_text().strip())
    shell, sleeper = (int(p) for p in pids.read_text().split())
    assert runner.wait_idle(10)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 5
    assert len(failures) == 2
    assert {a.gpu_index for a, _ in failures} == {0, 1}
    assert all(why == "alert command did not finish in 0.5 s and was killed" for _, why in failures)
    # The whole process group went, the background sleep included.
    wait_for(lambda: not pid_alive(shell) and not pid_alive(sleeper), 5)


def test_one_alert_runs_one_at_a_time_in_order_others_side_by_side(tmp_path: Path) -> None:
    log = tmp_path / "log"
    runner = AlertCommand(
        's=$(sed -n \'s/.*"state": "\\([a-z]*\\)".*/\\1/p\'); '
        f"echo start $s >> {log}; sleep 0.3; echo end $s >> {log}"
    )
    runner.submit(alert(raised=True))
    runner.submit(alert(raised=False))  # the same alert's clear waits for its raise
    assert runner.wait_idle(10)
    assert log.read_text().split("\n")[:-1] == [
        "start raised",
        "end raised",
        "start cleared",
        "end cleared",
    ]
    # Two different alerts do not wait for each other.
    log.unlink()
    runner.submit(alert(gpu=0))
    runner.submit(alert(gpu=1))
    assert runner.wait_idle(10)
    assert log.read_text().split("\n")[:-1] == ["start raised"] * 2 + ["end raised"] * 2


def test_a_failing_command_is_reported_with_its_status_and_stderr(tmp_path: Path) -> None:
    failures: list[str] = []
    runner = AlertCommand(
        "cat >/dev/null; echo 'webhook said 403' >&2; exit 3",
        on_failure=lambda a, why: failures.append(why),
    )
    runner.submit(alert())
    assert runner.wait_idle(10)
    assert failures == ["alert command exited with status 3: webhook said 403"]
    # A command that does not even read stdin is not a failure.
    quiet = AlertCommand("true")
    quiet.submit(alert())
    assert quiet.wait_idle(10) and quiet.failures == 0


def test_a_failure_listener_that_raises_breaks_nothing() -> None:
    def boom(a: Alert, why: str) -> None:
        raise RuntimeError("listener bug")

    runner = AlertCommand("exit 1", on_failure=boom)
    runner.submit(alert())
    assert runner.wait_idle(10)
    runner.submit(alert(gpu=3))
    assert runner.wait_idle(10) and runner.failures == 2


def test_a_closed_runner_takes_nothing() -> None:
    runner = AlertCommand("true")
    runner.close()
    assert not runner.submit(alert())


def test_the_fleet_sends_a_hot_gpu_to_the_command(tmp_path: Path) -> None:
    """A real monitor on the real engine; the GPU is the NVML stand-in heating past 85 °C."""
    devices = h100_devices(1)
    host = host_at(gpu=NvmlSource(nvml=StandInNvml(devices)))
    out = tmp_path / "alerts.jsonl"
    events: list[MonitorEvent] = []
    lock = threading.Lock()

    def emit(event: MonitorEvent) -> None:
        with lock:
            events.append(event)

    def alerts() -> list[Alert]:
        with lock:
            return [e.alert for e in events if isinstance(e, AlertChanged)]

    fleet = Fleet(
        [host],
        emit,
        alerts=AlertSettings(command=f"cat >> {out}"),
        gpu_interval=0.05,
        refresh_seconds=1.0,
    )
    assert fleet.alert_command is not None
    fleet.start()
    try:
        time.sleep(0.3)
        assert alerts() == []  # 74 °C: nothing
        devices[0].temperature_c = 88
        wait_for(lambda: len(alerts()) == 1)
        (hot,) = alerts()
        assert hot.kind is AlertKind.TEMPERATURE and hot.raised and hot.value == 88
        assert hot.host == "local" and hot.gpu_uuid == devices[0].uuid
        assert fleet.alert_command.wait_idle(10)
        (line,) = out.read_text().splitlines()
        assert json.loads(line) == hot.to_json()
        devices[0].temperature_c = 79
        wait_for(lambda: len(alerts()) == 2)
        assert alerts()[1].state == "cleared"
        assert fleet.alert_command.wait_idle(10)
        assert [json.loads(x)["state"] for x in out.read_text().splitlines()] == [
            "raised",
            "cleared",
        ]
    finally:
        fleet.stop()
        host.close()


def test_the_fleet_reports_a_failing_command_as_an_event() -> None:
    devices = h100_devices(1)
    devices[0].temperature_c = 95
    host = host_at(gpu=NvmlSource(nvml=StandInNvml(devices)))
    events: list[MonitorEvent] = []
    fleet = Fleet([host], events.append, alerts=AlertSettings(command="exit 7"), gpu_interval=0.05)
    fleet.start()
    try:
        wait_for(lambda: any(isinstance(e, AlertCommandFailed) for e in list(events)))
        (failed,) = [e for e in list(events) if isinstance(e, AlertCommandFailed)]
        assert failed.error == "alert command exited with status 7"
        assert failed.alert.kind is AlertKind.TEMPERATURE and failed.host == "local"
    finally:
        fleet.stop()
        host.close()

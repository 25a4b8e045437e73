"""The process list and each PID's cgroup in one command: the real script, the stand-in
nvidia-smi, this machine's real /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpuconsole.backend.gpu.smi_origins import origins_argv, parse_origins_output
from gpuconsole.backend.gpu.smi_parser import parse_apps_csv, query_apps_args
from gpuconsole.backend.hosts.local import LocalMachine
from gpuconsole.backend.hosts.machine import CommandError

STANDIN = Path(__file__).resolve().parents[2] / "fixtures" / "bin" / "nvidia-smi"
UUID = "GPU-85f63f49-2356-f053-21c3-2eb02bd04522"


def run_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, apps: str) -> str:
    listing = tmp_path / "apps.csv"
    listing.write_text(apps)
    monkeypatch.setenv("GPUCONSOLE_SMI_STUB_APPS", str(listing))
    return LocalMachine().run(origins_argv(str(STANDIN), query_apps_args()), timeout=20)


def test_each_listed_pid_comes_with_its_cgroup_and_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    me = os.getpid()
    gone = 4_000_000  # above pid_max: no such process
    output = run_script(
        monkeypatch, tmp_path, f"{me}, python3, 100, {UUID}\n{gone}, ghost, 5, {UUID}\n"
    )
    apps, origins = parse_origins_output(output)
    procs = parse_apps_csv(apps, {})
    assert [p.pid for p in procs] == [me, gone]
    assert [p.used_memory_bytes for p in procs] == [100 * 1024**2, 5 * 1024**2]
    by_pid = {pid: (cgroup, comm) for pid, cgroup, comm in origins}
    assert set(by_pid) == {me}, "a PID that is gone has no origin"
    cgroup, comm = by_pid[me]
    assert cgroup == Path(f"/proc/{me}/cgroup").read_text()
    assert comm == Path(f"/proc/{me}/comm").read_text()


def test_no_processes_is_an_empty_list_not_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    apps, origins = parse_origins_output(run_script(monkeypatch, tmp_path, ""))
    assert parse_apps_csv(apps, {}) == () and origins == ()


def test_a_failing_nvidia_smi_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(
        "GPUCONSOLE_SMI_STUB_FAIL",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
    )
    with pytest.raises(CommandError, match="couldn't communicate with the NVIDIA driver"):
        parse_origins_output(run_script(monkeypatch, tmp_path, ""))

"""``gpuconsole record`` over the loopback SSH host: a real container holding the stand-in
nvidia-smi's H100 at a steady 350 W, its energy and GPU time in ``usage`` (kept after the
container is gone) and in ``/metrics`` (parsed with prometheus-client's parser)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import TEST_IMAGE, engine_url, remote_setup, run_cli, wait_for

pytestmark = pytest.mark.engine

H100 = Path(__file__).parent.parent / "fixtures" / "gpu" / "h100"
UUID = (H100 / "nvidia-smi-apps-busy.csv").read_text().split(",")[-1].strip()
WATTS = 350.0


def steady_recording(path: Path) -> Path:
    """One H100 reading, repeated by the stand-in nvidia-smi: 350 W, 100 %, 20 GiB used."""
    row = json.loads((H100 / "nvml-recording-h100.jsonl").open().readline())
    row.update(power_mw=int(WATTS * 1000), util_gpu=100, mem_used=20 << 30, uuid=UUID)
    path.write_text(json.dumps(row) + "\n")
    return path


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(found: dict, name: str, **labels: str) -> float | None:
    for (n, pairs), value in found.items():
        if n == name and all(dict(pairs).get(k) == v for k, v in labels.items()):
            return value
    return None


def test_record_a_container_at_350_w_over_ssh(
    tmp_path: Path,
    private_sshd: Callable[..., Any],
    apps_file: Path,
    make_container: Callable[..., Any],
) -> None:
    sshd = private_sshd(
        setenv={"GPUCONSOLE_SMI_STUB_RECORDING": str(steady_recording(tmp_path / "steady.jsonl"))}
    )
    home = tmp_path / "home"
    config = remote_setup(home, ("gpubox",), port=sshd.port)
    container = make_container("sleep 3600", name=f"train-{os.getpid()}")
    apps_file.write_text(f"{container.attrs['State']['Pid']}, python3, 20480, {UUID}\n")
    db = tmp_path / "usage.sqlite"
    env = {**os.environ, "HOME": str(home), "DOCKER_HOST": engine_url()}
    recorder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpuconsole",
            "--config",
            str(config),
            "record",
            "--host",
            "gpubox",
            "--db",
            str(db),
            "--interval",
            "0.5",
            "--metrics",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert recorder.stdout is not None
        first = recorder.stdout.readline()
        assert first.startswith("recording gpubox every 0.5 s into"), first
        port = int(first.rsplit(":", 1)[1].split("/")[0])
        name = container.name

        def held() -> bool:
            return (
                series(
                    metrics(port), "gpuconsole_container_gpu_energy_joules_total", container=name
                )
                or 0
            ) > 0

        wait_for(held, 30, "the container's energy in /metrics")
        time.sleep(5)
        live = metrics(port)
        assert series(live, "gpuconsole_gpu_power_watts", host="gpubox", uuid=UUID) == WATTS
        assert series(
            live,
            "gpuconsole_container_gpu_power_watts",
            container=name,
            image=TEST_IMAGE,
            host="gpubox",
        ) == pytest.approx(WATTS)
        assert series(live, "gpuconsole_container_gpu_memory_used_bytes", container=name) == (
            20480 << 20
        )
        assert series(live, "gpuconsole_gpu_energy_joules_total", uuid=UUID) > 5 * WATTS
        # The container stops mid-recording (and leaves the GPU); the recorder goes on.
        apps_file.write_text("")
        container.stop(timeout=1)
        stopped_at = time.time()
        time.sleep(2)
    finally:
        recorder.send_signal(signal.SIGTERM)
        out, errors = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, errors
    assert "stopped:" in out
    container.remove(force=True)  # gone from the engine: its usage still counts

    report = run_cli("usage", "--db", str(db), "--json", timeout=60)
    assert report.returncode == 0, report.stderr
    rows = {r["container"]: r for r in json.loads(report.stdout)}
    row = rows[name]
    assert row["host"] == "gpubox" and row["image"] == TEST_IMAGE and row["gpus"] == ["0"]
    assert row["gpu_seconds"] >= 5
    assert row["energy_wh"] * 3600 / row["gpu_seconds"] == pytest.approx(WATTS, rel=0.02)
    assert row["mean_utilization_percent"] == pytest.approx(100)
    assert row["peak_memory_bytes"] == 20480 << 20
    assert row["reserved_gpu_seconds"] == 0  # it asked for no GPU: unreserved use
    last = time.mktime(time.strptime(row["last_seen"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert last <= stopped_at + 1.5
    assert "shared GPUs: a GPU used by one container is all of it" in report.stderr

    by_gpu = json.loads(run_cli("usage", "--db", str(db), "--json", "--by", "gpu").stdout)
    (gpu,) = by_gpu
    assert gpu["gpus"] == [f"0:{UUID}"]
    assert gpu["gpu_seconds"] == pytest.approx(row["gpu_seconds"])  # nobody else used it
    assert gpu["energy_wh"] > row["energy_wh"]  # the GPU drew power after the container left

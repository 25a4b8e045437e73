"""`gpuconsole gpus` as a user runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fakes import H100_RECORDING
from support import run_cli as gc

KEYS = [
    "host",
    "index",
    "uuid",
    "name",
    "memory_used_bytes",
    "memory_total_bytes",
    "utilization_gpu_percent",
    "utilization_memory_percent",
    "power_w",
    "power_limit_w",
    "temperature_c",
    "sm_clock_mhz",
    "fan_percent",
    "processes",
]


def test_gpus_json_from_a_recording() -> None:
    out = gc("gpus", "--json", "--replay", str(H100_RECORDING))
    assert out.returncode == 0, out.stderr
    (gpu,) = json.loads(out.stdout)
    assert list(gpu) == KEYS
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["memory_total_bytes"] == 85520809984
    assert gpu["power_limit_w"] == 700.0 and 70 < gpu["power_w"] < 90  # idle at the start
    assert gpu["fan_percent"] is None  # NotSupported on an H100


def test_gpus_table_from_a_recording() -> None:
    out = gc("gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 0
    assert "replayed" in out.stdout
    assert "NVIDIA H100 80GB HBM3" in out.stdout and "/ 700 W" in out.stdout


def test_bad_replay_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jsonl"
    bad.write_text("{not json\n")
    out = gc("gpus", "--replay", str(bad))
    assert out.returncode == 1 and "--replay" in out.stderr
    missing = gc("--gpu-replay", str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 1 and "missing.jsonl" in missing.stderr


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or Path("/dev/nvidiactl").exists(),
    reason="this host has an NVIDIA driver; tests/backend/gpu/test_gpu_real_device.py covers it",
)
def test_no_gpu_says_why_and_exits_1() -> None:
    out = gc("gpus")
    assert out.returncode == 1
    assert "no NVIDIA driver" in out.stderr
    out = gc("gpus", "--json")
    assert out.returncode == 1 and json.loads(out.stdout) == []

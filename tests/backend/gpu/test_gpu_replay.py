"""Replaying the H100 recording: real-time pace, looping, the replayed flag, several GPUs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuconsole.backend.gpu.models import GpuSourceState
from gpuconsole.backend.gpu.replay import ReplayError, ReplaySource, load_frames


def clocked(path: Path, **kwargs: object) -> tuple[ReplaySource, list[float]]:
    now = [1000.0]
    return ReplaySource.from_file(path, clock=lambda: now[0], **kwargs), now


def test_recording_plays_in_real_time_through_its_phases(h100: Path) -> None:
    source, now = clocked(h100 / "nvml-recording-h100.jsonl")
    assert len(source.frames) == 188
    first = source.sample()
    assert first.replayed and source.replayed
    assert first.state is GpuSourceState.OK
    gpu = first.gpus[0]
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.power_w == pytest.approx(76.574)
    assert gpu.fan_percent is None
    phases = []
    for _ in range(60):
        now[0] += 1.0
        phases.append(source.current_frame().phase)
    assert phases.index("alloc-20GiB") < phases.index("matmul-bf16") < phases.index("release")
    now[0] = 1000.0 + 30.0
    busy = source.sample()
    assert busy.gpus[0].utilization_gpu_percent is not None
    assert busy.gpus[0].utilization_gpu_percent >= 95
    assert busy.gpus[0].power_w is not None and busy.gpus[0].power_w > 600
    assert [p.pid for p in busy.processes] == [416]


def test_replay_loops_back_to_the_start(h100: Path) -> None:
    source, now = clocked(h100 / "nvml-recording-h100.jsonl")
    start = source.sample()
    assert 48 < source.duration < 50
    now[0] += source.duration + 0.01
    again = source.sample()
    assert again.gpus == start.gpus


def test_speed_multiplies_the_pace(h100: Path) -> None:
    source, now = clocked(h100 / "nvml-recording-h100.jsonl", speed=10.0)
    source.sample()
    now[0] += 3.0  # 30 s into the recording: the matmul phase
    assert source.current_frame().phase == "matmul-bf16"


def test_multi_gpu_recording_groups_rounds(tmp_path: Path, h100: Path) -> None:
    rows = [json.loads(line) for line in (h100 / "nvml-recording-h100.jsonl").open()][:3]
    lines = []
    for r in rows:
        for i in range(4):
            lines.append(json.dumps(dict(r, index=i, t=r["t"] + i * 0.001, uuid=f"GPU-{i}")))
    path = tmp_path / "four.jsonl"
    path.write_text("\n".join(lines) + "\n")
    source, _ = clocked(path)
    assert len(source.frames) == 3
    snap = source.sample()
    assert [g.index for g in snap.gpus] == [0, 1, 2, 3]
    assert [g.uuid for g in snap.gpus] == ["GPU-0", "GPU-1", "GPU-2", "GPU-3"]


def test_bad_recordings_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot read the recording"):
        ReplaySource.from_file(tmp_path / "missing.jsonl")
    with pytest.raises(ReplayError, match="line 2"):
        load_frames(['{"t": 1, "index": 0}', "not json"])
    with pytest.raises(ReplayError, match="no samples"):
        load_frames(["", "  "])

"""Energy, GPU time and shares from real H100 data: the two-process recording with NVML's
hardware energy counter (tests/fixtures/gpu/h100/nvml-recording-h100-2procs*.json*)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuconsole.accounting.meter import HOST_OWNER, Meter, shares
from gpuconsole.backend.gpu import GpuAttribution, GpuSnapshot, GpuSourceState
from gpuconsole.backend.gpu.attribution import AttributedProcess
from gpuconsole.backend.gpu.models import GpuProcess, GpuSample

H100 = Path(__file__).parent.parent / "fixtures" / "gpu" / "h100"
RECORDING = [json.loads(line) for line in (H100 / "nvml-recording-h100-2procs.jsonl").open()]
COUNTER = json.loads((H100 / "nvml-recording-h100-2procs-energy.json").read_text())
UUID = "GPU-2procs"
#: The recording's two PIDs as two containers.
OWNER_OF = {432: "c-burst", 433: "c-idle"}


def frame(row: dict, *, counter: bool) -> tuple[GpuSnapshot, GpuAttribution]:
    procs = tuple(GpuProcess(p["pid"], 0, UUID, p["used"]) for p in row["procs"])
    gpu = GpuSample(
        0,
        UUID,
        "NVIDIA H100 80GB HBM3",
        row["mem_used"],
        row.get("mem_total"),
        row["util_gpu"],
        row.get("util_mem"),
        row["power_mw"] / 1000.0,
        energy_mj=row["energy_mj"] if counter else None,
    )
    snapshot = GpuSnapshot("h100", "replay", GpuSourceState.OK, row["t"], (gpu,), procs)
    attribution = GpuAttribution(
        tuple(AttributedProcess(p, OWNER_OF.get(p.pid), None) for p in procs), ()
    )
    return snapshot, attribution


def run(rows: list[dict], *, counter: bool, max_gap: float = 2.0):
    meter = Meter("h100", max_gap)
    gpus, owners = [], []
    for row in rows:
        g, o = meter.observe(*frame(row, counter=counter))
        gpus += g
        owners += o
    return gpus, owners


def test_the_hardware_counter_is_used_where_the_gpu_has_one() -> None:
    gpus, _ = run(RECORDING, counter=True)
    measured = sum(g.energy_j for g in gpus)
    recorded = (RECORDING[-1]["energy_mj"] - RECORDING[0]["energy_mj"]) / 1000
    assert measured == pytest.approx(recorded, rel=1e-9)
    # ...which is the run's counter from start to end, give or take the first and last
    # quarter second the recording's own samples leave out.
    total = (COUNTER["energy_end_mj"] - COUNTER["energy_start_mj"]) / 1000
    assert measured == pytest.approx(total, rel=0.02)


@pytest.mark.parametrize("every", [1, 4], ids=["4Hz", "1Hz"])
def test_integrated_power_is_within_2_percent_of_the_counter(every: int) -> None:
    """Over nvidia-smi there is no energy field: the trapezoid of power must do."""
    rows = RECORDING[::every]
    gpus, _ = run(rows, counter=False, max_gap=1.5)
    integrated = sum(g.energy_j for g in gpus)
    counter = (rows[-1]["energy_mj"] - rows[0]["energy_mj"]) / 1000
    assert integrated == pytest.approx(counter, rel=0.02)
    seconds = sum(g.dt for g in gpus)
    assert seconds == pytest.approx(rows[-1]["t"] - rows[0]["t"], rel=1e-9)


def test_the_burster_and_the_idle_holder_split_by_used_memory() -> None:
    """The stated rule: while both hold the GPU, each gets its share of the used memory — the
    idle holder pays for the third of the GPU its 5.5 GiB keep from anyone else."""
    gpus, owners = run(RECORDING, counter=True)
    rows_at = {r["t"]: r for r in RECORDING}
    expected = {"c-burst": 0.0, "c-idle": 0.0}
    seconds = {"c-burst": 0.0, "c-idle": 0.0}
    for g in gpus:
        procs = rows_at[g.t]["procs"]
        total = sum(p["used"] for p in procs)
        for p in procs:
            expected[OWNER_OF[p["pid"]]] += g.energy_j * p["used"] / total
            seconds[OWNER_OF[p["pid"]]] += g.dt * p["used"] / total
    for owner in expected:
        mine = [r for r in owners if r.owner == owner]
        assert sum(r.energy_j for r in mine) == pytest.approx(expected[owner], rel=1e-9)
        assert sum(r.gpu_seconds for r in mine) == pytest.approx(seconds[owner], rel=1e-9)
    # 11.0 GiB against 5.5 GiB: two thirds and one third, whatever each computes.
    burst = sum(r.energy_j for r in owners if r.owner == "c-burst")
    idle = sum(r.energy_j for r in owners if r.owner == "c-idle")
    assert burst / (burst + idle) == pytest.approx(11_788_091_392 / 17_699_962_880, rel=0.01)
    # Together they account for the whole GPU while they hold it, nothing before.
    held = [g for g in gpus if rows_at[g.t]["procs"]]
    assert burst + idle == pytest.approx(sum(g.energy_j for g in held), rel=1e-9)
    assert HOST_OWNER not in {r.owner for r in owners}


def test_a_gap_is_not_bridged() -> None:
    rows = RECORDING[:20] + RECORDING[60:80]  # 10 s missing (the recorder was down)
    gpus, _ = run(rows, counter=False, max_gap=1.0)
    seconds = sum(g.dt for g in gpus)
    expected = (rows[19]["t"] - rows[0]["t"]) + (rows[-1]["t"] - rows[20]["t"])
    assert seconds == pytest.approx(expected)
    assert all(g.dt <= 1.0 for g in gpus)


def test_shares_rule() -> None:
    assert shares({"a": 3 * 2**30}) == {"a": 1.0}
    assert shares({"a": 3, "b": 1}) == {"a": 0.75, "b": 0.25}
    assert shares({"a": None, "b": None}) == {"a": 0.5, "b": 0.5}  # nothing known: equal
    assert shares({"a": 4, "b": None}) == {"a": 1.0, "b": 0.0}
    assert shares({}) == {}


def test_reserved_idle_and_unreserved_time() -> None:
    """A container that reserved GPU 0 and runs nothing there: all its reserved time is idle;
    one that reserved it and runs a process under 5 % utilization: idle too; at 99 %: not."""
    meter = Meter("h", 5.0)

    def sample(t: float, util: int, procs: tuple[GpuProcess, ...]) -> None:
        gpu = GpuSample(0, "GPU-0", "H100", 10, 100, util, 0, 100.0)
        snap = GpuSnapshot("h", "x", GpuSourceState.OK, t, (gpu,), procs)
        attribution = GpuAttribution(tuple(AttributedProcess(p, "holder", None) for p in procs), ())
        rows.extend(meter.observe(snap, attribution, {"holder": (0,), "sitter": (0,)})[1])

    rows: list = []
    proc = (GpuProcess(7, 0, "GPU-0", 10),)
    sample(0, 0, proc)
    sample(1, 2, proc)  # holder busy-ish but under 5 %
    sample(2, 99, proc)
    holder = [r for r in rows if r.owner == "holder"]
    sitter = [r for r in rows if r.owner == "sitter"]
    assert [r.idle_reserved_seconds for r in holder] == [1.0, 0.0]
    assert [r.idle_reserved_seconds for r in sitter] == [1.0, 1.0]
    assert sum(r.gpu_seconds for r in sitter) == 0 and sum(r.reserved_seconds for r in sitter) == 2
    assert sum(r.energy_j for r in holder) == pytest.approx(200.0)  # 100 W x 2 s, all its

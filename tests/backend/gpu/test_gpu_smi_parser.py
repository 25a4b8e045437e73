"""The nvidia-smi parser against every real H100 query output in the fixtures."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpuconsole.backend.gpu.smi_parser import (
    MIB,
    QUERY_GPU_FIELDS,
    SmiParseError,
    field_names_from_header,
    parse_apps_csv,
    parse_gpu_csv,
    parse_gpu_line,
)

# The field list of the captured nvidia-smi-query.csv (see tests/fixtures/gpu/h100/README.md).
CAPTURED_FIELDS = [
    "index", "uuid", "name", "pci.bus_id", "driver_version", "memory.used", "memory.total",
    "memory.reserved", "utilization.gpu", "utilization.memory", "power.draw", "power.limit",
    "temperature.gpu", "clocks.sm", "clocks.mem", "fan.speed", "pstate", "mig.mode.current",
]  # fmt: skip
UUID = "GPU-85f63f49-2356-f053-21c3-2eb02bd04522"


def test_nounits_query_of_a_real_h100(h100: Path) -> None:
    (gpu,) = parse_gpu_csv((h100 / "nvidia-smi-query.csv").read_text(), CAPTURED_FIELDS)
    assert gpu.index == 0
    assert gpu.uuid == UUID
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.memory_used_bytes == 0
    assert gpu.memory_total_bytes == 81559 * MIB
    assert gpu.utilization_gpu_percent == 0
    assert gpu.utilization_memory_percent == 0
    assert gpu.power_w == pytest.approx(76.67)
    assert gpu.power_limit_w == pytest.approx(700.0)
    assert gpu.temperature_c == 48
    assert gpu.sm_clock_mhz == 345
    assert gpu.fan_percent is None  # "[N/A]" on an H100: unknown, not 0
    assert gpu.error is None


def test_query_with_header_and_units_parses_like_nounits(h100: Path) -> None:
    text = (h100 / "nvidia-smi-query-header.csv").read_text()
    (with_units,) = parse_gpu_csv(text)
    (plain,) = parse_gpu_csv((h100 / "nvidia-smi-query.csv").read_text(), CAPTURED_FIELDS)
    assert field_names_from_header(text.splitlines()[0])[13] == "clocks.sm"
    assert with_units.power_w == pytest.approx(76.65)  # captured a moment apart
    assert dataclasses.replace(plain, power_w=with_units.power_w) == with_units


def test_query_agrees_with_the_xml_of_the_same_gpu(h100: Path) -> None:
    (gpu,) = parse_gpu_csv((h100 / "nvidia-smi-query.csv").read_text(), CAPTURED_FIELDS)
    xml = ET.parse(h100 / "nvidia-smi-q.xml").getroot().find("gpu")
    assert xml is not None
    assert gpu.name == xml.findtext("product_name")
    assert gpu.uuid == xml.findtext("uuid")
    total = xml.findtext("fb_memory_usage/total")
    assert total is not None
    assert gpu.memory_total_bytes == int(total.split()[0]) * MIB
    assert xml.findtext("fan_speed") == "N/A"


def test_memory_total_agrees_with_nvml_recording(h100: Path) -> None:
    (gpu,) = parse_gpu_csv((h100 / "nvidia-smi-query.csv").read_text(), CAPTURED_FIELDS)
    first = json.loads((h100 / "nvml-recording-h100.jsonl").read_text().splitlines()[0])
    assert gpu.memory_total_bytes == first["mem_total"]


@pytest.mark.parametrize(
    ("marker", "field"),
    [
        ("[N/A]", "fan_percent"),
        ("[Not Supported]", "power_w"),
        ("[Unknown Error]", "temperature_c"),
        ("N/A", "utilization_gpu_percent"),
    ],
)
def test_in_band_markers_become_none(marker: str, field: str) -> None:
    values = {
        "fan_percent": "fan.speed",
        "power_w": "power.draw",
        "temperature_c": "temperature.gpu",
        "utilization_gpu_percent": "utilization.gpu",
    }
    row = dict.fromkeys(QUERY_GPU_FIELDS, "1")
    row.update(index="2", uuid=UUID, name="NVIDIA H100 80GB HBM3")
    row[values[field]] = marker
    gpu = parse_gpu_line(", ".join(row[f] for f in QUERY_GPU_FIELDS))
    assert getattr(gpu, field) is None
    assert gpu.index == 2
    assert gpu.memory_used_bytes == MIB  # neighbours still parsed


def test_lost_gpu_line_names_the_gpu() -> None:
    line = "3, " + UUID + ", NVIDIA H100 80GB HBM3" + ", [GPU is lost]" * 9
    gpu = parse_gpu_line(line)
    assert gpu.error == "GPU 3 fell off the bus"
    assert gpu.memory_used_bytes is None


@pytest.mark.parametrize(
    "line",
    [
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "0, GPU-1, NVIDIA H100",
        "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error",
    ],
)
def test_non_query_lines_are_rejected_not_misread(line: str) -> None:
    with pytest.raises(SmiParseError):
        parse_gpu_line(line)


def test_compute_apps_busy_and_idle(h100: Path) -> None:
    busy = parse_apps_csv((h100 / "nvidia-smi-apps-busy.csv").read_text(), {UUID: 0})
    assert [(p.pid, p.gpu_index, p.process_name) for p in busy] == [(416, 0, "python3")]
    assert busy[0].used_memory_bytes == 20998 * MIB
    assert parse_apps_csv((h100 / "nvidia-smi-apps-idle.csv").read_text(), {UUID: 0}) == ()


def test_compute_apps_with_comma_in_name_and_unknown_memory() -> None:
    (proc,) = parse_apps_csv(f"77, /opt/a,b/train, [N/A], {UUID}\n", {})
    assert proc.process_name == "/opt/a,b/train"
    assert proc.used_memory_bytes is None
    assert proc.gpu_index == -1  # the stream source resolves it once the GPU's UUID is known

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
    parse_gpu_line_general,
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


# -- the stream's fast path gives what the general parser gives ------------------------------


def _same_as_general(line: str) -> None:
    """``parse_gpu_line`` (the fast path where it applies) against the general parser: the
    same sample, or the same SmiParseError."""
    try:
        expected = parse_gpu_line_general(line)
    except SmiParseError as exc:
        with pytest.raises(SmiParseError) as raised:
            parse_gpu_line(line)
        assert str(raised.value) == str(exc)
        return
    assert parse_gpu_line(line) == expected


def test_fast_path_matches_the_general_parser_on_a_recorded_stream(h100: Path) -> None:
    from gpuconsole.backend.gpu.smi_parser import _parse_stream_line

    lines = (h100 / "nvidia-smi-lms250-stream.csv").read_text().splitlines()
    assert len(lines) > 100
    for line in lines:
        fast = _parse_stream_line(line)
        assert fast is not None, line  # the recorded lines do take the fast path
        assert fast == parse_gpu_line_general(line)
        assert parse_gpu_line(line) == fast


STEADY = (
    "0, GPU-85f63f49-2356-f053-21c3-2eb02bd04522, NVIDIA H100 80GB HBM3, 20480, 81559, 100, 45, "
    "350.00, 700.00, 62, 1980, [N/A]"
)


def _with(column: str, value: str, line: str = STEADY) -> str:
    cells = line.split(", ")
    cells[QUERY_GPU_FIELDS.index(column)] = value
    return ", ".join(cells)


@pytest.mark.parametrize(
    "line",
    [
        STEADY,
        STEADY.replace("[N/A]", "30"),
        *(_with(f, m) for f in QUERY_GPU_FIELDS for m in ("[N/A]", "[Not Supported]", "N/A", "")),
        *(
            _with(f, m)
            for f in QUERY_GPU_FIELDS
            if f not in ("uuid", "name")
            for m in ("nan", "inf", "-inf", "1e400", "1e308")
        ),
        _with("power.draw", "350.00 W"),
        _with("memory.used", "20480 MiB"),
        _with("utilization.gpu", "100 %"),
        _with("clocks.sm", "1980 MHz"),
        _with("temperature.gpu", " 62 "),
        _with("memory.used", "1e400"),  # inf MiB: no reading
        _with("memory.total", "2E302"),  # finite, but not in bytes
        _with("power.draw", "nan"),
        _with("power.limit", "-inf"),
        _with("fan.speed", "1_000"),
        _with("utilization.memory", "\u0663"),  # an Arabic-Indic 3: float() reads it
        _with("temperature.gpu", "\x1c62"),  # isspace() yet not float()'s whitespace
        _with("temperature.gpu", "62\u2003"),  # a unicode space around the number
        _with("index", "nan"),
        _with("index", "[N/A]"),
        _with("index", "2.6"),
        _with("uuid", "[GPU requires reset]"),
        "1, " + ", ".join(["[GPU requires reset]"] * 11),
        "3, GPU-x, NVIDIA H100 80GB HBM3" + ", [GPU is lost]" * 9,
        _with("fan.speed", "[GPU Is Lost]"),  # markers in any case
        _with("name", "NVIDIA GPU REQUIRES RESET"),  # a marker without brackets
        STEADY + ", 1",  # a column too many
        STEADY.rsplit(",", 1)[0],  # one too few
        STEADY.replace(", ", ","),
        ",,,,,,,,,,,",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error",
    ],
)
def test_fast_path_matches_the_general_parser_on_odd_values(line: str) -> None:
    _same_as_general(line)


def test_other_field_orders_take_the_general_path() -> None:
    fields = tuple(reversed(QUERY_GPU_FIELDS))
    line = ", ".join(reversed(STEADY.split(", ")))
    assert parse_gpu_line(line, fields) == parse_gpu_line(STEADY)

"""Parse ``nvidia-smi --query-gpu`` / ``--query-compute-apps`` CSV into GPU values.

nvidia-smi is the only telemetry a remote host offers without installing anything, and it marks
missing readings in-band (``[N/A]``, ``[Not Supported]``, ``[Unknown Error]``, ``[GPU is lost]``).
Those must become ``None`` rather than a crash or a 0, and a "GPU is lost" reading must say which
GPU fell off the bus. Both ``nounits`` and with-units output are accepted so a header captured by
hand parses the same as the stream.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gpuconsole.backend.gpu.models import GpuProcess, GpuSample

MIB = 1024 * 1024

#: The fields the stream asks for, in order. ``parse_gpu_line`` defaults to this order.
QUERY_GPU_FIELDS: tuple[str, ...] = (
    "index",
    "uuid",
    "name",
    "memory.used",
    "memory.total",
    "utilization.gpu",
    "utilization.memory",
    "power.draw",
    "power.limit",
    "temperature.gpu",
    "clocks.sm",
    "fan.speed",
)

QUERY_APPS_FIELDS: tuple[str, ...] = ("pid", "process_name", "used_memory", "gpu_uuid")

#: nvidia-smi echoes some fields under a longer name in CSV headers.
_ALIASES = {
    "clocks.current.sm": "clocks.sm",
    "clocks.current.memory": "clocks.mem",
    "gpu_name": "name",
    "gpu_uuid": "uuid",
}

_LOST_MARKERS = ("gpu is lost", "gpu requires reset")
_STREAM_COLUMNS = len(QUERY_GPU_FIELDS)
_isfinite = math.isfinite


class SmiParseError(ValueError):
    """A line is not query output (an nvidia-smi error message, a truncated line)."""


def query_gpu_args(fields: Sequence[str] = QUERY_GPU_FIELDS) -> list[str]:
    return [f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]


def query_apps_args() -> list[str]:
    return [f"--query-compute-apps={','.join(QUERY_APPS_FIELDS)}", "--format=csv,noheader,nounits"]


def _is_missing(raw: str) -> bool:
    return not raw or (raw.startswith("[") and raw.endswith("]")) or raw == "N/A"


def _number(raw: str) -> float | None:
    """``"76.67"`` or ``"76.67 W"`` -> 76.67; in-band markers -> None."""
    raw = raw.strip()
    if _is_missing(raw):
        return None
    head = raw.split(" ", 1)[0]
    try:
        value = float(head)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(raw: str) -> int | None:
    value = _number(raw)
    return None if value is None else round(value)


def _mib_to_bytes(raw: str) -> int | None:
    return _mib_value_to_bytes(_number(raw))


def _mib_value_to_bytes(value: float | None) -> int | None:
    if value is None or not math.isfinite(value * MIB):  # "2E302" MiB is no reading either
        return None
    return round(value * MIB)


def field_names_from_header(header: str) -> tuple[str, ...]:
    """``"memory.used [MiB], clocks.current.sm [MHz]"`` -> ``("memory.used", "clocks.sm")``."""
    names = []
    for column in header.split(","):
        name = column.strip().split(" [", 1)[0].strip()
        names.append(_ALIASES.get(name, name))
    return tuple(names)


def parse_gpu_line(line: str, fields: Sequence[str] = QUERY_GPU_FIELDS) -> GpuSample:
    """One CSV line of ``--query-gpu`` -> GpuSample; raises SmiParseError on anything else."""
    if fields is QUERY_GPU_FIELDS:
        sample = _parse_stream_line(line)
        if sample is not None:
            return sample
    return parse_gpu_line_general(line, fields)


def _plain_number(raw: str) -> float | None:
    """``_number`` for one column as split (spaces around it): ``float()`` first, which takes
    the same whitespace ``str.strip`` removes and succeeds only on a bare number — where
    ``_number`` gives the same value; anything else (markers, units) goes through ``_number``."""
    try:
        value = float(raw)
    except ValueError:
        return _number(raw)
    return value if _isfinite(value) else None


def _parse_stream_line(line: str) -> GpuSample | None:
    """The stream's line (``QUERY_GPU_FIELDS`` in order, no GPU lost or needing a reset),
    parsed without the general path's dict and per-field helpers: the recorder parses one per
    GPU per second on every host. None for anything else, which ``parse_gpu_line_general``
    parses (or rejects) — the results are the same either way (tests/gpu compare the two)."""
    columns = line.split(",")
    if len(columns) != _STREAM_COLUMNS:
        return None
    low = line.lower()
    if _LOST_MARKERS[0] in low or _LOST_MARKERS[1] in low:
        return None
    index_, uuid, name, used, total, util, mem_util, power, limit, temp, clock, fan = columns
    try:  # the usual line: every reading a plain number (but the fan's: "[N/A]" on an H100)
        # nvidia-smi prints these as whole numbers: int() takes them as they are (and the
        # spaces around them), where float() and round() took twice the calls; a fraction
        # ("20480.5") is not an int: the column path parses it, with the same result.
        index = int(index_)
        used_bytes = int(used) * MIB
        total_bytes = int(total) * MIB
        util_ = int(util)
        mem_util_ = int(mem_util)
        power_ = float(power)
        limit_ = float(limit)
        temp_ = int(temp)
        clock_ = int(clock)
    except ValueError:
        return _parse_stream_columns(columns)
    if not _isfinite(power_ + limit_):  # a sum is finite only when both terms are
        return _parse_stream_columns(columns)
    # "[N/A]" (an H100 has no fan), "[Not Supported]": a marker
    fan_ = _number(fan) if fan.endswith("]") else _plain_number(fan)
    uuid = uuid.strip()
    name = name.strip()
    return GpuSample(  # positional, in the order of GpuSample's fields (faster than keywords)
        index,
        "" if _is_missing(uuid) else uuid,
        "" if _is_missing(name) else name,
        used_bytes,
        total_bytes,
        util_,
        mem_util_,
        power_,
        limit_,
        temp_,
        clock_,
        None if fan_ is None else round(fan_),
    )


def _parse_stream_columns(columns: list[str]) -> GpuSample | None:
    """``_parse_stream_line`` for a line with markers, units or odd numbers: column by column
    (a GPU whose power or utilization reads "[N/A]" still stays off the general path)."""
    index_, uuid, name, used, total, util, mem_util, power, limit, temp, clock, fan = columns
    index = _plain_number(index_)
    if index is None:
        return None
    uuid = uuid.strip()
    name = name.strip()
    used_mib = _plain_number(used)
    total_mib = _plain_number(total)
    util_ = _plain_number(util)
    mem_util_ = _plain_number(mem_util)
    temp_ = _plain_number(temp)
    clock_ = _plain_number(clock)
    fan_ = _plain_number(fan)
    return GpuSample(
        index=round(index),
        uuid="" if _is_missing(uuid) else uuid,
        name="" if _is_missing(name) else name,
        memory_used_bytes=_mib_value_to_bytes(used_mib),
        memory_total_bytes=_mib_value_to_bytes(total_mib),
        utilization_gpu_percent=None if util_ is None else round(util_),
        utilization_memory_percent=None if mem_util_ is None else round(mem_util_),
        power_w=_plain_number(power),
        power_limit_w=_plain_number(limit),
        temperature_c=None if temp_ is None else round(temp_),
        sm_clock_mhz=None if clock_ is None else round(clock_),
        fan_percent=None if fan_ is None else round(fan_),
    )


def parse_gpu_line_general(line: str, fields: Sequence[str] = QUERY_GPU_FIELDS) -> GpuSample:
    """``parse_gpu_line`` for any field order (a header's); the stream's own lines take a
    faster path with the same results."""
    columns = [c.strip() for c in line.split(",")]
    if len(columns) != len(fields):
        raise SmiParseError(
            f"expected {len(fields)} columns from nvidia-smi, got: {line.strip()!r}"
        )
    row = {_ALIASES.get(f, f): v for f, v in zip(fields, columns, strict=True)}
    index = _int(row.get("index", ""))
    if index is None:
        raise SmiParseError(f"no GPU index in nvidia-smi line: {line.strip()!r}")
    markers = {m for c in columns for m in _LOST_MARKERS if m in c.lower()}
    name = row.get("name", "")
    uuid = row.get("uuid", "")
    return GpuSample(
        index=index,
        uuid="" if _is_missing(uuid) else uuid,
        name="" if _is_missing(name) else name,
        memory_used_bytes=_mib_to_bytes(row.get("memory.used", "")),
        memory_total_bytes=_mib_to_bytes(row.get("memory.total", "")),
        utilization_gpu_percent=_int(row.get("utilization.gpu", "")),
        utilization_memory_percent=_int(row.get("utilization.memory", "")),
        power_w=_number(row.get("power.draw", "")),
        power_limit_w=_number(row.get("power.limit", "")),
        temperature_c=_int(row.get("temperature.gpu", "")),
        sm_clock_mhz=_int(row.get("clocks.sm", "")),
        fan_percent=_int(row.get("fan.speed", "")),
        error=_lost_error(index, markers),
    )


def _lost_error(index: int, markers: set[str]) -> str | None:
    if "gpu is lost" in markers:
        return f"GPU {index} fell off the bus"
    if markers:
        return f"GPU {index} needs a reset (nvidia-smi: GPU requires reset)"
    return None


def parse_gpu_csv(text: str, fields: Sequence[str] = QUERY_GPU_FIELDS) -> tuple[GpuSample, ...]:
    """A whole ``--query-gpu`` output; a header line (``--format=csv``) overrides ``fields``."""
    samples: list[GpuSample] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("index") and not samples:
            fields = field_names_from_header(line)
            continue
        samples.append(parse_gpu_line(line, fields))
    return tuple(samples)


def parse_apps_line(line: str, uuid_to_index: Mapping[str, int]) -> GpuProcess:
    """One ``--query-compute-apps=pid,process_name,used_memory,gpu_uuid`` line.

    Split from both ends so a process name with a comma in it still parses.
    """
    columns = [c.strip() for c in line.split(",")]
    if len(columns) < 4:
        raise SmiParseError(f"expected 4 columns from nvidia-smi, got: {line.strip()!r}")
    pid = _int(columns[0])
    if pid is None:
        raise SmiParseError(f"no PID in nvidia-smi line: {line.strip()!r}")
    uuid = columns[-1]
    name = ",".join(line.split(",")[1:-2]).strip()  # a name's own spaces kept
    return GpuProcess(
        pid=pid,
        gpu_index=uuid_to_index.get(uuid, -1),
        gpu_uuid=uuid,
        used_memory_bytes=_mib_to_bytes(columns[-2]),
        process_name=None if _is_missing(name) else name,
    )


def parse_apps_csv(text: str, uuid_to_index: Mapping[str, int]) -> tuple[GpuProcess, ...]:
    """Whole compute-apps output; empty output means no process (not an error)."""
    procs = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("pid"):
            continue
        if "no running" in line.lower():
            continue
        procs.append(parse_apps_line(line, uuid_to_index))
    return tuple(procs)

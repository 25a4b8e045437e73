"""Property tests for the nvidia-smi CSV parsers (``--query-gpu`` and ``--query-compute-apps``).

Any line — in-band markers, garbage, a line cut short — gives a sample or SmiParseError, never
another exception; readings written the way nvidia-smi writes them read back the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpuconsole.backend.gpu.smi_parser import (
    MIB,
    QUERY_APPS_FIELDS,
    QUERY_GPU_FIELDS,
    SmiParseError,
    field_names_from_header,
    parse_apps_csv,
    parse_apps_line,
    parse_gpu_csv,
    parse_gpu_line,
    parse_gpu_line_general,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MARKERS = [
    "[N/A]",
    "[Not Supported]",
    "[Unknown Error]",
    "[GPU is lost]",
    "[GPU requires reset]",
    "N/A",
    "",
]
NUMBERS = ["nan", "inf", "-inf", "1e400", "NaN", "Infinity", "-0", "1_000", "0x10", "٣"]

cell = st.one_of(
    st.sampled_from(MARKERS + NUMBERS),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0, max_value=1e6).map(lambda f: f"{f:.2f} W"),
    st.text(alphabet=st.characters(blacklist_characters=","), max_size=12),
)


def _line(cells: list[str], sep: str = ", ") -> str:
    return sep.join(cells)


gpu_line = st.one_of(
    st.text(),
    st.lists(cell, min_size=len(QUERY_GPU_FIELDS), max_size=len(QUERY_GPU_FIELDS)).map(_line),
    st.lists(cell, min_size=0, max_size=len(QUERY_GPU_FIELDS) + 2).map(_line),
)


@FAST
@given(gpu_line)
@example("nan, GPU-x, A100, 1, 2, 3, 4, 5, 6, 7, 8, 9")  # round(nan) raised ValueError
@example("0, GPU-x, A100, inf, 2, 3, 4, 5, 6, 7, 8, 9")  # round(inf) raised OverflowError
@example("0, GPU-x, A100, 1, 2, 1e400, 4, 5, 6, 7, 8, 9")
@example("0, [GPU requires reset], [GPU requires reset], " + ", ".join(["[N/A]"] * 9))
@example("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
def test_gpu_line_gives_a_sample_or_smi_parse_error(line: str) -> None:
    try:
        sample = parse_gpu_line(line)
    except SmiParseError as exc:
        assert str(exc)
        return
    assert isinstance(sample.index, int)
    for value in (
        sample.memory_used_bytes,
        sample.memory_total_bytes,
        sample.utilization_gpu_percent,
        sample.temperature_c,
        sample.fan_percent,
        sample.sm_clock_mhz,
    ):
        assert value is None or isinstance(value, int)
    for number in (sample.power_w, sample.power_limit_w):
        assert number is None or number == number  # never NaN


def _outcome(parse: Callable[[str], object], line: str) -> object:
    try:
        return parse(line)
    except SmiParseError as exc:
        return ("SmiParseError", str(exc))


plain = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda f: f"{f:.2f}"),
)


@st.composite
def mostly_plain_line(draw: st.DrawFn) -> str:
    """A stream line as nvidia-smi prints one, with up to two odd cells anywhere."""
    cells = [draw(plain), "GPU-85f63f49", "NVIDIA H100 80GB HBM3"]
    cells += [draw(plain) for _ in QUERY_GPU_FIELDS[3:]]
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        cells[draw(st.integers(min_value=0, max_value=len(cells) - 1))] = draw(cell)
    return ", ".join(cells)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        gpu_line,
        st.lists(cell, min_size=12, max_size=12).map(lambda c: ",".join(c)),
        mostly_plain_line(),
    )
)
@example("0, GPU-x, A100, 1, 2, 3, 4, 5, 6, 7, inf, 9")  # the last reading checked for finite
@example("0, GPU-x, A100, 1, 2, 3, 4, 5, 6, 7, nan, [N/A]")
@example("0, GPU-x, A100, 1e308, 1e308, 3, 4, 5, 6, 7, 8, 9")  # finite, their sum is not
@example("0, GPU-x, A100, 1, 2, 3, 4, 5 W, 6, 7, 8, \x1c9")
@example("0, GPU-x, A100, 1, 2, 3, 4, 5, 6, \u0663, 8\u2003, [GPU Is Lost]")
@example("0, GPU-x, \u03a3GPU IS LOST\u03a3, 1, 2, 3, 4, 5, 6, 7, 8, 9")
def test_the_fast_path_parses_as_the_general_parser(line: str) -> None:
    """The stream's fast path (``parse_gpu_line`` with the default fields) and the general
    parser agree on every line: the same sample, or the same SmiParseError."""
    assert _outcome(parse_gpu_line, line) == _outcome(parse_gpu_line_general, line)


@FAST
@given(gpu_line, st.integers(min_value=0, max_value=200))
def test_truncated_gpu_line(line: str, cut: int) -> None:
    with contextlib.suppress(SmiParseError):
        parse_gpu_line(line[:cut])


@FAST
@given(st.text())
def test_gpu_csv_gives_samples_or_smi_parse_error(text: str) -> None:
    with contextlib.suppress(SmiParseError):
        parse_gpu_csv(text)


@FAST
@given(st.text())
def test_header_gives_one_name_per_column(header: str) -> None:
    assert len(field_names_from_header(header)) == len(header.split(","))


reading = st.one_of(st.none(), st.integers(min_value=0, max_value=10**6))
watts = st.one_of(st.none(), st.integers(min_value=0, max_value=100_000).map(lambda c: c / 100))


@FAST
@given(
    st.integers(min_value=0, max_value=63),
    st.from_regex(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}", fullmatch=True),
    st.sampled_from(["NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-16GB", "[N/A]"]),
    st.lists(reading, min_size=4, max_size=4),
    st.lists(watts, min_size=2, max_size=2),
    st.lists(reading, min_size=3, max_size=3),
    st.sampled_from([*MARKERS[:5], "N/A"]),
    st.booleans(),
)
def test_gpu_readings_round_trip(
    index: int,
    uuid: str,
    name: str,
    memory: list[int | None],
    power: list[float | None],
    rest: list[int | None],
    marker: str,
    units: bool,
) -> None:
    """A line written as nvidia-smi writes it (nounits, or with units) reads back the same;
    a missing reading is None, never 0."""
    used, total, util, util_mem = memory
    temp, clock, fan = rest
    unit = {"mem": " MiB", "pct": " %", "w": " W", "c": "", "mhz": " MHz"}

    def cell(value: object, kind: str) -> str:
        if value is None:
            return marker
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        return text + (unit[kind] if units else "")

    cells = [
        str(index),
        uuid,
        name,
        cell(used, "mem"),
        cell(total, "mem"),
        cell(util, "pct"),
        cell(util_mem, "pct"),
        cell(power[0], "w"),
        cell(power[1], "w"),
        cell(temp, "c"),
        cell(clock, "mhz"),
        cell(fan, "pct"),
    ]
    sample = parse_gpu_line(", ".join(cells))
    assert sample.index == index
    assert sample.uuid == uuid
    assert sample.name == ("" if name == "[N/A]" else name)
    assert sample.memory_used_bytes == (None if used is None else used * MIB)
    assert sample.memory_total_bytes == (None if total is None else total * MIB)
    assert sample.utilization_gpu_percent == util
    assert sample.utilization_memory_percent == util_mem
    assert sample.power_w == power[0]
    assert sample.power_limit_w == power[1]
    assert (sample.temperature_c, sample.sm_clock_mhz, sample.fan_percent) == (temp, clock, fan)
    lost = marker in ("[GPU is lost]", "[GPU requires reset]") and None in (
        *memory,
        *power,
        *rest,
    )
    assert (sample.error is not None) == lost
    if lost:
        assert str(index) in (sample.error or "")


# -- compute apps -------------------------------------------------------------------------

apps_line = st.one_of(
    st.text(),
    st.lists(cell, min_size=0, max_size=6).map(_line),
)


@FAST
@given(apps_line, st.integers(min_value=0, max_value=100))
@example("nan, python, 100 MiB, GPU-x", 100)
@example("inf, python, 100 MiB, GPU-x", 100)
@example("12, python, inf, GPU-x", 100)
@example("12, a , b, 5, GPU-x", 100)
@example("No running processes found", 100)
def test_apps_line_gives_a_process_or_smi_parse_error(line: str, cut: int) -> None:
    for text in (line, line[:cut]):
        try:
            proc = parse_apps_line(text, {"GPU-x": 0})
        except SmiParseError:
            continue
        assert isinstance(proc.pid, int)
        assert proc.used_memory_bytes is None or isinstance(proc.used_memory_bytes, int)


@FAST
@given(st.text())
def test_apps_csv_gives_processes_or_smi_parse_error(text: str) -> None:
    with contextlib.suppress(SmiParseError):
        parse_apps_csv(text, {})


@FAST
@given(
    st.integers(min_value=1, max_value=2**22),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30).map(
        str.strip
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    st.from_regex(r"GPU-[0-9a-f]{8}", fullmatch=True),
    st.dictionaries(st.from_regex(r"GPU-[0-9a-f]{8}", fullmatch=True), st.integers(0, 7)),
)
def test_apps_line_round_trips(
    pid: int, name: str, used: int | None, uuid: str, index: dict[str, int]
) -> None:
    """Commas in a process name survive (the line is split from both ends)."""
    line = ", ".join([str(pid), name, "[N/A]" if used is None else str(used), uuid])
    (proc,) = parse_apps_csv(line + "\n", index) or (None,)
    if proc is None:  # a name like "pid..." or "no running" reads as a header / notice
        assert name.lower().startswith("pid") or "no running" in line.lower()
        return
    assert proc.pid == pid
    assert proc.gpu_uuid == uuid
    assert proc.gpu_index == index.get(uuid, -1)
    assert proc.used_memory_bytes == (None if used is None else used * MIB)
    missing = name in ("", "N/A") or (name.startswith("[") and name.endswith("]"))
    assert proc.process_name == (None if missing else name)


def test_fields_are_what_the_stream_asks_for() -> None:
    assert QUERY_APPS_FIELDS == ("pid", "process_name", "used_memory", "gpu_uuid")
    assert QUERY_GPU_FIELDS[0] == "index"

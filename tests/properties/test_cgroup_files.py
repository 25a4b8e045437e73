"""Property tests for the cgroup file parsers (mountinfo, cpu.stat / cpuacct.usage, memory.*).

Whatever the files hold — garbage, a half-written line, ``max``, huge numbers — the reader gives
stats or leaves the container out, never an exception; well-formed files read back the numbers
written into them.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpuconsole.backend.docker.cgroup_stats import (
    CgroupMounts,
    CgroupStatsReader,
    _int_of,
    _stat_of,
    find_mounts,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CID = "ab" * 32
GIB = 1024**3


class FakeMachine:
    """Answers read_files from a dict keyed by file name (the last path component)."""

    is_local = True

    def __init__(self, files: dict[str, str | None]) -> None:
        self.files = files

    def read_files(self, paths: list[str]) -> dict[str, str]:
        out = {}
        for path in paths:
            text = self.files.get(path.rsplit("/", 1)[1])
            if text is not None:
                out[path] = text
        return out


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


mount_line = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda left, fs, src, opts: f"{left} - {fs} {src} {opts}".rstrip(),
        st.text(max_size=40),
        st.sampled_from(["cgroup", "cgroup2", "tmpfs", ""]),
        st.sampled_from(["cgroup", "", "none"]),
        st.sampled_from(["rw,cpu,cpuacct", "rw,memory", "rw", ""]),
    ),
)


@FAST
@given(st.lists(mount_line, max_size=6).map("\n".join))
@example("1 2 0:1 / /sys/fs/cgroup rw - cgroup2")  # no source after the type: ValueError
@example(" - ")
def test_find_mounts_never_raises(text: str) -> None:
    mounts = find_mounts(text)
    assert mounts is None or mounts.version in (1, 2)


@FAST
@given(st.sampled_from([1, 2]), st.text(alphabet="/abcxyz,", min_size=1, max_size=12))
def test_find_mounts_finds_what_was_written(version: int, where: str) -> None:
    point = "/" + where.strip("/").replace(" ", "")
    if version == 2:
        text = f"25 30 0:23 / {point} rw,relatime shared:4 - cgroup2 cgroup2 rw\n"
        assert find_mounts(text) == CgroupMounts(2, Path(point), Path(point))
    else:
        text = (
            f"32 31 0:29 / {point}/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"
            f"36 31 0:33 / {point}/memory rw - cgroup cgroup rw,memory\n"
        )
        assert find_mounts(text) == CgroupMounts(1, Path(f"{point}/cpu"), Path(f"{point}/memory"))


@FAST
@given(st.one_of(st.none(), st.text(), st.integers().map(str)))
def test_int_of(text: str | None) -> None:
    value = _int_of(text)
    assert value is None or isinstance(value, int)


@FAST
@given(st.integers(min_value=0, max_value=2**64), st.sampled_from(["", "\n", "\n\n"]))
def test_int_of_round_trips(n: int, end: str) -> None:
    assert _int_of(f"{n}{end}") == n
    assert _int_of(f"max{end}") is None


stat_key = st.from_regex(r"[a-z_]{1,20}", fullmatch=True)


@FAST
@given(st.one_of(st.none(), st.text()), stat_key)
def test_stat_of_never_raises(text: str | None, key: str) -> None:
    value = _stat_of(text, key)
    assert value is None or isinstance(value, int)


@FAST
@given(st.dictionaries(stat_key, st.integers(min_value=0, max_value=2**64), max_size=8), stat_key)
def test_stat_of_reads_back_a_flat_keyed_file(values: dict[str, int], key: str) -> None:
    text = "".join(f"{k} {v}\n" for k, v in values.items())
    assert _stat_of(text, key) == values.get(key)


file_text = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["max\n", "", "\n", "-1\n", "9" * 40 + "\n", "usage_usec\n", "usage_usec x"]),
    st.integers(min_value=-(2**64), max_value=2**64).map(lambda n: f"{n}\n"),
)


@FAST
@given(
    st.sampled_from([1, 2]),
    st.lists(file_text, min_size=4, max_size=4),
    st.lists(file_text, min_size=4, max_size=4),
    st.one_of(st.none(), st.integers(min_value=1, max_value=2**50)),
)
def test_reader_never_raises_on_any_file_content(
    version: int, first: list[str | None], second: list[str | None], host_memory: int | None
) -> None:
    names = (
        ("cpuacct.usage", "memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat")
        if version == 1
        else ("cpu.stat", "memory.current", "memory.max", "memory.stat")
    )
    machine = FakeMachine(dict(zip(names, first, strict=True)))
    clock = Clock()
    root = Path("/sys/fs/cgroup")
    reader = CgroupStatsReader(
        CgroupMounts(version, root, root),
        host_memory,
        clock=clock,
        machine=machine,  # type: ignore[arg-type]
    )
    for texts in (first, second):
        machine.files = dict(zip(names, texts, strict=True))
        out = reader.read([CID])
        clock.now += 1.0
        assert set(out) <= {CID}
        if CID in out:
            stats = out[CID]
            assert stats.cpu_percent is None or stats.cpu_percent >= 0


@FAST
@given(
    st.integers(min_value=0, max_value=2**50),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**40),
    st.one_of(st.none(), st.integers(min_value=6 * 2**20, max_value=2**45)),
    st.integers(min_value=1, max_value=2**45),
)
def test_v2_files_read_back(
    usec: int, delta_usec: int, current: int, inactive: int, limit: int | None, host: int
) -> None:
    machine = FakeMachine(
        {
            "cpu.stat": f"usage_usec {usec}\nuser_usec 1\nsystem_usec 2\n",
            "memory.current": f"{current}\n",
            "memory.max": "max\n" if limit is None else f"{limit}\n",
            "memory.stat": f"anon 1\nfile 2\ninactive_file {inactive}\n",
        }
    )
    clock = Clock()
    root = Path("/sys/fs/cgroup")
    reader = CgroupStatsReader(CgroupMounts(2, root, root), host, clock=clock, machine=machine)  # type: ignore[arg-type]
    first = reader.read([CID])[CID]
    assert first.cpu_percent is None
    assert first.memory_bytes == (current - inactive if inactive < current else current)
    assert first.memory_limit_bytes == (host if limit is None else min(limit, host))
    machine.files["cpu.stat"] = f"usage_usec {usec + delta_usec}\n"
    clock.now += 2.0
    second = reader.read([CID])[CID]
    assert second.cpu_percent is not None
    assert abs(second.cpu_percent - delta_usec * 1000 / 2e9 * 100) < 1e-6 * max(1, delta_usec)

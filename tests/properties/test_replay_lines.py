"""Property tests for GPU recordings (``--gpu-replay`` / ``gpus --replay`` JSONL).

Any file gives frames or a ReplayError, never another exception. Read leniently (as the CLI and
the console do), every good sample plays and every other line is named by its number, once.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpuconsole.backend.gpu.replay import ReplayError, load_frames

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

opt_int = st.one_of(st.none(), st.integers(0, 2**40))


@st.composite
def sample_row(draw: st.DrawFn, t: float, index: int) -> dict[str, Any]:
    return {
        "t": t,
        "index": index,
        "uuid": f"GPU-{index}",
        "name": draw(st.text(max_size=10)),
        "mem_used": draw(opt_int),
        "mem_total": draw(opt_int),
        "util_gpu": draw(st.one_of(st.none(), st.integers(0, 100))),
        "power_mw": draw(st.one_of(st.none(), st.integers(0, 10**6))),
        "temp_c": draw(st.one_of(st.none(), st.integers(0, 120))),
        "fan_percent": None,
        "procs": draw(
            st.lists(
                st.fixed_dictionaries({"pid": st.integers(1, 2**22), "used": opt_int}),
                max_size=2,
            )
        ),
    }


bad_line = st.one_of(
    st.text(max_size=30).filter(lambda s: s.strip() and not s.strip().startswith("{")),
    st.just('{"t": 1, "index"'),  # cut off
    st.just('{"t": 1}'),  # no index
    st.just('{"t": "soon", "index": 0}'),
    st.just('{"t": 1, "index": 0, "mem_used": "lots"}'),
    st.just('{"t": 1, "index": 0, "temp_c": 1e400}'),
    st.just('{"t": 1, "index": 0, "power_mw": NaN}'),
    st.just('{"t": 1, "index": 0, "procs": {"pid": 1}}'),
    st.just("[1, 2, 3]"),
)


@st.composite
def recording(draw: st.DrawFn) -> tuple[list[str], set[int], int]:
    """Lines of rounds of ``gpus`` GPUs with bad lines mixed in: (lines, bad line numbers,
    good samples)."""
    gpus = draw(st.integers(1, 3))
    lines: list[str] = []
    bad: set[int] = set()
    good = 0
    for round_ in range(draw(st.integers(0, 4))):
        for index in range(gpus):
            if draw(st.integers(0, 4)) == 0:
                lines.append(draw(bad_line))
                bad.add(len(lines))
            lines.append(json.dumps(draw(sample_row(1000.0 + round_, index))))
            good += 1
    if draw(st.booleans()):
        lines.append(json.dumps(draw(sample_row(2000.0, 0)))[: draw(st.integers(1, 20))])
        bad.add(len(lines))  # the recorder was killed mid-line
    return lines, bad, good


@FAST
@given(recording())
def test_bad_lines_are_named_and_the_good_ones_play(case: tuple[list[str], set[int], int]) -> None:
    lines, bad, good = case
    skipped: list[str] = []
    try:
        frames = load_frames(lines, skipped)
    except ReplayError as exc:
        assert good == 0 and "no samples" in str(exc)
        return
    assert sum(len(f.gpus) for f in frames) == good
    assert [int(s.split(":")[0].removeprefix("line ")) for s in skipped] == sorted(bad)
    offsets = [f.offset for f in frames]
    assert offsets[0] == 0.0 and offsets == sorted(offsets)
    with pytest.raises(ReplayError, match=f"line {min(bad)} ") if bad else nullcontext():
        load_frames(lines)  # the strict reader stops at the first bad line, by number


@FAST
@given(st.lists(st.one_of(st.text(max_size=40), bad_line), max_size=6))
@example(['{"t": 1, "index": 0, "procs": [{"pid": "x"}]}'])
@example(['{"t": Infinity, "index": 0}'])
@example(['{"t": 1, "index": 1e400}'])
def test_any_lines_give_frames_or_a_replay_error(lines: list[str]) -> None:
    for skipped in (None, []):
        try:
            load_frames(lines, skipped)
        except ReplayError as exc:
            assert "line" in str(exc) or "no samples" in str(exc)

"""Fleet hosts refresh on one beat, so the console redraws once per beat, not once per host."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from gpuconsole.monitor.host_monitor import on_the_beat


@given(
    now=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    interval=st.sampled_from([0.5, 1.0, 2.0, 5.0, 60.0]),
)
def test_every_host_lands_on_the_same_beat_never_too_soon(now: float, interval: float) -> None:
    wait = on_the_beat(now, interval)
    assert interval / 4 - 1e-6 <= wait <= interval * 1.25 + 1e-6
    beats = (now + wait) / interval
    assert math.isclose(beats, round(beats), abs_tol=1e-6 * max(1.0, beats))


def test_two_hosts_whose_refreshes_end_apart_meet_on_the_next_beat() -> None:
    # One host's refresh ended 0.1 s into the beat, another's 1.3 s in (a slow link).
    assert 100.1 + on_the_beat(100.1, 2.0) == 102.0
    assert 101.3 + on_the_beat(101.3, 2.0) == 102.0

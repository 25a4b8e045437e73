"""History ring buffers: bounded, immutable views, gaps kept, duplicates ignored."""

from __future__ import annotations

import pytest

from gpuconsole.backend.gpu.history import GpuHistory
from gpuconsole.backend.gpu.models import GpuSample, GpuSnapshot, GpuSourceState


def snap(t: float, power: float | None, host: str = "local") -> GpuSnapshot:
    gpus = (
        GpuSample(0, "GPU-a", "H100", power_w=power, temperature_c=40),
        GpuSample(1, "GPU-b", "H100", power_w=2 * power if power else None),
    )
    return GpuSnapshot(host, "nvml", GpuSourceState.OK, t, gpus)


def test_default_keeps_ten_minutes_at_one_hertz() -> None:
    history = GpuHistory()
    for t in range(700):
        history.append(snap(float(t), float(t)))
    power = history.series("local", "GPU-a", "power_w")
    assert len(power) == 601  # the last 10 minutes, not the whole run
    assert power[0] == 99.0 and power[-1] == 699.0
    assert history.timestamps("local", "GPU-a")[-1] == 699.0
    assert history.series("local", "GPU-b", "power_w")[-1] == 1398.0


def test_capacity_follows_the_configured_rate() -> None:
    assert GpuHistory(interval=0.25).capacity == 2401
    with pytest.raises(ValueError):
        GpuHistory(interval=0)


def test_series_is_an_immutable_snapshot() -> None:
    history = GpuHistory()
    history.append(snap(1.0, 10.0))
    view = history.series("local", "GPU-a", "power_w")
    history.append(snap(2.0, 20.0))
    assert view == (10.0,)
    assert isinstance(view, tuple)


def test_unsupported_values_stay_gaps_not_zeros() -> None:
    history = GpuHistory()
    history.append(snap(1.0, 10.0))
    history.append(snap(2.0, None))
    assert history.series("local", "GPU-a", "power_w") == (10.0, None)
    assert history.series("local", "GPU-a", "fan_percent") == (None, None)


def test_repeated_snapshot_is_not_a_new_point() -> None:
    history = GpuHistory()
    assert history.append(snap(1.0, 10.0))
    assert not history.append(snap(1.0, 10.0))
    assert history.append(snap(1.0, 5.0, host="other"))  # other host, own timeline
    assert history.series("local", "GPU-a", "power_w") == (10.0,)
    assert history.series("other", "GPU-a", "power_w") == (5.0,)
    assert history.series("local", "GPU-zzz", "power_w") == ()

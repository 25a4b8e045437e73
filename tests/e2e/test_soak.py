"""The soak bench (bench/soak.py) in 3 minutes: the real console at 1 Hz, 8 stand-in GPUs, 30
containers churning; after a 1-minute warm-up its threads and fds stay flat and its RSS grows
little (the hour's run is the bench's; this is its short form, on the same code)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from support import TEST_IMAGE, TEST_LABEL, engine_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: bench/

from bench import soak

#: RSS growth allowed over the 2 measured minutes (fitted; the hour's target is 10 % over 55).
#: Measured here (2 shared cores): well under this; a leak of a few KiB per refresh or per
#: container event breaks it.
SHORT_RSS_GROWTH_MAX = 10.0


def test_flat_and_fit_rules() -> None:
    assert soak.flat([8, 9, 8, 8, 9, 8, 8, 8], 2)[0]
    assert soak.flat([32, 33, 32, 33, 33, 33, 33, 33], 4)[0]  # one more pooled connection
    assert soak.flat([8] * 40 + [11] + [8] * 40, 2)[0]  # a worker pool caught mid-refresh
    assert not soak.flat([8, 8, 9, 9, 10, 10, 11, 11], 2)[0]  # spread
    assert not soak.flat([30, 30, 31, 31, 32, 32, 32, 32], 4)[0]  # a rise of 2
    slope, icpt = soak.fit([0.0, 1.0, 2.0], [10.0, 12.0, 14.0])
    assert slope == pytest.approx(2.0) and icpt == pytest.approx(10.0)


@pytest.mark.engine
@pytest.mark.timeout(480)
def test_console_soak_three_minutes(docker_client: Any) -> None:
    opts = soak.Options(
        minutes=3.0,
        warmup_minutes=1.0,
        containers=30,
        sample_seconds=5.0,
        churn_seconds=2.0,
        gpus="standin8",
        image=TEST_IMAGE,
        url=engine_url(),
        extra_labels={TEST_LABEL: "1"},
    )
    result = soak.run(opts)
    verdict = soak.judge(result)
    table = "\n".join(" | ".join(str(c) for c in row) for row in verdict.rows)
    print(table)  # the figures, with -s (and in the failure's message)
    left = docker_client.containers.list(
        all=True, filters={"label": f"{soak.RUN_LABEL}={result.run_id}"}
    )
    assert not left, f"the soak left {len(left)} containers"
    assert result.alive, table
    assert result.rows_shown, table
    assert sum(result.ops.values()) >= 30, table  # the churn really ran (~1 every 2 s)
    assert verdict.threads_ok, table
    assert verdict.fds_ok, table
    assert verdict.growth_fit_pct <= SHORT_RSS_GROWTH_MAX, table

"""Sizes read the same everywhere they are shown, and as humanize (the library) writes them."""

from __future__ import annotations

import random

import humanize

from gpuconsole.present.format import NA, size


def test_sizes_read_as_humanize_writes_them() -> None:
    rng = random.Random(7)
    values = [0, 1, 2, 1023, 1024, 1536, -1, -5, -2048, 2**80, 2**95]
    values += [1024**k - d for k in range(1, 10) for d in range(0, 60)]  # the unit boundaries
    values += [rng.randrange(0, 2 ** rng.randrange(1, 90)) for _ in range(20_000)]
    for n in values:
        assert size(n) == humanize.naturalsize(n, binary=True, format="%.1f"), n


def test_examples_a_user_sees() -> None:
    assert size(None) == NA
    assert size(327_680) == "320.0 KiB"
    assert size(85_520_809_984) == "79.6 GiB"
    assert size(1_048_575) == "1.0 MiB"  # rounds up into the next unit, never "1024.0 KiB"

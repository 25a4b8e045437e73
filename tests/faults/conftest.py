"""Fixtures of the engine fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_faults import Faults

from private_engine import PrivateEngine


@pytest.fixture
def faults(private_engine: PrivateEngine) -> Iterator[Faults]:
    """Signals for the private engine; whatever is frozen is thawed in teardown, always."""
    f = Faults(private_engine)
    try:
        yield f
    finally:
        f.close()

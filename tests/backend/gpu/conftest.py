from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
H100 = FIXTURES / "gpu" / "h100"
STUB_SMI = FIXTURES / "bin" / "nvidia-smi"


@pytest.fixture
def h100() -> Path:
    return H100


@pytest.fixture
def stub_smi() -> Path:
    return STUB_SMI

"""Helpers shared by the tests (import as ``from support import ...``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

TEST_IMAGE = os.environ.get("GPUCONSOLE_TEST_IMAGE", "gpuconsole-test/busybox:1")
TEST_LABEL = "gpuconsole-test"


def engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")

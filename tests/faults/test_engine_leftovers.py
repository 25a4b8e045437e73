"""What a launch that the engine failed under leaves, and who removes it (launch.cleanup):
the rules for "abandoned", and a create whose answer was lost on the real engine."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from typing import Any

import pytest

from gpuconsole.backend.errors import HostUnreachable
from gpuconsole.backend.launch import LaunchProgress, LaunchSpec, cleanup, launch
from gpuconsole.backend.launch.spec import LABEL_LAUNCH, LABEL_VARIANT

from support import TEST_IMAGE, TEST_LABEL

NOW = 1_000_000.0


def entry(
    tag: str, state: str = "created", age: float = 1.0, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "Id": "c0ffee" * 10,
        "Names": ["/left"],
        "State": state,
        "Created": NOW - age,
        "Labels": {LABEL_LAUNCH: tag, LABEL_VARIANT: "plain", **(labels or {})},
    }


def test_a_launch_of_this_process_is_abandoned_once_it_is_over() -> None:
    tag = cleanup.new_tag()
    with cleanup.Active(tag):
        assert not cleanup._abandoned(entry(tag), NOW)
    assert cleanup._abandoned(entry(tag), NOW)


def finished_process_tag() -> str:
    """The launch tag a process that has ended would have written."""
    proc = subprocess.Popen(["sleep", "0"])
    ticks = cleanup._start_ticks(proc.pid)  # readable until it is reaped
    proc.wait()
    return f"{socket.gethostname()}/{proc.pid}/{ticks}/abc"


def test_a_launch_of_a_process_that_is_gone_is_abandoned_at_once() -> None:
    gone = finished_process_tag()
    assert cleanup.launch_over(gone) is True
    assert cleanup._abandoned(entry(gone), NOW)
    parent = os.getppid()
    reused = f"{socket.gethostname()}/{parent}/{cleanup._start_ticks(parent)}1/abc"
    assert cleanup.launch_over(reused) is True  # that PID runs, but started at another time
    alive = cleanup.owner() + "/abc"
    assert cleanup.launch_over(alive) is True  # this process, and no such launch in progress
    other = f"{socket.gethostname()}/{os.getppid()}/{cleanup._start_ticks(os.getppid())}/abc"
    assert cleanup.launch_over(other) is False  # the parent (pytest's runner) still runs


def test_a_launch_made_elsewhere_waits_its_grace() -> None:
    elsewhere = "another-machine/4242/123/abc"
    assert cleanup.launch_over(elsewhere) is None
    assert not cleanup._abandoned(entry(elsewhere, age=10), NOW)
    assert cleanup._abandoned(entry(elsewhere, age=cleanup.ABANDONED_AFTER_S + 1), NOW)


@pytest.mark.parametrize("state", ["running", "exited", "paused"])
def test_a_launch_that_started_is_never_a_leftover(state: str) -> None:
    gone = finished_process_tag()
    assert not cleanup._abandoned(entry(gone, state=state, age=10_000), NOW)


def test_a_probe_is_a_leftover_in_any_state_and_unlabelled_ones_never() -> None:
    gone = finished_process_tag()
    probe = entry(gone, state="exited", labels={cleanup.LABEL_PROBE: "1"})
    del probe["Labels"][LABEL_VARIANT]
    assert cleanup._abandoned(probe, NOW)
    assert not cleanup._abandoned({"State": "created", "Labels": {}, "Created": 0}, NOW)


def test_a_create_whose_answer_was_lost_is_found_and_removed(
    local_host: Any, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine made the container but its answer never came (the connection dropped):
    the launcher finds it by name and launch label, and removes it."""
    import requests

    api = local_host.api()
    real = api.create_container

    def answer_lost(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")

    monkeypatch.setattr(api, "create_container", answer_lost)
    name = f"lost-{uuid.uuid4().hex[:6]}"
    lines: list[str] = []
    spec = LaunchSpec(
        variant="plain",
        image=TEST_IMAGE,
        name=name,
        command=("sleep", "1"),
        labels=(f"{TEST_LABEL}=1",),
    )
    started = time.monotonic()
    with pytest.raises(HostUnreachable):
        launch(local_host, spec, on_progress=lambda p: lines.append(_line(p)))
    assert time.monotonic() - started < 10
    assert any(line.startswith("[cleanup] removed the failed container") for line in lines)
    assert docker_client.containers.list(all=True, filters={"name": f"^/{name}$"}) == []


def _line(p: LaunchProgress) -> str:
    return f"[{p.stage}] {p.message}"


async def test_the_console_removes_what_a_failed_launch_left_and_says_so(
    docker_client: Any,
) -> None:
    """A launch whose engine died between create and start left its container created; the
    next console on that host removes it (once) and says which."""
    from gpuconsole.ui.app import GpuconsoleApp

    from support import host_at
    from uihelpers import notifications, until

    name = f"left-{uuid.uuid4().hex[:8]}"
    left = docker_client.containers.create(
        TEST_IMAGE,
        ["sleep", "60"],
        name=name,
        network_mode="none",
        labels={TEST_LABEL: "1", LABEL_LAUNCH: finished_process_tag(), LABEL_VARIANT: "plain"},
    )
    keep = docker_client.containers.create(  # created by hand: not the console's to remove
        TEST_IMAGE, ["sleep", "60"], network_mode="none", labels={TEST_LABEL: "1"}
    )
    try:
        app = GpuconsoleApp(host_at(), refresh_seconds=0.5)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(
                pilot,
                lambda: any(name in n for n in notifications(app)),
                timeout=20,
                what="the clean-up notice",
            )

            def gone() -> bool:
                return not docker_client.containers.list(all=True, filters={"name": name})

            await until(pilot, gone, timeout=10, what="the left container removed")
        keep.reload()
        assert keep.status == "created"
    finally:
        for c in (left, keep):
            with contextlib.suppress(Exception):
                c.remove(force=True)

"""The launcher against the real engine: what it creates, and that failures leave nothing."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gpuconsole.backend.errors import LaunchCancelled, LaunchFailed, LaunchRejected
from gpuconsole.backend.gpu.models import GpuSample, GpuSnapshot, GpuSourceState
from gpuconsole.backend.launch import (
    LaunchProgress,
    LaunchSpec,
    check_launch,
    create_container,
    describe_launch,
    launch,
)
from gpuconsole.backend.launch.create import build_create_request

from support import TEST_IMAGE, TEST_LABEL

JUPYTER_IMAGE = os.environ.get("GPUCONSOLE_TEST_JUPYTER_IMAGE", "gpuconsole-test/jupyter:bookworm")


def run_label() -> tuple[str, str]:
    return f"gpct-run={uuid.uuid4().hex}", f"{TEST_LABEL}=1"


def with_label(docker_client: Any, label: str) -> list[Any]:
    return docker_client.containers.list(all=True, filters={"label": label})


def gpu_snapshot() -> GpuSnapshot:
    gpus = tuple(GpuSample(i, f"GPU-{i}aaa", "NVIDIA H100 80GB HBM3") for i in range(2))
    return GpuSnapshot("local", "test", GpuSourceState.OK, time.time(), gpus)


@pytest.mark.parametrize(
    ("gpus", "count", "ids", "visible"),
    [("all", -1, None, "all"), ("0,1", 0, ["0", "1"], "0,1")],
)
def test_gpu_request_recorded_as_asked(  # type: ignore[no-untyped-def]
    local_host,
    docker_client,
    memlock_refused: bool,
    tmp_path: Path,
    gpus: str,
    count: int,
    ids: Any,
    visible: str,
) -> None:
    """Create only: this engine has no NVIDIA runtime, but create records what start would use."""
    spec = LaunchSpec(
        variant="plain",
        image=TEST_IMAGE,
        gpus=gpus,
        volumes=(f"{tmp_path}:/data",),
        labels=run_label(),
    )
    plan = check_launch(local_host, spec, gpu_snapshot()).raise_for_errors()
    cid = create_container(local_host, build_create_request(plan))
    try:
        attrs = docker_client.api.inspect_container(cid)
        (request,) = attrs["HostConfig"]["DeviceRequests"]
        assert request["Count"] == count and (request["DeviceIDs"] or None) == ids
        assert request["Capabilities"] == [["gpu"]]
        assert f"NVIDIA_VISIBLE_DEVICES={visible}" in attrs["Config"]["Env"]
        ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in attrs["HostConfig"]["Ulimits"]}
        # The defaults, less what this engine cannot set (memlock=-1 without CAP_SYS_RESOURCE).
        expected = {"stack": (67108864, 67108864)}
        if not memlock_refused:
            expected["memlock"] = (-1, -1)
        assert ulimits == expected
        assert attrs["Config"]["Labels"]["gpuconsole.gpus"] == gpus
    finally:
        docker_client.api.remove_container(cid, force=True)


def test_gpu_launch_without_runtime_fails_in_words_and_leaves_nothing(  # type: ignore[no-untyped-def]
    local_host, docker_client
) -> None:
    label = run_label()
    stages: list[str] = []
    with pytest.raises(LaunchFailed) as info:
        launch(
            local_host,
            LaunchSpec(variant="plain", image=TEST_IMAGE, gpus="all", labels=label),
            on_progress=lambda p: stages.append(p.stage),
        )
    assert "install nvidia-container-toolkit" in str(info.value)
    assert "--gpus none" in str(info.value)
    assert stages[:3] == ["check", "preflight", "preflight"]
    assert stages[-1] == "cleanup"
    assert not with_label(docker_client, label[0])


def test_server_that_never_comes_up_is_reported_and_removed(  # type: ignore[no-untyped-def]
    local_host, docker_client
) -> None:
    """The busybox image has no Jupyter: the launcher says so with the container's own words."""
    label = run_label()
    with pytest.raises(LaunchFailed) as info:
        launch(
            local_host,
            LaunchSpec(image=TEST_IMAGE, labels=label),
            timeout=20,
        )
    text = str(info.value)
    assert "exited (code 127)" in text
    assert "this image has no Jupyter server" in text  # from the last log lines
    assert "build-variant --variant jupyter" in text
    assert not with_label(docker_client, label[0])


def test_plain_launch_is_ready_when_running(local_host, docker_client) -> None:  # type: ignore[no-untyped-def]
    label = run_label()
    spec = LaunchSpec(
        variant="plain",
        image=TEST_IMAGE,
        labels=label,
        command=("sh", "-c", "sleep 600"),
    )
    result = launch(local_host, spec, timeout=5)
    try:
        assert result.variant == "plain" and result.url is None and result.ports == ()
        assert docker_client.containers.get(result.id).status == "running"
    finally:
        docker_client.api.remove_container(result.id, force=True)


def test_readiness_timeout_reports_logs_without_the_token(  # type: ignore[no-untyped-def]
    local_host, docker_client, tmp_path: Path
) -> None:
    """A 'Jupyter' that starts but never answers: timeout, its log lines, nothing left."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("jupyter", "jupyter-notebook"):
        script = fake / name
        script.write_text('#!/bin/sh\necho "fake server, token $JUPYTER_TOKEN"\nexec sleep 600\n')
        script.chmod(0o755)
    label = run_label()
    spec = LaunchSpec(
        image=TEST_IMAGE,
        labels=label,
        volumes=(f"{fake}:/fake:ro",),
        env=("PATH=/fake:/bin",),
    )
    started = time.monotonic()
    with pytest.raises(LaunchFailed) as info:
        launch(local_host, spec, timeout=3)
    assert time.monotonic() - started < 20
    text = str(info.value)
    assert "did not answer within 3 s" in text
    assert "fake server, token <token>" in text  # the log line, with the secret scrubbed
    assert not with_label(docker_client, label[0])


def test_cancel_during_wait_removes_the_container(local_host, docker_client) -> None:  # type: ignore[no-untyped-def]
    label = run_label()
    cancel = threading.Event()

    def progress(p: LaunchProgress) -> None:
        if p.stage == "wait":
            cancel.set()

    with pytest.raises(LaunchCancelled, match="during wait"):
        launch(
            local_host,
            LaunchSpec(image=JUPYTER_IMAGE, labels=label),
            on_progress=progress,
            cancel=cancel,
        )
    assert not with_label(docker_client, label[0])


def test_jupyter_launch_and_find_it_again(local_host, docker_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    label = run_label()
    stages: list[str] = []
    result = launch(
        local_host,
        LaunchSpec(
            image=JUPYTER_IMAGE,
            labels=label,
            volumes=(f"{tmp_path}:/workspace",),
        ),
        on_progress=lambda p: stages.append(p.stage),
    )
    try:
        assert stages == ["check", "create", "start", "wait", "ready"]
        (port,) = result.ports
        assert port.host_ip == "127.0.0.1" and port.private_port == 8888
        assert result.url == f"http://127.0.0.1:{port.host_port}/?token={result.token}"
        # A console restarted later rebuilds the same URL from the engine alone.
        again = describe_launch(local_host, result.name)
        assert (again.url, again.token, again.variant) == (result.url, result.token, "jupyter")
        # The name and port are now taken: a second launch asking for them is refused.
        with pytest.raises(LaunchRejected) as info:
            launch(
                local_host,
                LaunchSpec(image=JUPYTER_IMAGE, name=result.name, port=port.host_port),
            )
        assert set(info.value.fields()) == {"name", "port"}
    finally:
        docker_client.api.remove_container(result.id, force=True)


def test_a_listener_that_breaks_does_not_stop_the_cleanup(  # type: ignore[no-untyped-def]
    local_host, docker_client
) -> None:
    """A UI that quit mid-launch (its progress callback raises) still gets nothing left behind."""
    label = run_label()

    def gone(progress: Any) -> None:
        if progress.stage in ("wait", "cleanup"):
            raise RuntimeError("the app is not running")

    with pytest.raises(LaunchFailed):
        launch(
            local_host,
            LaunchSpec(image=TEST_IMAGE, labels=label),
            on_progress=gone,
            timeout=20,
        )
    assert not with_label(docker_client, label[0])

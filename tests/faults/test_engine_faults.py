"""The engine failing under a launch, a build and ``ps``: killed, restarted, frozen, or its
socket not ours to use. Real processes: a private dockerd of each test's own, the CLI as a
subprocess, signals sent by the test (or by a second client on the engine's own events).

What is asserted is what a user notices: exit 1 and words naming the engine (no traceback),
nothing claimed that did not happen, and nothing left behind once the engine is back.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from engine_faults import (
    QUICK_STOP,
    Faults,
    OnEvent,
    api,
    assert_clean_failure,
    build_base,
    containers,
    fake_bin,
    finish,
    gc,
    gc_started,
    named,
    read_until,
    remove,
)

from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable, LaunchFailed
from gpuconsole.backend.launch import LaunchProgress, LaunchSpec, launch
from gpuconsole.backend.launch.cleanup import remove_abandoned
from gpuconsole.backend.launch.spec import LABEL_LAUNCH

from private_engine import PrivateEngine
from support import TEST_IMAGE, host_at, wait_for


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def plain_launch(name: str) -> list[str]:
    return [
        "launch",
        "--variant",
        "plain",
        "--image",
        TEST_IMAGE,
        "--name",
        name,
        "--",
        *QUICK_STOP,
    ]


# -- launch ---------------------------------------------------------------------------------


def test_launch_engine_killed_and_restarted_while_it_waits(
    private_engine: PrivateEngine, faults: Faults, tmp_path: Path
) -> None:
    """dockerd dies (SIGKILL) once the container started, while the launch waits for Jupyter,
    and comes back (as systemd would restart it): the launch fails naming the engine, says
    nothing is up, and removes its container once the engine answers again."""
    # A "Jupyter" that never answers: the launch stays in its readiness wait.
    fake = fake_bin(tmp_path / "bin", jupyter="trap 'exit 0' TERM\nsleep 3600 & wait\n")
    (fake / "jupyter-lab").symlink_to("jupyter")
    name = unique("killed-waiting")
    trigger = OnEvent(private_engine, "start", name, faults.freeze)
    try:
        proc = gc_started(
            private_engine,
            *("launch", "--variant", "jupyter", "--image", TEST_IMAGE, "--name", name),
            *("-v", f"{fake}:/fakebin:ro", "-e", "PATH=/fakebin:/bin:/usr/bin:/sbin:/usr/sbin"),
            # The private engine's network namespace has no loopback up to publish on.
            *("--bind", "0.0.0.0", "--timeout", "60"),
        )
        trigger.wait(proc)
        faults.kill()
        private_engine.start()
        out, err = finish(proc, 60)
    finally:
        trigger.close()
    assert_clean_failure(out, err, proc.returncode)
    assert out == ""  # no URL, no "is up"
    assert f"cannot reach the Docker engine of 'local' at {private_engine.url}" in err
    assert "[cleanup] removed the failed container" in err
    assert "left on host" not in err
    assert named(private_engine, name) == []


def test_launch_engine_killed_between_create_and_start(
    private_engine: PrivateEngine, faults: Faults
) -> None:
    """A second client SIGSTOPs dockerd on the create event of the launch's container, then
    kills it, and brings it back only after the launch gave up: the launch says what it left
    and how it goes; the next launch on the host removes it, with a note."""
    name = unique("orphan")
    trigger = OnEvent(private_engine, "create", name, faults.freeze)
    try:
        proc = gc_started(private_engine, *plain_launch(name))
        trigger.wait(proc)
        faults.kill()  # before the launch's start (or its create's answer) got through
        out, err = finish(proc, 60)
    finally:
        trigger.close()
    assert_clean_failure(out, err, proc.returncode)
    assert out == ""
    assert f"cannot reach the Docker engine of 'local' at {private_engine.url}" in err
    assert f"{name} " in err and "left on host 'local'" in err, err
    assert f"the next launch on local removes it (or: gpuconsole rm -f {name})" in err
    assert "removed the failed container" not in err  # nothing claimed that did not happen

    private_engine.start()
    (orphan,) = named(private_engine, name)
    assert orphan["State"] == "created"  # created, never started: the window was hit
    assert LABEL_LAUNCH in orphan["Labels"]

    again = gc(private_engine, *plain_launch(name))  # the same launch, tried again
    try:
        assert again.returncode == 0, again.stderr
        assert f"removed {name} ({orphan['Id'][:12]}) on local: created and never started" in (
            again.stderr
        )
        (relaunched,) = named(private_engine, name)
        assert relaunched["Id"] != orphan["Id"] and relaunched["State"] == "running"
    finally:
        remove(private_engine, name)


def test_launcher_through_engine_crashes_and_a_freeze(
    private_engine: PrivateEngine, faults: Faults
) -> None:
    """The launcher itself, the engine failing exactly between create and start (from the
    progress callback, so the window is hit every time):

    - killed and restarted within the cleanup wait: the container is removed, reported so;
    - killed for longer: LaunchFailed names what is left, and ``remove_abandoned`` (the next
      launch, or the console) removes it once the engine is back;
    - frozen: each call fails after the engine timeout, the removal is tried once (not for the
      whole wait), and once thawed nothing stays.
    """
    host = host_at(private_engine.url, timeout=2)
    try:

        def attempt(
            name: str, on_start: object, cleanup_wait: float
        ) -> tuple[BaseException, list[str], float]:
            lines: list[str] = []
            fired = False

            def progress(p: LaunchProgress) -> None:
                nonlocal fired
                lines.append(f"[{p.stage}] {p.message}")
                if p.stage == "start" and not fired:
                    fired = True
                    on_start()  # type: ignore[operator]

            spec = LaunchSpec(variant="plain", image=TEST_IMAGE, name=name, command=QUICK_STOP)
            started = time.monotonic()
            with pytest.raises(GpuconsoleError) as caught:
                launch(host.engine, spec, on_progress=progress, cleanup_wait=cleanup_wait)
            return caught.value, lines, time.monotonic() - started

        # Killed, and back within the wait: removed.
        def kill_and_restart() -> None:
            faults.kill()
            private_engine.start()

        def crash_and_restart() -> None:
            faults.freeze()  # the start request waits in the socket...
            threading.Thread(target=kill_and_restart).start()  # ...and the engine crashes

        name = unique("restarted")
        error, lines, _ = attempt(name, crash_and_restart, cleanup_wait=30)
        assert isinstance(error, HostUnreachable), error
        assert any(line.startswith("[cleanup] removed the failed container") for line in lines)
        wait_for(private_engine.answers, timeout=30, what="the engine back")
        assert named(private_engine, name) == []

        # Killed for longer than the wait: named as left, removed by the next sweep.
        name = unique("left")
        error, lines, _ = attempt(name, faults.freeze, cleanup_wait=0.5)
        faults.kill()
        assert isinstance(error, LaunchFailed), error
        assert f"the container {name} (" in str(error)
        assert "is left on host 'local'" in str(error)
        assert "the next launch on local removes it" in str(error)
        private_engine.start()
        (left,) = named(private_engine, name)
        assert left["State"] == "created"
        notes = remove_abandoned(host.engine)
        assert notes == [
            f"removed {name} ({left['Id'][:12]}) on local: created and never started by a "
            "launch that failed when the engine went away"
        ]
        assert named(private_engine, name) == []
        assert remove_abandoned(host.engine) == []  # the survivor and the rest are not ours

        # Frozen: timeouts, one removal try, and nothing once thawed.
        name = unique("frozen")
        try:
            error, lines, took = attempt(name, faults.freeze, cleanup_wait=30)
        finally:
            faults.thaw()
        assert isinstance(error, LaunchFailed), error
        assert "the engine did not answer within 2 s" in str(error)
        assert took < 3 * 2 + 5, took  # start + one removal + the create's own, not 30 s more
        # Thawed, the engine works through what waited in its socket (start, then removal):
        # whatever it ends with, the next sweep leaves nothing of this launch.
        time.sleep(1)
        remove_abandoned(host.engine)
        wait_for(
            lambda: all(c["State"] != "created" for c in named(private_engine, name)),
            timeout=20,
            what="no created-never-started container",
        )
        remove(private_engine, name)  # started by the thawed engine after the launch failed
    finally:
        host.close()


# -- build ----------------------------------------------------------------------------------

#: A base with a fake apt-get that takes a while: the build can be caught mid-step, and would
#: succeed (and tag) if the engine went on with it.
FAKE_APT = """FROM BASE
RUN mkdir -p /usr/bin && printf '#!/bin/sh\\necho "fake apt-get $1: working"\\nsleep 1\\n' \
    > /usr/bin/apt-get && chmod +x /usr/bin/apt-get
"""
MARKER = "fake apt-get update: working"


def tags(engine: PrivateEngine) -> set[str]:
    client = api(engine)
    try:
        return {t for image in client.images() for t in image.get("RepoTags") or ()}
    finally:
        client.close()


def others(engine: PrivateEngine) -> list[str]:
    """Containers besides the fixture's survivor."""
    return [
        "/".join(c["Names"]) + " " + c["State"]
        for c in containers(engine)
        if c["Names"] != ["/survivor"]
    ]


def test_build_engine_killed_mid_step(private_engine: PrivateEngine, faults: Faults) -> None:
    """dockerd SIGKILLed in the middle of a RUN step, restarted at once: the build fails naming
    the engine and saying nothing was tagged; the step's container (which a dead engine cannot
    remove itself) is removed once the engine is back."""
    build_base(private_engine, "fakeapt:1", FAKE_APT)
    proc = gc_started(
        private_engine, "build-variant", "--base", "fakeapt:1", "--variant", "jupyter"
    )
    read_until(proc, MARKER)
    faults.freeze()
    faults.kill()
    private_engine.start()
    rest, err = finish(proc, 60)
    assert_clean_failure(rest, err, proc.returncode)
    assert f"cannot reach the Docker engine of 'local' at {private_engine.url}" in err
    assert "the engine closed the connection in the middle of the build" in err
    assert "nothing was tagged" in err
    assert "removed the build's intermediate container" in rest
    assert "built gpuconsole/" not in rest
    assert "gpuconsole/fakeapt-jupyter:1" not in tags(private_engine)
    assert others(private_engine) == []


def test_frozen_engine_build_launch_and_ps_say_so_within_the_timeout(
    private_engine: PrivateEngine, faults: Faults
) -> None:
    """dockerd SIGSTOPped mid-build; while it is frozen a launch and ``ps`` are tried too.
    Each ends within the engine timeout (10 s) and a little, saying the engine did not answer,
    exit 1 — no hang. Thawed, the engine drops the abandoned build: no tag ever appears, no
    container is left."""
    build_base(private_engine, "fakeapt:1", FAKE_APT)
    build = gc_started(
        private_engine, "build-variant", "--base", "fakeapt:1", "--variant", "jupyter"
    )
    read_until(build, MARKER)
    name = unique("frozen")
    with faults.frozen():
        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            launched = pool.submit(gc, private_engine, *plain_launch(name), timeout=60)
            listed = pool.submit(gc, private_engine, "ps", "-a", timeout=60)
            built = pool.submit(finish, build, 60)
            results = {"launch": launched.result(), "ps": listed.result()}
            rest, err = built.result()
        took = time.monotonic() - started
    for what, result in results.items():
        assert_clean_failure(result.stdout, result.stderr, result.returncode)
        assert (
            f"cannot reach the Docker engine of 'local' at {private_engine.url}: the engine "
            "did not answer within 10 s" in result.stderr
        ), (what, result.stderr)
    assert_clean_failure(rest, err, build.returncode)
    assert "the engine did not answer within 10 s" in err
    assert "nothing was tagged: the engine drops the build once it answers again" in err
    assert took < 30, took  # 10 s + the build's 2 s ping interval + start-up, under load

    wait_for(lambda: others(private_engine) == [], timeout=30, what="the build's step to go")
    time.sleep(2)  # longer than the rest of the build would have taken
    assert "gpuconsole/fakeapt-jupyter:1" not in tags(private_engine)
    assert others(private_engine) == []  # the launch created nothing either


# -- the socket not ours --------------------------------------------------------------------


@pytest.fixture
def open_engine(docker_client: object) -> Iterator[PrivateEngine]:
    """A private engine whose socket's directory anyone may enter (the fixture's lies under
    pytest's 0700 temp root), so only the socket's own mode and group decide."""
    from private_engine import PrivateEngine

    why = PrivateEngine.usable()
    if why:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="gpct-perm-", dir="/tmp"))
    root.chmod(0o755)
    engine = PrivateEngine(root)
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


NOBODY = 65534


def as_nobody(*groups: int) -> list[str]:
    extra = [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", *extra]


def python_for_nobody() -> tuple[list[str], dict[str, str]]:
    """A Python that user ``nobody`` can run with gpuconsole and its dependencies: this one if
    it may, else the system's of the same version with this environment's packages."""
    import sysconfig

    repo = str(Path(__file__).resolve().parents[2])
    site = sysconfig.get_paths()["purelib"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        ([sys.executable], {"PYTHONPATH": repo}),
        ([f"/usr/bin/{version}"], {"PYTHONPATH": f"{repo}:{site}"}),
    ]
    tried = []
    for argv, more in candidates:
        probe = subprocess.run(
            [
                *as_nobody(),
                "env",
                "-i",
                *(f"{k}={v}" for k, v in {**env, **more}.items()),
                *argv,
                "-c",
                "import gpuconsole.cli, docker",
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0:
            return argv, {**env, **more}
        tried.append(f"{argv[0]}: {probe.stderr.strip().splitlines()[-1:]}")
    pytest.skip(
        "user nobody can run no Python with gpuconsole's dependencies here ("
        + "; ".join(tried)
        + ")"
    )


def test_ps_on_a_socket_the_user_may_not_use(open_engine: PrivateEngine) -> None:
    """``gpuconsole ps`` as a user outside the docker group: exit 1, "permission denied on the
    engine's socket" and both fixes; the same user in the docker group is let in."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    try:
        docker_gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        pytest.skip("no docker group on this machine (dockerd then makes its socket root's)")
    socket_path = open_engine.root / "docker.sock"
    assert os.stat(socket_path).st_gid == docker_gid
    assert os.stat(socket_path).st_mode & 0o007 == 0  # nothing for others
    python, env = python_for_nobody()
    env["DOCKER_HOST"] = open_engine.url

    def ps(*groups: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *as_nobody(*groups),
                "env",
                "-i",
                *(f"{k}={v}" for k, v in env.items()),
                *python,
                "-m",
                "gpuconsole",
                "ps",
                "-a",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = ps()
    assert_clean_failure(refused.stdout, refused.stderr, refused.returncode)
    assert (
        f"cannot reach the Docker engine of 'local' at {open_engine.url}: permission denied "
        "on the engine's socket" in refused.stderr
    )
    assert "add your user to the docker group" in refused.stderr
    assert "DOCKER_HOST" in refused.stderr

    allowed = ps(docker_gid)
    assert allowed.returncode == 0, allowed.stderr
    assert "Traceback" not in allowed.stderr


# -- logs -------------------------------------------------------------------------------------


def test_logs_follow_cut_by_a_dead_engine_is_an_error_not_a_clean_end(
    private_engine: PrivateEngine, faults: Faults
) -> None:
    """``logs -f`` ends 0 when the container exits; the engine dying under it must not look
    the same (a script would take the output as whole)."""
    name = unique("chatty")
    api(private_engine).create_container(
        TEST_IMAGE,
        ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"],
        name=name,
        host_config=api(private_engine).create_host_config(network_mode="none"),
    )
    api(private_engine).start(name)
    proc = gc_started(private_engine, "logs", "-f", name)
    try:
        read_until(proc, "line 3", timeout=60)
        faults.kill()
        out, err = finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_clean_failure(out, err, proc.returncode)
    assert "broke off" in err

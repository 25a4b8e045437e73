"""Helpers for the engine fault tests: kill, freeze and restart a private dockerd (and its
containerd) under the console, the CLI and the launcher, and watch its events as a second
client would.

Every freeze is undone in teardown (``Faults``), so the private engine fixture can stop it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from private_engine import PrivateEngine
from support import TEST_IMAGE, wait_for

# The Pilot helpers of tests/ui, for the console tests here (that folder is on the path only
# when one of its modules is collected).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from uihelpers import notifications, text_of, until

__all__ = ["notifications", "text_of", "until"]

#: A command that ends at once on SIGTERM: a dockerd restarted after a crash stops the
#: containers it finds running, and waits 10 s for one that ignores SIGTERM (busybox sleep as
#: PID 1 does).
QUICK_STOP = ("sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait")


def dockerd_pid(engine: PrivateEngine) -> int:
    return int((engine.root / "pid").read_text())


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def containerd_pid(engine: PrivateEngine) -> int | None:
    """The private dockerd's own containerd (its child, found through /proc)."""
    for child in children(dockerd_pid(engine)):
        if command_name(child) == "containerd":
            return child
    return None


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def kill_engine(engine: PrivateEngine) -> None:
    """SIGKILL dockerd — a crash, no clean shutdown — and wait until it and its children are
    gone: a containerd still exiting makes the next dockerd wait for it, then fail."""
    pid = dockerd_pid(engine)
    kids = children(pid)
    os.kill(pid, signal.SIGKILL)
    if engine.proc is not None:
        engine.proc.wait(timeout=30)  # unshare exec'd dockerd: this reaps it
        engine.proc = None
    for kid in kids:
        if command_name(kid) != "containerd-shim-runc-v2":  # shims outlive dockerd
            wait_for(lambda kid=kid: gone(kid), timeout=30, what=f"process {kid} to exit")


def kill_shims(engine: PrivateEngine) -> None:
    """containerd shims of a stopped engine: one that ran a container while its dockerd was
    killed can stay behind for good (seen after a build step's container)."""
    address = f"-address {engine.root}/exec/containerd/containerd.sock"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if "containerd-shim" in args and address in args:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)


def unmount_under(root: Path) -> None:
    prefix = f"{root}/"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=False)


class Faults:
    """Freezes to undo: ``freeze`` SIGSTOPs dockerd, ``close`` SIGCONTs whatever is frozen."""

    def __init__(self, engine: PrivateEngine) -> None:
        self.engine = engine
        self._frozen: set[int] = set()
        self._lock = threading.Lock()
        self.killed = False

    def freeze(self, pid: int | None = None) -> int:
        pid = dockerd_pid(self.engine) if pid is None else pid
        with self._lock:
            self._frozen.add(pid)
        os.kill(pid, signal.SIGSTOP)
        return pid

    def thaw(self, pid: int | None = None) -> None:
        with self._lock:
            pids = set(self._frozen) if pid is None else {pid}
            self._frozen -= pids
        for each in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGCONT)

    def kill(self) -> None:
        """Kill a (possibly frozen) dockerd and wait for it to be gone."""
        pid = dockerd_pid(self.engine)
        self.killed = True
        kill_engine(self.engine)
        with self._lock:
            self._frozen.discard(pid)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[int]:
        pid = self.freeze()
        try:
            yield pid
        finally:
            self.thaw(pid)

    def close(self) -> None:
        """Thaw; after a kill, stop the engine here (the fixture's stop is then a no-op) and
        unmount what the killed dockerd left mounted under its root (its data root, bound on
        itself), or the temp folder cannot be removed."""
        self.thaw()
        if self.killed:
            self.engine.stop()
            kill_shims(self.engine)
            unmount_under(self.engine.root)


class OnEvent:
    """A second client of the engine: follows its event stream and calls ``act`` once, on the
    first ``action`` event of the container ``name`` (the engine sends it before it answers
    the request that caused it)."""

    def __init__(self, engine: PrivateEngine, action: str, name: str, act: Callable[[], Any]):
        import docker

        self._api = docker.APIClient(base_url=engine.url, version="auto", timeout=30)
        self._stream = self._api.events(
            decode=True, filters={"type": "container", "event": action, "container": name}
        )
        self._act = act
        self.fired = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"on-{action}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with the engine
            for _ in self._stream:
                self._act()
                self.fired.set()
                return

    def wait(self, proc: subprocess.Popen[str] | None = None, timeout: float = 60.0) -> None:
        """Until the event came (and was acted on); fails at once if ``proc`` ended first."""
        deadline = time.monotonic() + timeout
        while not self.fired.wait(0.2):
            if proc is not None and proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"the command ended before the event:\n{out}\n{err}")
            assert time.monotonic() < deadline, "the event never came"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api.close()


def cli_env(engine: PrivateEngine, **extra: str) -> dict[str, str]:
    # PYTHONFAULTHANDLER: a CLI that hangs prints where each of its threads is (see finish).
    return {**os.environ, "DOCKER_HOST": engine.url, "PYTHONFAULTHANDLER": "1", **extra}


def gc_started(engine: PrivateEngine, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gpuconsole", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(engine),
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[str, str]:
    """(stdout, stderr) of ``proc`` once it ended. One still running after ``timeout`` is a
    hang: it is made to dump its threads' stacks (SIGABRT, faulthandler) into the failure."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise AssertionError(
            f"{' '.join(map(str, proc.args))} still ran after {timeout:g} s:\n{out}\n{err}"
        ) from None


def gc(engine: PrivateEngine, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``gpuconsole ARGS`` as a user runs it, against the private engine."""
    proc = gc_started(engine, *args)
    out, err = finish(proc, timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_clean_failure(out: str, err: str, code: int | None) -> None:
    """What a user must see when the engine fails: exit 1, words, no Python traceback."""
    assert code == 1, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert err.startswith("gpuconsole: ") or "\ngpuconsole: " in err, err


def api(engine: PrivateEngine) -> Any:
    import docker

    return docker.APIClient(base_url=engine.url, version="auto", timeout=30)


def containers(engine: PrivateEngine, **filters: Any) -> list[dict[str, Any]]:
    client = api(engine)
    try:
        return list(client.containers(all=True, filters=filters))
    finally:
        client.close()


def named(engine: PrivateEngine, name: str) -> list[dict[str, Any]]:
    return containers(engine, name=f"^/{name}$")


def remove(engine: PrivateEngine, *refs: str) -> None:
    client = api(engine)
    try:
        for ref in refs:
            with contextlib.suppress(Exception):
                client.remove_container(ref, force=True)
    finally:
        client.close()


def fake_bin(directory: Path, **scripts: str) -> Path:
    """Executables (name -> shell body) to mount into a container and put on its PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        path = directory / name.replace("_", "-")
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    directory.chmod(0o755)
    return directory


def build_base(engine: PrivateEngine, tag: str, dockerfile: str) -> None:
    """An image on the private engine, built from the test image (no network needed)."""
    import io

    client = api(engine)
    try:
        for _ in client.build(
            fileobj=io.BytesIO(dockerfile.replace("BASE", TEST_IMAGE).encode()),
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
        ):
            pass
        client.inspect_image(tag)
    finally:
        client.close()


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> list[str]:
    """Lines of ``proc``'s stdout up to the one holding ``marker``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return lines
        assert time.monotonic() < deadline, "".join(lines)
    raise AssertionError(f"{marker!r} never came:\n{''.join(lines)}")

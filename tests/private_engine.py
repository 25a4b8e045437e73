"""A throwaway dockerd of the test's own, so a test can kill the engine and bring it back
without disturbing the engine the rest of the suite uses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


class PrivateEngine:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - lives as long as dockerd
        # Its own network namespace: a second dockerd in the host's namespace would fight the
        # main engine over docker0 (and delete it when started with --bridge none).
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                dockerd,
                "--host",
                self.url,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "pid"),
                "--iptables=false",
                "--ip6tables=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"private dockerd did not start; see {self.root / 'dockerd.log'}")

    def answers(self) -> bool:
        import docker

        try:
            client = docker.APIClient(base_url=self.url, version="auto", timeout=2)
        except Exception:
            return False
        client.close()
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @staticmethod
    def usable() -> str | None:
        """Why a private engine cannot run here, or None."""
        if os.geteuid() != 0:
            return "starting a private dockerd needs root (scripts/test runs as root in CI)"
        if not (shutil.which("dockerd") or Path("/usr/sbin/dockerd").exists()):
            return "dockerd is not installed (scripts/test installs docker.io)"
        return None

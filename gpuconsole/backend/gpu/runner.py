"""How the nvidia-smi source reaches a command: locally through subprocess, remotely over SSH.

The stream source only needs "start this argv and give me its lines" and "run this argv once";
keeping that behind a small protocol lets the SSH layer carry the same stream over one channel
and lets tests run a stand-in nvidia-smi.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from typing import Protocol


class CommandError(Exception):
    """A command could not be started, timed out, or failed; ``str()`` is for the user."""


class LineStream(Protocol):
    """A running command's output, line by line, until it exits or ``close()`` stops it."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class CommandRunner(Protocol):
    def stream(self, argv: Sequence[str]) -> LineStream:
        """Start a long-lived command; stderr is merged so its error messages are seen."""
        ...

    def run(self, argv: Sequence[str], timeout: float) -> str:
        """Run a short command to completion and return its stdout."""
        ...


class _PopenLines:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __iter__(self) -> Iterator[str]:
        stdout = self._proc.stdout
        if stdout is None:
            return
        try:
            yield from stdout
        except (ValueError, OSError):  # closed under us by close()
            return

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class LocalCommandRunner:
    """Runs commands on this machine."""

    def stream(self, argv: Sequence[str]) -> LineStream:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
        except OSError as err:
            raise CommandError(f"cannot start {argv[0]}: {err.strerror or err}") from err
        return _PopenLines(proc)

    def run(self, argv: Sequence[str], timeout: float) -> str:
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except OSError as err:
            raise CommandError(f"cannot start {argv[0]}: {err.strerror or err}") from err
        except subprocess.TimeoutExpired as err:
            raise CommandError(f"{argv[0]} did not answer within {timeout:g} s") from err
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise CommandError(message[0] if message else f"{argv[0]} exited {done.returncode}")
        return done.stdout

"""How the nvidia-smi source reaches a command: any Machine (this computer, or a host over SSH).

The stream source only needs "start this argv and give me its lines" and "run this argv once";
every Machine offers both, so the SSH layer carries the same stream over its one connection and
tests can run a stand-in nvidia-smi.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gpuconsole.backend.hosts.local import LocalMachine
from gpuconsole.backend.hosts.machine import CommandError, LineStream


class CommandRunner(Protocol):
    def stream(self, argv: Sequence[str]) -> LineStream:
        """Start a long-lived command; stderr is merged so its error messages are seen."""
        ...

    def run(self, argv: Sequence[str], timeout: float) -> str:
        """Run a short command to completion and return its stdout."""
        ...


#: This computer as a command runner (a Machine is one).
LocalCommandRunner = LocalMachine

__all__ = ["CommandError", "CommandRunner", "LineStream", "LocalCommandRunner"]

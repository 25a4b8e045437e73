"""The header line: which host, which engine, how many containers, and the console's mode."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gpuconsole import format as fmt
from gpuconsole.backend.models import EngineState, HostSnapshot, HostStatus


class HostLine(Static):
    def show(
        self,
        status: HostStatus,
        snapshot: HostSnapshot | None,
        read_only: bool,
        show_all: bool,
        needle: str,
    ) -> None:
        text = Text()
        text.append(" gpuconsole ", style="bold reverse")
        text.append(f" {status.host} ", style="bold")
        text.append(status.address, style="dim")
        if status.state is EngineState.UP:
            text.append("  engine ", style="dim")
            text.append(f"{status.engine_version or fmt.NA}", style="green")
            if status.cpus is not None:
                text.append(f" · {status.cpus} CPUs · {fmt.size(status.memory_bytes)}", style="dim")
            if snapshot is not None:
                running = sum(1 for c in snapshot.containers if c.running)
                text.append(f"  {len(snapshot.containers)} containers, {running} running", style="")
        elif status.state is EngineState.DOWN:
            text.append("  engine unreachable", style="bold red")
        else:
            text.append("  connecting…", style="yellow")
        text.append("  [all]" if show_all else "  [running only]", style="cyan")
        if needle:
            text.append(f"  filter: {needle}", style="magenta")
        if read_only:
            text.append("  READ-ONLY", style="bold yellow")
        self.update(text)

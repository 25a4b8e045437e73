"""The header line: which host, which engine, how many containers, and the console's mode."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from gpuconsole.backend.models import EngineState, HostSnapshot, HostStatus
from gpuconsole.present import format as fmt
from gpuconsole.ui.widgets.text_line import TextLine


class HostLine(TextLine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Host -> (its snapshot, how many of its containers run): counted once per snapshot,
        #: not once per host per redraw of a fleet's line.
        self._counts: dict[str, tuple[HostSnapshot, int]] = {}

    def running(self, snapshot: HostSnapshot) -> int:
        host = snapshot.status.host
        known = self._counts.get(host)
        if known is not None and known[0] is snapshot:
            return known[1]
        count = sum(1 for c in snapshot.containers if c.running)
        self._counts[host] = (snapshot, count)
        return count

    def show(
        self,
        status: HostStatus,
        snapshot: HostSnapshot | None,
        read_only: bool,
        show_all: bool,
        needle: str,
        not_answering_for: str | None = None,
    ) -> None:
        """``not_answering_for``: the engine took a request and has been silent this long."""
        text = Text()
        text.append(" gpuconsole ", style="bold reverse")
        text.append(f" {status.host} ", style="bold")
        text.append(status.address, style="dim")
        if not_answering_for is not None:
            text.append(f"  engine not answering for {not_answering_for}", style="bold red")
            if snapshot is not None:
                text.append(f"  (last list: {len(snapshot.containers)} containers)", style="dim")
        elif status.state is EngineState.UP:
            text.append("  engine ", style="dim")
            text.append(f"{status.engine_version or fmt.NA}", style="green")
            if status.cpus is not None:
                text.append(f" · {status.cpus} CPUs · {fmt.size(status.memory_bytes)}", style="dim")
            if snapshot is not None:
                running = self.running(snapshot)
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
        self.set_text(text)

    def show_fleet(
        self,
        hosts: list[tuple[str, HostStatus, HostSnapshot | None, Any]],
        scope: str | None,
        read_only: bool,
        show_all: bool,
        needle: str,
        not_answering: frozenset[str] = frozenset(),
    ) -> None:
        """Several hosts: each with a state dot, the one in scope highlighted; those in
        ``not_answering`` have an engine that took a request and stays silent."""
        text = Text()
        text.append(" gpuconsole ", style="bold reverse")
        text.append(" all hosts " if scope is None else f" {scope} ", style="bold")
        for name, status, snapshot, link in hosts:
            state, style = host_state(status, link)
            if name in not_answering and state in ("up", "down"):
                state, style = "not answering", "bold red"
            text.append("  ")
            text.append("●", style=style)
            text.append(f" {name}", style="bold underline" if name == scope else "")
            if state != "up":
                text.append(f" {state}", style=style)
            elif snapshot is not None:
                running = self.running(snapshot)
                text.append(f" {running}/{len(snapshot.containers)}", style="dim")
        text.append("  [all]" if show_all else "  [running only]", style="cyan")
        if needle:
            text.append(f"  filter: {needle}", style="magenta")
        if read_only:
            text.append("  READ-ONLY", style="bold yellow")
        text.append("  [ ] h: hosts", style="dim")
        self.set_text(text)


def host_state(status: HostStatus, link: Any) -> tuple[str, str]:
    """A host's one-word state and its colour: the SSH link first (connecting, needs trust,
    refused), then the engine."""
    link_state = str(getattr(getattr(link, "state", None), "value", "") or "")
    if link_state == "needs-trust":
        return "needs trust", "bold yellow"
    if link_state == "refused":
        return "refused", "bold red"
    if status.state is EngineState.UP:
        return "up", "green"
    if status.state is EngineState.DOWN:
        return "down", "bold red"
    return "connecting", "yellow"

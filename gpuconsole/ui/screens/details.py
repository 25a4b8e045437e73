"""Everything about one container: image, command, limits, mounts, ports, labels, env — and,
where ``gpuconsole record`` recorded it, its GPU history over its lifetime.

Values of variables whose names look secret (TOKEN, PASSWORD, SECRET, KEY) are masked: this
screen is often on a shared screen or in a screenshot.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.host import Host
from gpuconsole.backend.launch import LaunchResult
from gpuconsole.backend.launch.create import notes_from_labels
from gpuconsole.backend.models import ContainerDetails
from gpuconsole.present import format as fmt
from gpuconsole.ui.widgets.footer import QuietFooter
from gpuconsole.ui.widgets.rendered_once import RenderedOnce

if TYPE_CHECKING:
    from gpuconsole.accounting.history import History
    from gpuconsole.accounting.report import UsageRow


def _section(title: str) -> Text:
    return Text(f"\n{title}\n", style="bold underline")


def render_details(d: ContainerDetails) -> Table:
    s = d.summary
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label: str, value: str | Text) -> None:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))

    row("Name", s.name)
    row("ID", s.id)
    row("Image", s.image)
    row("Command", fmt.mask_text(" ".join(d.entrypoint + d.command)) or fmt.NONE)
    row("Created", d.created_iso)
    row("State", s.state + (f" (exit code {d.exit_code})" if s.state == "exited" else ""))
    if d.started_at:
        row("Started", d.started_at)
    if d.finished_at and s.state != "running":
        row("Finished", d.finished_at)
    row("Restart", d.restart_policy)
    row("Variant", s.variant or fmt.NONE)
    row("", "")
    row("Memory limit", fmt.size(d.memory_limit_bytes) if d.memory_limit_bytes else "unlimited")
    row("CPUs", f"{d.nano_cpus / 1e9:g}" if d.nano_cpus else "unlimited")
    row("Shm size", fmt.size(d.shm_size_bytes) if d.shm_size_bytes else "default (64 MiB)")
    row("GPUs", fmt.gpus(d.gpus))
    if d.ulimits:
        row("Ulimits", ", ".join(f"{n}={soft}:{hard}" for n, soft, hard in d.ulimits))
    # Defaults a launch did not get because the host could not apply them (its label says).
    for i, note in enumerate(notes_from_labels(dict(d.labels))):
        row("Left out" if i == 0 else "", Text(note, style="yellow"))
    row("", "")
    if d.mounts:
        for i, m in enumerate(d.mounts):
            row(
                "Mounts" if i == 0 else "",
                f"{m.source} → {m.destination}{' (ro)' if m.read_only else ''} [{m.type}]",
            )
    else:
        row("Mounts", Text("none — data written inside dies with the container", style="yellow"))
    row("Ports", fmt.ports(d.ports))
    for i, (k, v) in enumerate(d.labels):
        row("Labels" if i == 0 else "", f"{k}={v}")
    for i, (k, v) in enumerate(d.env):
        row("Env" if i == 0 else "", f"{k}={fmt.masked_env(k, v)}")
    return grid


def reach_text(launch: LaunchResult, read_only: bool) -> Text:
    """How to reach a launch: the Jupyter URL (token hidden on a read-only screen) or ssh."""
    text = Text()
    if launch.url:
        url = launch.url
        if read_only and launch.token:
            url = url.replace(launch.token, fmt.MASK)
        text.append("Jupyter  ", style="bold cyan")
        text.append(url, style="bold")
    if launch.ssh_command:
        text.append("SSH      ", style="bold cyan")
        text.append(launch.ssh_command, style="bold")
    if text.plain:
        text.append("\n(c copies, o opens)", style="dim")
    return text


_SPARKS = " ▁▂▃▄▅▆▇█"


def sparkline(values: tuple[float | None, ...], top: float) -> str:
    """One character per value, its height in eighths of ``top`` (blank: nothing recorded)."""
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            out.append(_SPARKS[max(1, min(8, round(v / top * 8)))] if top > 0 else _SPARKS[1])
    return "".join(out)


def gpu_history_text(history: History, rows: list[UsageRow]) -> Text:
    """The recorded GPU history of a container: totals and three sparklines over its life."""
    from gpuconsole.accounting.report import hours

    text = Text()
    text.append("GPU history (recorded)\n", style="bold underline")
    stamp = "%Y-%m-%d %H:%M"
    text.append(
        f"{time.strftime(stamp, time.localtime(history.start))} → "
        f"{time.strftime(stamp, time.localtime(history.end))}\n",
        style="dim",
    )
    if rows:
        r = rows[0]
        util = r.mean_utilization_percent
        text.append(
            f"GPU time {hours(r.gpu_seconds)} on GPU {','.join(r.gpus) or '-'} · "
            f"{r.energy_wh:.1f} Wh · mean {'-' if util is None else f'{util:.0f}%'} · "
            f"reserved {hours(r.reserved_gpu_seconds)}, idle "
            f"{hours(r.idle_reserved_gpu_seconds)}\n"
        )
    peak_mem = max((v for v in history.memory if v is not None), default=0.0)
    peak_pwr = max((v for v in history.power if v is not None), default=0.0)
    for label, values, top, note, style in (
        ("memory", history.memory, peak_mem, fmt.size(int(peak_mem)), "green"),
        ("util  ", history.utilization, 100.0, "100%", "cyan"),
        ("power ", history.power, peak_pwr, f"{peak_pwr:.0f} W", "magenta"),
    ):
        text.append(f"{label} ")
        text.append(sparkline(values, top), style=style)
        text.append(f"  peak {note}\n", style="dim")
    return text


class DetailsScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Back"),
        Binding("q", "dismiss", "Back", show=False),
        Binding("c", "copy", "Copy URL / ssh"),
        Binding("o", "open", "Open"),
        Binding("e", "shell", "Shell"),
        Binding("l", "logs", "Logs"),
    ]

    def __init__(
        self,
        host: Host,
        container_id: str,
        name: str,
        launch: LaunchResult | None = None,
        read_only: bool = False,
        details: ContainerDetails | None = None,
    ) -> None:
        """``details``: what an inspect said lately, shown in the first frame (the screen then
        inspects again and shows what changed)."""
        super().__init__()
        self._details = details
        self._reach_shown: Text | None = None
        self._host = host
        self._container_id = container_id
        self._name = name
        self.launch = self._tunnelled(host, container_id, launch)
        self._read_only = read_only
        #: Known once the details are loaded.
        self._container_running = details.summary.running if details else None

    def show_container(
        self, host: Host, container_id: str, name: str, details: ContainerDetails | None = None
    ) -> None:
        """Point this screen at another container before it is shown again. The containers
        screen keeps one details screen and shows it for every container: composing and
        mounting a new one, then laying it out twice as its widgets got their sizes, was most
        of what `enter` cost (some 45 ms before its first frame)."""
        self._host, self._container_id, self._name = host, container_id, name
        self.launch = None
        self._details = details
        self._container_running = details.summary.running if details else None
        if not self.is_mounted:
            return
        self.query_one("#details-title", Static).update(f"Container {name}")
        self.query_one("#details-gpu", Static).display = False
        body = render_details(details) if details else "Loading…"
        self.query_one("#details-body", Static).update(body)
        self._show_reach()
        self.query_one("#details", VerticalScroll).scroll_home(animate=False, immediate=True)

    def _tunnelled(
        self, host: Host, container_id: str, launch: LaunchResult | None
    ) -> LaunchResult | None:
        """A remote launch's Jupyter URL through a local tunnel (the port is on the host's
        loopback): opened once per container and port, same local port while it runs."""
        if launch is None or host.is_local or not launch.url:
            return launch
        import dataclasses
        from urllib.parse import urlsplit

        remote_port = urlsplit(launch.url).port
        if remote_port is None:
            return launch
        try:
            tunnel = host.tunnels.open(f"{container_id}:{remote_port}", remote_port)
        except OSError:
            return launch
        url = launch.url.replace(f":{remote_port}/", f":{tunnel.local_port}/", 1)
        return dataclasses.replace(launch, url=url)

    def reach_target(self) -> str | None:
        """What ``c`` copies: the (local) Jupyter URL or the ssh command."""
        return self._target()

    def compose(self) -> ComposeResult:
        # Everything in its first state here, not set after mounting: each change after the
        # mount is one more layout of the screen before its first frame.
        reach_shown = self._reach_shown = self._reach()
        body = render_details(self._details) if self._details else "Loading…"
        with VerticalScroll(id="details"):
            yield Static(f"Container {self._name}", id="details-title")
            reach = Static(reach_shown, id="details-reach")
            reach.display = bool(reach_shown.plain)
            yield reach
            gpu = Static(id="details-gpu")
            gpu.display = False  # until a recording says something
            yield gpu
            yield RenderedOnce(body, id="details-body")
        yield QuietFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("copy", "open"):
            return self.launch is not None and bool(self.launch.url or self.launch.ssh_command)
        if action == "shell":  # hidden in read-only mode; dimmed while the container is stopped
            if self._read_only:
                return False
            return None if self._container_running is False else True
        return True

    def action_shell(self) -> None:
        from gpuconsole.backend.shells.session import ShellRequest
        from gpuconsole.ui.handover import open_shell

        fleet = getattr(self.app, "fleet", None)
        if self._read_only or fleet is None:
            return
        shell = getattr(self.app, "shell_command", None)
        open_shell(self.app, fleet, ShellRequest(self._host, self._container_id, shell=shell))

    def action_logs(self) -> None:
        from gpuconsole.ui.screens.logs import LogsScreen

        self.app.push_screen(LogsScreen(self._host, self._container_id, self._name or ""))

    def _target(self) -> str | None:
        if self.launch is None:
            return None
        return self.launch.url or self.launch.ssh_command

    def action_copy(self) -> None:
        from gpuconsole.backend.launch.desktop import copy_to_clipboard

        target = self._target()
        if target is None:
            return
        self.app.copy_to_clipboard(target)  # OSC 52: works over SSH in most terminals
        tool = copy_to_clipboard(target)
        self.notify(f"Copied to the clipboard{f' ({tool})' if tool else ' (OSC 52)'}")

    def action_open(self) -> None:
        from gpuconsole.backend.launch.desktop import open_in_browser
        from gpuconsole.ui.reach import open_launch

        if self.launch is None:
            return
        if self.launch.url:  # already through the tunnel for a remote host
            if not open_in_browser(self.launch.url):
                self.notify(
                    "No browser can be started here; press c to copy the URL", severity="warning"
                )
            return
        if self.launch.ssh_command:
            fleet = getattr(self.app, "fleet", None)
            if fleet is not None:
                open_launch(
                    self.app,
                    fleet,
                    self._host,
                    self._container_id,
                    self._name or self._container_id[:12],
                    self.launch,
                )

    def _show_reach(self) -> None:
        reach = self.query_one("#details-reach", Static)
        text = self._reach()
        if text != self._reach_shown:  # an update lays the screen out again, even if equal
            self._reach_shown = text
            reach.update(text)
        reach.display = bool(text.plain)
        self.refresh_bindings()

    def _reach(self) -> Text:
        return reach_text(self.launch, self._read_only) if self.launch else Text()

    def on_screen_resume(self) -> None:
        """Shown (first, again for another container, or back from a screen above): what
        the engine and the recording say now."""
        self._load()
        self._load_gpu_history()

    def _showing(self) -> tuple[str, str]:
        """Which container the screen shows now: a worker's answer for another is dropped."""
        return (self._host.name, self._container_id)

    @work(thread=True, exclusive=True, group="details-gpu", exit_on_error=False)
    def _load_gpu_history(self) -> None:
        """The container's GPU history from the recording, if there is one for it."""
        from gpuconsole.accounting.history import container_history
        from gpuconsole.accounting.report import usage
        from gpuconsole.accounting.store import RecordingError, open_for_reading, recording_path

        target = self._showing()
        host, container_id = target
        try:
            db = open_for_reading(recording_path())
        except RecordingError:
            return  # no recording: nothing to show, nothing to say
        try:
            history = container_history(db, host, container_id, 60)
            if history is None:
                return
            mine = [
                r
                for r in usage(db, since=0, by="container", host=host)
                if r.container_id == container_id
            ]
        finally:
            db.close()
        self.app.call_from_thread(self._show_gpu_history, target, gpu_history_text(history, mine))

    def _show_gpu_history(self, target: tuple[str, str], text: Text) -> None:
        if target != self._showing():
            return
        panel = self.query_one("#details-gpu", Static)
        panel.update(text)
        panel.display = True

    @work(thread=True, exclusive=True, group="details", exit_on_error=False)
    def _load(self) -> None:
        from gpuconsole.backend.launch import describe_launch

        target = self._showing()
        host, container_id, launch = self._host, self._container_id, self.launch
        try:
            details = host.engine.inspect(container_id)
            if launch is None and details.summary.variant in ("jupyter", "ssh"):
                # The engine is the source of truth: URL and ssh command come from its labels.
                launch = self._tunnelled(
                    host, container_id, describe_launch(host.engine, container_id)
                )
        except GpuconsoleError as exc:
            self.app.call_from_thread(self._show_error, target, str(exc))
            return
        self.app.call_from_thread(self._show, target, details, launch)

    def _show(
        self, target: tuple[str, str], details: ContainerDetails, launch: LaunchResult | None
    ) -> None:
        if target != self._showing():
            return
        self.launch = launch
        self._container_running = details.summary.running
        if details != self._details:  # else shown from the first frame: no second layout
            self._details = details
            self.query_one("#details-body", Static).update(render_details(details))
        self._show_reach()

    def _show_error(self, target: tuple[str, str], message: str) -> None:
        if target != self._showing():
            return
        self.query_one("#details-body", Static).update(Text(message, style="red"))

"""The host list (``h``): every host's state, latency, engine version, GPUs and containers.

``enter`` shows that host alone, ``a`` every host; ``t`` trusts a host key never seen before
(after showing its SHA256 fingerprint; a changed key is refused and cannot be accepted here);
``r`` reconnects at once instead of waiting for the back-off; ``s`` opens a login shell on the
host (over its SSH connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from gpuconsole.present import format as fmt
from gpuconsole.ui.screens.confirm import ConfirmScreen
from gpuconsole.ui.widgets.footer import QuietFooter
from gpuconsole.ui.widgets.host_line import host_state

if TYPE_CHECKING:
    from gpuconsole.ui.screens.containers import ContainersScreen

COLUMNS = (
    ("name", "Host"),
    ("address", "Address"),
    ("state", "State"),
    ("latency", "Latency"),
    ("engine", "Engine"),
    ("gpus", "GPUs"),
    ("containers", "Containers"),
    ("note", "Note"),
)


class HostsScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("enter", "choose", "Show this host"),
        Binding("a", "all", "All hosts"),
        Binding("t", "trust", "Trust host key"),
        Binding("r", "retry", "Reconnect"),
        Binding("s", "shell", "Shell on host"),
        Binding("escape", "dismiss_none", "Back"),
    ]

    def __init__(self, main: ContainersScreen) -> None:
        super().__init__()
        self.main = main

    def compose(self) -> ComposeResult:
        with Vertical(id="hosts"):
            yield Static("Hosts", id="hosts-title")
            yield DataTable(id="hosts-table", cursor_type="row", zebra_stripes=True)
        yield QuietFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self._fill()
        self.set_interval(1.0, self._fill)
        table.focus()

    def rows(self) -> list[tuple[str, tuple[str | Text, ...]]]:
        main = self.main
        out: list[tuple[str, tuple[str | Text, ...]]] = []
        for host in main.hosts:
            status = main.statuses[host.name]
            link = getattr(host.machine, "status", None) or main.links.get(host.name)
            state, style = host_state(status, link)
            latency = getattr(link, "latency_ms", None)
            view = main.gpu_views.get(host.name)
            snap = main.snapshots.get(host.name)
            note = ""
            if state != "up":
                note = str(getattr(link, "reason", "") or status.error or "")
            elif view is not None and view.snapshot.error:
                note = view.snapshot.error
            out.append(
                (
                    host.name,
                    (
                        Text(
                            host.name, style="bold underline" if host.name == main.scope else "bold"
                        ),
                        host.spec.ssh or host.address,
                        Text(state, style=style),
                        f"{latency:.0f} ms" if latency is not None else fmt.NONE,
                        status.engine_version or fmt.NONE,
                        str(len(view.snapshot.gpus)) if view is not None else fmt.NONE,
                        f"{sum(c.running for c in snap.containers)}/{len(snap.containers)}"
                        if snap is not None
                        else fmt.NONE,
                        note,
                    ),
                )
            )
        return out

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        existing = {str(r.key.value) for r in table.ordered_rows}
        for key, cells in self.rows():
            if key in existing:
                for (col, _), cell in zip(COLUMNS, cells, strict=True):
                    table.update_cell(key, col, cell, update_width=True)
            else:
                table.add_row(*cells, key=key)

    def _selected(self) -> Any:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.main.by_name.get(str(key))

    def action_choose(self) -> None:
        host = self._selected()
        if host is not None:
            self.dismiss(host.name)

    def action_all(self) -> None:
        self.dismiss("")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_shell(self) -> None:
        host = self._selected()
        if host is None:
            return
        if self.main.read_only:
            from gpuconsole.backend.errors import ReadOnlyMode

            self.notify(str(ReadOnlyMode("host shell")), title="Read-only", severity="warning")
            return
        from gpuconsole.backend.shells.session import ShellRequest
        from gpuconsole.ui.handover import open_shell

        open_shell(self.app, self.main.fleet, ShellRequest(host))  # the host's login shell

    def action_retry(self) -> None:
        host = self._selected()
        retry = getattr(host.machine, "retry_now", None) if host is not None else None
        if retry is None:
            self.notify("Nothing to reconnect: this host is not reached over SSH")
            return
        retry()
        self.main.fleet.wake(host.name)
        self.notify(f"Reconnecting to {host.name}…")

    def action_trust(self) -> None:
        host = self._selected()
        if host is None:
            return
        error: Any = getattr(host.machine, "last_error", None)
        if type(error).__name__ != "HostKeyUnknown":
            self.notify(
                f"{host.name} has no unknown host key to trust (a changed key is never accepted "
                "here: check it, then remove the old line from known_hosts)",
                severity="warning",
            )
            return
        body = (
            f"The SSH host key of {host.name} ({host.spec.ssh}) is not in known_hosts.\n\n"
            f"{error.key_type} key fingerprint: {error.fingerprint}\n\n"
            "Compare it with the server's (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on it). "
            "Trust it and add it to known_hosts?"
        )

        def decided(yes: bool | None) -> None:
            if not yes:
                return
            from gpuconsole.backend.ssh.trust import remember_host_key

            try:
                remember_host_key(error.hostname, error.port, error.key, error.known_hosts_path)
            except OSError as exc:
                self.notify(f"cannot write {error.known_hosts_path}: {exc}", severity="error")
                return
            self.notify(f"Trusted {host.name}'s key ({error.fingerprint}); connecting…")
            host.machine.retry_now()
            self.main.fleet.wake(host.name)

        self.app.push_screen(ConfirmScreen("Trust host key", body, None, yes="Trust"), decided)

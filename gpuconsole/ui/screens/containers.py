"""The main screen: the host line, the containers table, and the keys that act on a container.

One table for the whole fleet (with a host column) or one host at a time (``[`` / ``]``, or the
host list on ``h``). A host that stops answering keeps its rows, greyed with their age and the
reason; the others carry on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from gpuconsole.backend.errors import GpuconsoleError, ReadOnlyMode
from gpuconsole.backend.hosts.host import Host
from gpuconsole.backend.launch import LaunchResult
from gpuconsole.backend.models import ContainerDetails, EngineState, HostSnapshot, HostStatus
from gpuconsole.monitor.alerts import Alert, AlertLog
from gpuconsole.monitor.gpu_view import GpuView
from gpuconsole.present import format as fmt
from gpuconsole.ui.messages import HostDown, HostSlow, LinkChanged, PollFailed, SnapshotReady
from gpuconsole.ui.screens.confirm import ConfirmScreen
from gpuconsole.ui.screens.details import DetailsScreen
from gpuconsole.ui.screens.quiet_focus import QuietFocusScreen
from gpuconsole.ui.widgets.containers_table import ContainersTable, HostRows
from gpuconsole.ui.widgets.engine_down import EngineDown
from gpuconsole.ui.widgets.fast_table import FastTable
from gpuconsole.ui.widgets.footer import QuietFooter
from gpuconsole.ui.widgets.gpu_panel import GpuPanel
from gpuconsole.ui.widgets.help_panel import HelpPanel
from gpuconsole.ui.widgets.host_line import HostLine

if TYPE_CHECKING:
    from textual.timer import Timer

    from gpuconsole.monitor.fleet import Fleet
    from gpuconsole.monitor.host_monitor import HostMonitor
    from gpuconsole.ui.screens.gpus import GpuScreen

#: How long a fleet's table waits after one host's refresh for the others of the same beat.
FLEET_COALESCE_S = 0.25
#: The cursor rests this long on a row before its details are fetched ahead; fetched details
#: are shown as they are for this long (then checked again by the details screen anyway).
PREFETCH_AFTER_S = 0.2
INSPECT_FRESH_S = 10.0
PREFETCH_KEPT = 8
#: Actions that change something; refused (with a message) in read-only mode.
MUTATING = frozenset({"start", "stop", "restart", "remove"})
#: Sessions that hand over the terminal: a shell can change anything, so read-only refuses.
SESSIONS = frozenset({"shell", "host_shell", "open"})


class ContainersScreen(QuietFocusScreen[None]):
    BINDINGS = [
        Binding("s", "start", "Start", tooltip="Start the selected container"),
        Binding("x", "stop", "Stop", tooltip="Stop the selected container"),
        Binding("r", "restart", "Restart", tooltip="Restart the selected container"),
        Binding("d", "remove", "Remove", tooltip="Remove the selected container (asks first)"),
        Binding("slash", "filter", "Filter", tooltip="Filter by name or image"),
        Binding("a", "toggle_all", "All/Running", tooltip="Show or hide stopped containers"),
        Binding("g", "gpus", "GPUs", tooltip="GPU graphs and processes"),
        Binding("n", "launch", "Launch", tooltip="Launch a Jupyter, SSH or plain container"),
        Binding(
            "b",
            "build_variant",
            "Build variant",
            tooltip="Build an SSH or Jupyter variant of an image",
        ),
        Binding(
            "enter",
            "details",
            "Details",
            tooltip="Details: image, command, limits, mounts, ports, labels, env",
        ),
        Binding("l", "logs", "Logs", tooltip="Follow the selected container's output"),
        Binding("e", "shell", "Shell", tooltip="A shell in the selected container (bash, else sh)"),
        Binding(
            "E",
            "host_shell",
            "Host shell",
            show=False,
            tooltip="A login shell on the selected container's host (over its SSH connection)",
        ),
        Binding(
            "o",
            "open",
            "Open",
            show=False,
            tooltip="An SSH launch: ssh into it; a Jupyter launch: open it in the browser",
        ),
        Binding("h", "hosts", "Hosts", tooltip="Every host: state, latency, engine, GPUs"),
        Binding(
            "exclamation_mark",
            "alerts",
            "Alerts",
            tooltip="Alerts (idle reservations, hot, full or lost GPUs) and history",
        ),
        Binding(
            "u",
            "usage",
            "Usage",
            show=False,
            tooltip="GPU time, energy and idle reservations per container (from the recording)",
        ),
        Binding("left_square_bracket", "prev_host", "Prev host", show=False),
        Binding("right_square_bracket", "next_host", "Next host", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("question_mark", "help", "Help", tooltip="This help"),
        Binding("q", "app.quit", "Quit", tooltip="Quit gpuconsole"),
    ]

    def __init__(
        self,
        hosts: Sequence[Host],
        fleet: Fleet,
        read_only: bool,
        with_gpus: bool = False,
    ) -> None:
        super().__init__()
        self.hosts = tuple(hosts)
        self.by_name = {h.name: h for h in self.hosts}
        self.fleet = fleet
        self.read_only = read_only
        #: None: every host in one table; else the one host shown.
        self.scope: str | None = None
        self.statuses = {
            h.name: HostStatus(h.name, h.address, EngineState.UNKNOWN) for h in self.hosts
        }
        self.snapshots: dict[str, HostSnapshot] = {}
        self.down_since: dict[str, float] = {}
        #: Hosts whose engine took a request and has not answered (hung, overloaded): since
        #: when (monotonic). Their rows stay, greyed with that age, until a refresh lands.
        self.slow_since: dict[str, float] = {}
        #: The stale notes last drawn (host -> note): the ageing tick redraws only on a change.
        self._notes: dict[str, str] = {}
        #: Hosts already swept for what failed launches left (once per session).
        self._swept: set[str] = set()
        #: The pending table update that gathers a fleet's refreshes of one beat.
        self._flush: Timer | None = None
        #: The same for GPU samples: the hosts with news, whether any container's GPU use
        #: moved (its rows then change), and the pending draw.
        self._gpus_changed: set[str] = set()
        self._usage_moved = False
        self._gpu_flush: Timer | None = None
        self.attempts: dict[str, int] = {}
        self.links: dict[str, Any] = {}
        self.gpu_views: dict[str, GpuView] = {}
        self.needle = ""
        #: (host, container id) -> (when, its inspect): the rows the cursor rested on lately.
        self._inspected: dict[tuple[str, str], tuple[float, ContainerDetails]] = {}
        self._prefetch_timer: Timer | None = None
        self._prefetched_key: str | None = None
        self._details_screen: DetailsScreen | None = None
        self._gpu_screen: GpuScreen | None = None
        self.with_gpus = with_gpus
        self.pending_select: tuple[str, str] | None = None
        #: Data arrived while another screen covered this one: drawn when it shows again.
        self._behind = False
        #: True while composed: the app hands monitor news over only then (not before the
        #: widgets exist, not while the app tears them down).
        self.live = False

    # -- one-host views (the console of a single host reads as it always did) ---------------

    @property
    def host(self) -> Host:
        """The host in scope, else the first."""
        return self.by_name[self.scope] if self.scope else self.hosts[0]

    @property
    def poller(self) -> HostMonitor:
        return self.fleet[self.host.name]

    @property
    def status(self) -> HostStatus:
        return self.statuses[self.host.name]

    @property
    def snapshot(self) -> HostSnapshot | None:
        return self.snapshots.get(self.host.name)

    @property
    def gpu_view(self) -> GpuView | None:
        return self.gpu_views.get(self.host.name)

    def link_of(self, name: str) -> Any:
        """The SSH link's current state (None for the local host)."""
        return getattr(self.by_name[name].machine, "status", None) or self.links.get(name)

    def in_scope(self) -> list[Host]:
        return [self.by_name[self.scope]] if self.scope else list(self.hosts)

    def compose(self) -> ComposeResult:
        # What shows and hides over the rest comes first: Textual numbers the painting order
        # of a screen's widgets from its last child back, so a widget shown or hidden at the
        # end renumbers every other one, and a changed number repaints it (the whole screen
        # for `?` or `/`, 24 KB to the terminal). Shown or hidden first, it renumbers nothing.
        yield HelpPanel()
        yield Input(
            placeholder="filter by name or image — enter to keep, esc to clear", id="filter"
        )
        yield HostLine(id="hostline")
        if self.with_gpus:
            yield GpuPanel(id="gpu-panel")
        yield ContainersTable(id="containers")
        yield EngineDown(id="engine-down")
        yield QuietFooter()

    @property
    def table(self) -> ContainersTable:
        return self.query_one(ContainersTable)

    def on_mount(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = False
        box.disabled = True  # hidden: it must not catch keys (focus falls back to the screen)
        self.watch(box, "value", self._filter_changed, init=False)
        self.query_one(EngineDown).display = False
        self._refresh_host_line()
        self.table.focus()
        # Ages the notes of hosts that do not answer; paused while every host answers.
        self._ager = self.set_interval(1.0, self._age_stale_rows, pause=True)
        self.fleet.start()  # results land here, so only now
        self.live = True

    def on_unmount(self) -> None:
        self.live = False

    # -- data from the monitors -------------------------------------------------------------

    def seen(self) -> bool:
        """Whether any of this screen shows: it is on top, or every screen above is see-through
        (a dialog). Hidden under the GPU or logs screen, it keeps the data and draws nothing."""
        stack = self.app.screen_stack
        if self not in stack:
            return False
        return all(s.styles.background.a < 1 for s in stack[stack.index(self) + 1 :])

    def on_screen_resume(self) -> None:
        if self._behind:
            self._behind = False
            self._show_table()
            for host in self.in_scope():
                view = self.gpu_views.get(host.name)
                if view is not None:
                    self.show_gpus(view, host.name)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        name = message.host
        was_down = self.statuses[name].state is EngineState.DOWN
        slow_since = self.slow_since.pop(name, None)
        self.snapshots[name] = message.snapshot
        self.statuses[name] = message.snapshot.status
        self.down_since.pop(name, None)
        where = self.by_name[name].address
        if was_down:
            self.notify(f"Docker engine at {where} is back", title="Engine")
            self.refresh_bindings()
        elif slow_since is not None:
            late = fmt.waited(time.monotonic() - slow_since)
            self.notify(f"Docker engine at {where} answers again (after {late})", title="Engine")
        self._close_stopped_tunnels(name, message.snapshot)
        if name not in self._swept and not self.read_only:
            self._swept.add(name)
            self.run_worker(
                partial(self._sweep, self.by_name[name]),
                thread=True,
                group="sweep",
                exit_on_error=False,
            )
        if not self.seen():
            self._behind = True
        elif len(self.hosts) == 1:
            self._show_table()
        elif self._flush is None:
            # A fleet's hosts refresh on the same beat: one table update for all of them.
            self._flush = self.set_timer(FLEET_COALESCE_S, self._show_table_now)

    def _sweep(self, host: Host) -> None:
        """Remove what failed launches left on the host (created, never started, their launch
        over: an engine that died between create and start), once per host and session."""
        from gpuconsole.backend.launch import remove_abandoned

        for line in remove_abandoned(host.engine):
            self.app.call_from_thread(self.notify, line, title="Cleaned up", timeout=10)

    def _show_table_now(self) -> None:
        self._flush = None
        if self.seen():
            self._show_table()
        else:
            self._behind = True

    def _show_table(self) -> None:
        had_rows = bool(self.table.row_count)
        self._apply_table()
        if self.pending_select is not None and self.table.select_id(
            self.pending_select[1], self.pending_select[0]
        ):
            self.pending_select = None
        self._refresh_host_line()
        if had_rows != bool(self.table.row_count):
            # The footer's keys depend on an engine being up and a row to act on: rebuild it
            # only when that changed (it is a full re-render of the footer).
            self.refresh_bindings()

    def _close_stopped_tunnels(self, name: str, snapshot: HostSnapshot) -> None:
        """A tunnel lives as long as its container runs."""
        host = self.by_name[name]
        if host._tunnels is None:
            return
        running = {c.id for c in snapshot.containers if c.running}
        for key in list(host.tunnels.keys()):
            if key.split(":", 1)[0] not in running:
                host.tunnels.close_key(key)

    def _panel_shown(self) -> bool:
        """The engine-down panel replaces the table: every host in scope is down and none left
        rows to show (a dead engine's are dropped; a hung one's stay, greyed)."""
        scope = self.in_scope()
        return all(self.statuses[h.name].state is EngineState.DOWN for h in scope) and not any(
            h.name in self.snapshots for h in scope
        )

    def stale_notes(self) -> dict[str, str]:
        """Host -> what its greyed rows say: how long its engine has not answered, and why."""
        now = time.monotonic()
        notes = {}
        for name, since in self.slow_since.items():
            notes[name] = f"engine not answering for {fmt.waited(now - since)}"
        for name, since in self.down_since.items():
            if name not in notes:
                error = self.statuses[name].error or "down"
                notes[name] = f"no answer for {fmt.waited(now - since)}: {error}"
        return notes

    def _apply_table(self) -> None:
        if self._panel_shown():
            return
        scope = self.in_scope()
        parts = []
        notes = self._notes = self.stale_notes()
        for host in scope:
            snap = self.snapshots.get(host.name)
            if snap is None:
                continue
            view = self.gpu_views.get(host.name)
            stale = notes.get(host.name)
            idle = self._idle_alerts(host.name)
            parts.append(HostRows(host.name, snap, view.usage() if view else {}, stale, idle))
        self.table.apply(parts, self.needle, with_host=len(scope) > 1)
        if self.table.selected_key != self._prefetched_key:  # the first rows, a filter
            self._prefetch_soon()
        elif self._prefetch_timer is None and self._prefetch_due():
            # The cursor rests: its row's details are fetched again once half their shelf life
            # is over, so `enter` after a long rest opens on them too, not on "Loading…" and an
            # engine round trip (one inspect every few seconds at most, none while covered).
            self._prefetch_soon()
        self.table.display = True
        self.query_one(EngineDown).display = False

    def _idle_alerts(self, host: str) -> Mapping[str, Alert]:
        """Container id -> its live idle-reservation alert (the table flags those rows)."""
        log: AlertLog | None = getattr(self.app, "alert_log", None)
        return log.idle_reservations(host) if log is not None else {}

    def alerts_changed(self) -> None:
        """An idle-reservation alert was raised or cleared: the rows flagged change."""
        if self.seen():
            self._apply_table()
        else:
            self._behind = True

    def action_usage(self) -> None:
        from gpuconsole.ui.screens.usage import UsageScreen

        self.app.push_screen(UsageScreen())

    def action_alerts(self) -> None:
        from gpuconsole.ui.screens.alerts import AlertsScreen

        log: AlertLog | None = getattr(self.app, "alert_log", None)
        settings = getattr(self.app, "alert_settings", None)
        self.app.push_screen(AlertsScreen(log or AlertLog(), settings, len(self.hosts) > 1))

    def _age_stale_rows(self) -> None:
        if not (self.down_since or self.slow_since):
            self._notes = {}
            self._ager.pause()
            return
        if self.stale_notes() != self._notes and self.seen():
            self._apply_table()
            self._refresh_host_line()

    def on_host_slow(self, message: HostSlow) -> None:
        """A refresh is late: the engine took the request and has not answered. Say so now,
        with the rows greyed, rather than show the last list as if it were live."""
        name = message.host
        if name in self.slow_since:
            return
        self.slow_since[name] = message.since
        self._ager.resume()
        if self.seen():
            self._apply_table()
        else:
            self._behind = True
        self._refresh_host_line()
        waited = fmt.waited(time.monotonic() - message.since)
        where = self.by_name[name].address
        self.notify(
            f"Docker engine at {where} is not answering (waiting {waited}); the rows shown are "
            "its last answer",
            title="Engine" if len(self.hosts) == 1 else f"{name}: engine",
            severity="warning",
        )

    def show_gpus(self, view: GpuView, host: str | None = None) -> None:
        """Called by the app for every GPU sample of every host. A fleet's samples of one beat
        are drawn together (one frame a second, not one per host)."""
        name = host or view.snapshot.host
        before = self.gpu_views.get(name)
        self.gpu_views[name] = view
        # Attribution changes at its own, slower rate: the table only when its cells would.
        if before is None or (
            view.attribution is not before.attribution and view.usage() != before.usage()
        ):
            self._usage_moved = True
        self._gpus_changed.add(name)
        if len(self.hosts) == 1:
            self._show_gpus_now()
        elif self._gpu_flush is None:
            self._gpu_flush = self.set_timer(FLEET_COALESCE_S, self._show_gpus_now)

    def _show_gpus_now(self) -> None:
        self._gpu_flush = None
        if not self.seen():
            self._behind = True
            return
        changed, self._gpus_changed = self._gpus_changed, set()
        views = {
            h.name: self.gpu_views[h.name] for h in self.in_scope() if h.name in self.gpu_views
        }
        if changed & views.keys():
            for panel in self.query(GpuPanel):  # none while the screen is still composing
                panel.show_hosts(views, changed=changed)
        if self._usage_moved:
            self._usage_moved = False
            self._apply_table()

    def action_launch(self) -> None:
        if self._refuse_if_read_only("launch"):
            return
        from gpuconsole.settings.config import config_path
        from gpuconsole.settings.profiles import load_profiles
        from gpuconsole.ui.screens.launch_form import LaunchForm

        path = getattr(self.app, "config_path", None) or config_path()
        try:
            profiles = dict(load_profiles(path))
        except GpuconsoleError as exc:
            self.notify(f"profiles not loaded: {exc}", severity="warning")
            profiles = {}
        selected = self.table.selected
        first = self.scope or (selected[0] if selected else self.hosts[0].name)
        self.app.push_screen(
            LaunchForm(self.by_name[first], self.gpu_view_of, profiles, path, hosts=self.hosts),
            self._launched,
        )

    def gpu_view_of(self, name: str) -> GpuView | None:
        return self.gpu_views.get(name)

    def action_build_variant(self) -> None:
        if self._refuse_if_read_only("build-variant"):
            return
        from gpuconsole.ui.screens.build_variant import BuildVariantScreen

        selected = self.table.selected
        host = self.by_name[selected[0]] if selected else self.host
        c = selected[1] if selected else None

        def built(tag: str | None) -> None:
            if tag:
                self.notify(f"{tag} is ready: press n and use it as the image", title="Built")

        self.app.push_screen(BuildVariantScreen(host.engine, c.image if c else ""), built)

    def _launched(self, result: LaunchResult | None) -> None:
        if result is None:
            return
        host = self.by_name.get(result.host, self.host)
        self.pending_select = (host.name, result.id)
        self.fleet.wake(host.name)
        details = DetailsScreen(
            host, result.id, result.name, launch=result, read_only=self.read_only
        )
        reach = details.reach_target() or ""
        self.notify(f"{result.name} is up on {host.name}. {reach}", title="Launched", timeout=10)
        self.app.push_screen(details)

    def action_gpus(self) -> None:
        if not self.with_gpus:
            self.notify("No GPU source (start without --no-gpu)", severity="warning")
            return
        from gpuconsole.ui.screens.gpus import GpuScreen

        screen = self._gpu_screen
        if screen is None:
            # Installed: kept (not removed) when closed, and shown again at the next `g`: its
            # blocks and graphs are composed once, not mounted and laid out at every opening
            # and unmounted at every escape.
            screen = self._gpu_screen = GpuScreen()
            self.app.install_screen(screen, name=f"gpus-{id(self)}")
        elif screen in self.app.screen_stack:
            return
        self.app.push_screen(screen)

    def on_host_down(self, message: HostDown) -> None:
        name = message.host
        first = self.statuses[name].state is not EngineState.DOWN
        told = name in self.slow_since  # "not answering" was already said
        self.statuses[name] = message.status
        self.attempts[name] = message.attempt
        self.down_since.setdefault(name, time.monotonic())
        self._ager.resume()
        if message.timed_out:
            # Hung, not gone: its containers most likely still run; keep them, greyed.
            self.slow_since.setdefault(name, self.down_since[name])
        else:
            self.slow_since.pop(name, None)
            if len(self.hosts) == 1:
                self.snapshots.pop(name, None)
        if self._panel_shown():
            self.table.clear_rows()
            self.table.display = False
            panel = self.query_one(EngineDown)
            panel.display = True
            panel.show(message.status, message.attempt, message.retry_in)
        elif first or name in self.slow_since:
            self._apply_table()  # its rows greyed (later ages come from _age_stale_rows)
        self._refresh_host_line()
        if first:
            self.refresh_bindings()
        if first and not told:
            title = "Docker engine unreachable" if len(self.hosts) == 1 else f"{name} is down"
            self.notify(f"{message.status.error}", title=title, severity="error")

    def on_link_changed(self, message: LinkChanged) -> None:
        before = self.links.get(message.host)
        self.links[message.host] = message.link
        self._refresh_host_line()
        state = str(getattr(getattr(message.link, "state", None), "value", ""))
        was = str(getattr(getattr(before, "state", None), "value", ""))
        if state in ("needs-trust", "refused") and state != was:
            self.notify(
                f"{message.host}: {getattr(message.link, 'reason', '')}"
                + (" — press h, select it, then t to trust it" if state == "needs-trust" else ""),
                title="SSH host key" if state == "needs-trust" else "SSH refused",
                severity="warning" if state == "needs-trust" else "error",
                timeout=20,
            )

    def on_poll_failed(self, message: PollFailed) -> None:
        title = "Refresh failed" + (f" ({message.host})" if len(self.hosts) > 1 else "")
        self.notify(message.error, title=title, severity="error")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's unexpected error becomes a notification."""
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.notify(str(event.worker.error), title="Error", severity="error")

    def _refresh_host_line(self) -> None:
        lines = self.query(HostLine)
        if not lines:  # the screen is being torn down (a worker's last state change)
            return
        line = lines.first()
        if len(self.hosts) == 1:
            since = self.slow_since.get(self.host.name)
            waited = None if since is None else fmt.waited(time.monotonic() - since)
            line.show(
                self.status,
                self.snapshot,
                self.read_only,
                self.fleet.show_all,
                self.needle,
                not_answering_for=waited,
            )
            return
        line.show_fleet(
            [
                (h.name, self.statuses[h.name], self.snapshots.get(h.name), self.link_of(h.name))
                for h in self.hosts
            ],
            self.scope,
            self.read_only,
            self.fleet.show_all,
            self.needle,
            not_answering=frozenset(self.slow_since),
        )

    # -- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING | SESSIONS | {"details", "logs"} and action != "host_shell":
            selected = self.table.selected if self.table.row_count else None
            if selected is None or self.statuses[selected[0]].state is not EngineState.UP:
                return None  # shown dimmed: nothing to act on
        # The host keys mean nothing in a one-host console: keep them out of the footer.
        return not (action in ("prev_host", "next_host", "hosts") and len(self.hosts) == 1)

    def _selected(self) -> tuple[Host, str, str] | None:
        selected = self.table.selected
        if selected is None:
            self.notify("No container selected", severity="warning")
            return None
        host, c = selected
        return self.by_name[host], c.id, c.name

    def _refuse_if_read_only(self, action: str) -> bool:
        if self.read_only:
            self.notify(str(ReadOnlyMode(action)), title="Read-only", severity="warning")
            return True
        return False

    def _run_action(
        self, verb: str, done: str, call: Callable[[], None], name: str, host: str = ""
    ) -> None:
        def body() -> None:
            try:
                call()
            except GpuconsoleError as exc:
                message = str(exc)
                if getattr(exc, "timed_out", False):
                    # The request reached the engine: a hung one may still carry it out.
                    message += f" — it may still {verb.lower()} {name} once the engine answers"
                self.app.call_from_thread(
                    self.notify, message, title=f"{verb} failed", severity="error"
                )
                return
            finally:
                self.fleet.wake(host or None)
            self.app.call_from_thread(self.notify, f"{name} {done}", title=verb)

        self.notify(f"{verb} {name}…", timeout=2)
        self.run_worker(body, thread=True, group="actions", exit_on_error=False)

    def action_start(self) -> None:
        if self._refuse_if_read_only("start") or not (sel := self._selected()):
            return
        host, cid, name = sel
        self._run_action("Start", "started", partial(host.engine.start, cid), name, host.name)

    def action_stop(self) -> None:
        if self._refuse_if_read_only("stop") or not (sel := self._selected()):
            return
        host, cid, name = sel
        self._run_action("Stop", "stopped", partial(host.engine.stop, cid), name, host.name)

    def action_restart(self) -> None:
        if self._refuse_if_read_only("restart") or not (sel := self._selected()):
            return
        host, cid, name = sel
        self._run_action("Restart", "restarted", partial(host.engine.restart, cid), name, host.name)

    def action_remove(self) -> None:
        if self._refuse_if_read_only("remove") or not (sel := self._selected()):
            return
        host, cid, name = sel
        c = self.table.rows_shown.get(self.table.selected_key or "")
        running = bool(c and c.running)
        body = f"Remove container {name} ({cid[:12]})?"
        if running:
            body += "\nIt is running: it will be stopped and removed."
        warning = None
        if c is not None and not c.mounts:
            warning = (
                "⚠ This container has no volume mounts: everything written inside it "
                "(notebooks, checkpoints, data) is deleted with it."
            )

        def decided(yes: bool | None) -> None:
            if yes:
                self._run_action(
                    "Remove",
                    "removed",
                    partial(host.engine.remove, cid, force=running),
                    name,
                    host.name,
                )

        self.app.push_screen(
            ConfirmScreen("Remove container", body, warning, yes="Remove"), decided
        )

    def action_details(self) -> None:
        if not (sel := self._selected()):
            return
        host, cid, name = sel
        known = self._inspected.get((host.name, cid))
        fresh = known[1] if known and time.monotonic() - known[0] < INSPECT_FRESH_S else None
        screen = self._details_screen
        if screen is None:
            screen = DetailsScreen(host, cid, name, read_only=self.read_only, details=fresh)
            # Installed: kept (not removed) when closed, and shown again for the next one.
            self.app.install_screen(screen, name=f"details-{id(self)}")
            self._details_screen = screen
        elif screen in self.app.screen_stack:
            return
        else:
            screen.show_container(host, cid, name, fresh)
        self.app.push_screen(screen)

    # The details of the row the cursor rests on are fetched ahead, so `enter` shows them in
    # its first frame (the screen then checks them again): an engine round trip and a second
    # layout were most of what opening the details cost.
    @on(FastTable.CursorMoved)
    def _cursor_moved(self, _event: FastTable.CursorMoved) -> None:
        self._prefetch_soon()

    def _prefetch_soon(self) -> None:
        self._prefetched_key = self.table.selected_key
        if self._prefetch_timer is not None:
            self._prefetch_timer.stop()
        self._prefetch_timer = self.set_timer(PREFETCH_AFTER_S, self._prefetch)

    def _prefetch_due(self) -> bool:
        """Whether the details of the row under the cursor are missing or half-way stale."""
        selected = self.table.selected
        if selected is None:
            return False
        known = self._inspected.get((selected[0], selected[1].id))
        return known is None or time.monotonic() - known[0] >= INSPECT_FRESH_S / 2

    def _prefetch(self) -> None:
        self._prefetch_timer = None
        selected = self.table.selected
        if selected is None or not self.seen():
            return
        host, c = self.by_name[selected[0]], selected[1]
        known = self._inspected.get((host.name, c.id))
        if known and time.monotonic() - known[0] < INSPECT_FRESH_S / 2:
            return

        def fetch() -> None:
            try:
                details = host.engine.inspect(c.id)
            except GpuconsoleError:
                return  # the details screen will say why, if opened
            self.app.call_from_thread(self._inspected_now, host.name, c.id, details)

        self.run_worker(fetch, thread=True, group="prefetch", exclusive=True, exit_on_error=False)

    def _inspected_now(self, host: str, cid: str, details: ContainerDetails) -> None:
        self._inspected[(host, cid)] = (time.monotonic(), details)
        while len(self._inspected) > PREFETCH_KEPT:
            del self._inspected[next(iter(self._inspected))]

    def action_logs(self) -> None:
        if not (sel := self._selected()):
            return
        from gpuconsole.ui.screens.logs import LogsScreen

        host, cid, name = sel
        self.app.push_screen(LogsScreen(host, cid, name))

    # -- sessions: the terminal handed to a shell (see ui/handover.py) -------------------------

    def _shell(self, host: Host, container: str | None) -> None:
        from gpuconsole.backend.shells.session import ShellRequest
        from gpuconsole.ui.handover import open_shell

        # The config's shell is for containers; a host gets its user's login shell.
        shell = getattr(self.app, "shell_command", None) if container else None
        open_shell(self.app, self.fleet, ShellRequest(host, container, shell=shell))

    def action_shell(self) -> None:
        if self._refuse_if_read_only("shell") or not (sel := self._selected()):
            return
        host, cid, name = sel
        c = self.table.rows_shown.get(self.table.selected_key or "")
        if c is None or c.running:
            self._shell(host, name)
            return

        def decided(yes: bool | None) -> None:
            if yes:
                self._start_then_shell(host, cid, name)

        self.app.push_screen(
            ConfirmScreen(
                "Container not running",
                f"{name} is not running ({c.status}). Start it and open a shell?",
                yes="Start",
            ),
            decided,
        )

    def _start_then_shell(self, host: Host, cid: str, name: str) -> None:
        def body() -> None:
            try:
                host.engine.start(cid)
            except GpuconsoleError as exc:
                self.app.call_from_thread(
                    self.notify, str(exc), title="Start failed", severity="error"
                )
                return
            finally:
                self.fleet.wake(host.name)
            self.app.call_from_thread(self._shell, host, name)

        self.notify(f"Starting {name}…", timeout=2)
        self.run_worker(body, thread=True, group="actions", exit_on_error=False)

    def action_host_shell(self) -> None:
        if self._refuse_if_read_only("host shell"):
            return
        selected = self.table.selected
        name = self.scope or (selected[0] if selected else self.hosts[0].name)
        self._shell(self.by_name[name], None)

    def action_open(self) -> None:
        if self._refuse_if_read_only("open") or not (sel := self._selected()):
            return
        host, cid, name = sel
        from gpuconsole.ui.reach import open_launch

        open_launch(self.app, self.fleet, host, cid, name)

    @on(ContainersTable.RowSelected)
    def _row_selected(self, event: ContainersTable.RowSelected) -> None:
        # A double click on the selected row sends two; when the first has already opened the
        # details (a busy machine handles both before the screen shows), the second must not
        # stack another copy that esc would then reveal.
        if self.app.screen is self:
            self.action_details()

    def action_toggle_all(self) -> None:
        self.fleet.show_all = not self.fleet.show_all
        self._refresh_host_line()

    # -- hosts ------------------------------------------------------------------------------

    def set_scope(self, name: str | None) -> None:
        """Show one host (``name``) or every host (None)."""
        self.scope = name
        self._apply_table()
        views = {
            h.name: self.gpu_views[h.name] for h in self.in_scope() if h.name in self.gpu_views
        }
        for panel in self.query(GpuPanel):
            panel.show_hosts(views)
        self._refresh_host_line()
        self.refresh_bindings()

    def _step_scope(self, step: int) -> None:
        order: list[str | None] = [None, *(h.name for h in self.hosts)]
        self.set_scope(order[(order.index(self.scope) + step) % len(order)])

    def action_next_host(self) -> None:
        self._step_scope(1)

    def action_prev_host(self) -> None:
        self._step_scope(-1)

    def action_hosts(self) -> None:
        from gpuconsole.ui.screens.hosts import HostsScreen

        def chosen(result: str | None) -> None:
            if result is not None:
                self.set_scope(result or None)

        self.app.push_screen(HostsScreen(self), chosen)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.disabled = False
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        box.disabled = True
        self.table.focus()

    def _filter_changed(self, value: str) -> None:
        """Watched on the box's value, not by its Changed message: the table and the header
        change in the frame that shows the typed character, not in a second frame after it
        (a message is handled after the frame; a watcher runs where the value is set)."""
        if value == self.needle:
            return
        self.needle = value
        self._apply_table()
        self._refresh_host_line()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
            event.input.disabled = True
        self.table.focus()

    def action_help(self) -> None:
        keys = [
            b
            for b in self.BINDINGS
            if not isinstance(b, Binding) or self.check_action(b.action, ()) is not False
        ]
        self.query_one(HelpPanel).open(keys, self.read_only)

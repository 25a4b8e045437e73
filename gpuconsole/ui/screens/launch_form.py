"""The `n` form: launch a Jupyter, SSH or plain container with limits, from a profile or by hand.

Validation runs on every change (in a worker, against the engine as it is now) and shows each
problem under its field; the launch itself runs in a worker with progress and can be cancelled.
Nothing is created until every field is valid, and a launch that fails is removed again by the
backend — the form only ever shows what happened.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Input,
    Label,
    ProgressBar,
    Select,
    SelectionList,
    Static,
    TextArea,
)
from textual.worker import get_current_worker

from gpuconsole.backend.docker.host import DockerHost
from gpuconsole.backend.errors import GpuconsoleError, LaunchRejected
from gpuconsole.backend.gpu import GpuSnapshot, GpuSourceState
from gpuconsole.backend.hosts.host import Host
from gpuconsole.backend.launch import VARIANTS, LaunchProgress, LaunchResult, LaunchSpec
from gpuconsole.backend.launch.spec import DEFAULT_ULIMITS
from gpuconsole.monitor.gpu_view import GpuView
from gpuconsole.present import format as fmt
from gpuconsole.ui.screens.confirm import ConfirmScreen


def ulimit_hint(applied: tuple[str, ...] | None) -> str:
    """The ulimits field's hint: the defaults this host's engine can set (None: not known yet,
    so the defaults as planned — each is applied only where the engine can set it)."""
    if applied is None:
        shown = " ".join(DEFAULT_ULIMITS) + " where the engine allows"
    else:
        shown = " ".join(applied) or "none (this engine can set none of them)"
    return f"default {shown}; e.g. nofile=65536:65536"


#: Form inputs, in order: (field, label, placeholder). Field names are LaunchSpec's.
INPUTS: tuple[tuple[str, str, str], ...] = (
    ("image", "Image", "e.g. pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"),
    ("name", "Name", "generated when empty (jupyter-<user>-<n>)"),
    ("gpus", "GPUs", "all, none, 0,1 or GPU UUIDs — or pick below"),
    ("memory", "Memory", "e.g. 32g (empty: no limit)"),
    ("cpus", "CPUs", "e.g. 8 (empty: no limit)"),
    ("shm_size", "Shm size", "default 8g for jupyter/ssh"),
    ("port", "Host port", "free one picked when empty (bound to 127.0.0.1)"),
    ("ulimits", "Ulimits", ulimit_hint(None)),  # then the defaults this host's engine gets
)
AREAS: tuple[tuple[str, str], ...] = (
    ("volumes", "Volumes (SRC:DST[:ro], one per line)"),
    ("env", "Env (KEY=VALUE, one per line)"),
)
NO_PROFILE = "(no profile)"


def field_text(value: object) -> str:
    """A spec value as the form shows it (lists space-separated, None empty)."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def gpu_choices(view: GpuView | None) -> list[tuple[str, str]]:
    """One picker line per GPU: index, name, free memory and the containers holding it."""
    if view is None or not view.snapshot.gpus or view.snapshot.replayed:
        return []
    out = []
    for g in view.snapshot.gpus:
        free = (
            g.memory_total_bytes - g.memory_used_bytes
            if g.memory_total_bytes is not None and g.memory_used_bytes is not None
            else None
        )
        holders = ", ".join(view.holders(g.index)) or "free"
        out.append((f"GPU {g.index}  {g.name}  {fmt.size(free)} free  · {holders}", str(g.index)))
    return out


class LaunchForm(ModalScreen[LaunchResult | None]):
    BINDINGS = [
        Binding("ctrl+s", "launch", "Launch", priority=True),
        Binding("escape", "cancel", "Cancel / close"),
    ]

    def __init__(
        self,
        host: Host,
        gpu_view: GpuView | Callable[[str], GpuView | None] | None,
        profiles: dict[str, Any],
        config_path: Path,
        initial: LaunchSpec | None = None,
        hosts: Sequence[Host] = (),
    ) -> None:
        super().__init__()
        self.target = host
        self.hosts = tuple(hosts) or (host,)
        self._views: Callable[[str], GpuView | None] = (
            gpu_view if callable(gpu_view) else (lambda _name: gpu_view)
        )
        self.profiles = profiles
        self.config_path = config_path
        self.initial = initial or LaunchSpec(host=host.name)
        self._cancel: threading.Event | None = None
        self._errors: dict[str, str] = {}

    @property
    def host(self) -> DockerHost:
        """The engine of the host the launch goes to."""
        return self.target.engine

    @property
    def gpu_view(self) -> GpuView | None:
        return self._views(self.target.name)

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        spec = self.initial
        with Vertical(id="launch"):
            yield Static(f"Launch a container on {self.target.name}", id="launch-title")
            with VerticalScroll(id="launch-fields"):
                if len(self.hosts) > 1:
                    with Horizontal(classes="row"):
                        yield Label("Host", classes="field-label")
                        yield Select(
                            [(self._host_label(h), h.name) for h in self.hosts],
                            value=self.target.name,
                            allow_blank=False,
                            id="host",
                        )
                with Horizontal(classes="row"):
                    yield Label("Profile", classes="field-label")
                    options = [(NO_PROFILE, NO_PROFILE)] + [(n, n) for n in self.profiles]
                    yield Select(
                        options, value=spec.profile or NO_PROFILE, allow_blank=False, id="profile"
                    )
                with Horizontal(classes="row"):
                    yield Label("Variant", classes="field-label")
                    yield Select(
                        [(v, v) for v in VARIANTS],
                        value=spec.variant,
                        allow_blank=False,
                        id="variant",
                    )
                yield Static(classes="field-error", id="error-variant")
                for name, label, placeholder in INPUTS:
                    with Horizontal(classes="row"):
                        yield Label(label, classes="field-label")
                        yield Input(
                            field_text(getattr(spec, name)),
                            placeholder=placeholder,
                            id=f"f-{name}",
                        )
                    yield Static(classes="field-error", id=f"error-{name}")
                    if name == "gpus":
                        choices = gpu_choices(self.gpu_view)
                        picker = SelectionList[str](*choices, id="gpu-picker")
                        picker.display = bool(choices)
                        yield picker
                        note = Static(self._no_gpu_note(), classes="note", id="gpu-note")
                        note.display = not choices
                        yield note
                for name, label in AREAS:
                    yield Label(label, classes="area-label")
                    yield TextArea("\n".join(getattr(spec, name)), id=f"f-{name}", classes="area")
                    yield Static(classes="field-error", id=f"error-{name}")
                yield Static(id="launch-warnings")
            yield Static(id="launch-status")
            yield ProgressBar(total=1.0, show_eta=False, id="launch-progress")
            with Horizontal(id="launch-buttons"):
                yield Input(placeholder="profile name", id="save-name")
                yield Button("Save profile", id="save")
                yield Button("Launch (ctrl+s)", variant="primary", id="go")
                yield Button("Cancel (esc)", id="close")

    def _host_label(self, host: Host) -> str:
        """A host in the picker, with its largest free GPU memory: where does a job fit now?"""
        view = self._views(host.name)
        if view is None or not view.snapshot.gpus or view.snapshot.replayed:
            return f"{host.name}  (no GPU data)"
        free = [
            g.memory_total_bytes - g.memory_used_bytes
            for g in view.snapshot.gpus
            if g.memory_total_bytes is not None and g.memory_used_bytes is not None
        ]
        best = fmt.size(max(free)) if free else fmt.NA
        return f"{host.name}  {len(view.snapshot.gpus)} GPU(s), up to {best} free on one"

    @on(Select.Changed, "#host")
    def _host_changed(self, event: Select.Changed) -> None:
        chosen = next((h for h in self.hosts if h.name == event.value), None)
        if chosen is None or chosen is self.target:
            return
        self.target = chosen
        self.initial = self.initial.replace(host=chosen.name)
        if hasattr(self, "_cuda"):
            del self._cuda
        self.query_one("#launch-title", Static).update(f"Launch a container on {chosen.name}")
        choices = gpu_choices(self.gpu_view)
        picker = self.query_one("#gpu-picker", SelectionList)
        picker.clear_options()
        picker.add_options(choices)
        picker.display = bool(choices)
        note = self.query_one("#gpu-note", Static)
        note.update(self._no_gpu_note())
        note.display = not choices
        self._validate()

    def _no_gpu_note(self) -> str:
        view = self.gpu_view
        if view is None:
            return "No GPU telemetry: only 'all' or 'none' can be checked."
        if view.snapshot.replayed:
            return "GPU data is a replay, not this host: only 'all' or 'none' can be checked."
        return f"No GPUs known on this host ({view.snapshot.error or 'none found'})."

    def on_mount(self) -> None:
        self.query_one("#launch-progress").display = False
        self.query_one("#f-image", Input).focus()
        self._validate()

    # -- reading the form -------------------------------------------------------------------

    def spec(self) -> LaunchSpec:
        def val(name: str) -> str:
            return self.query_one(f"#f-{name}", Input).value.strip()

        def lines(name: str) -> tuple[str, ...]:
            text = self.query_one(f"#f-{name}", TextArea).text
            return tuple(line.strip() for line in text.splitlines() if line.strip())

        profile = self.query_one("#profile", Select).value
        return self.initial.replace(
            variant=str(self.query_one("#variant", Select).value),
            image=val("image"),
            name=val("name"),
            gpus=val("gpus") or "none",
            memory=val("memory"),
            cpus=val("cpus") or None,
            shm_size=val("shm_size") or None,
            port=val("port") or None,
            ulimits=tuple(val("ulimits").replace(",", " ").split()),
            volumes=lines("volumes"),
            env=lines("env"),
            profile="" if profile == NO_PROFILE else str(profile),
        )

    def _gpu_snapshot(self) -> GpuSnapshot | None:
        view = self.gpu_view
        if view is None or view.snapshot.replayed:
            return None
        return view.snapshot if view.snapshot.state is not GpuSourceState.UNAVAILABLE else None

    # -- validation -------------------------------------------------------------------------

    @on(Input.Changed)
    @on(TextArea.Changed)
    @on(Select.Changed, "#variant")
    def _changed(self) -> None:
        self._validate()

    @work(thread=True, exclusive=True, group="launch-validate", exit_on_error=False)
    def _validate(self) -> None:
        from gpuconsole.backend.launch import check_launch, parse_gpus, run_preflight

        try:
            spec = self.app.call_from_thread(self.spec)
            snapshot = self._gpu_snapshot()
            check = check_launch(self.host, spec, snapshot)
            findings: list[Any] = []
            if check.plan is not None and not check.plan.gpus.none:
                findings = run_preflight(
                    self.host,
                    parse_gpus(spec.gpus),
                    check.plan.image,
                    gpu_snapshot=snapshot,
                    cuda_driver=self._cuda_driver(),
                )
        except GpuconsoleError as exc:
            self._from_thread(self._show_status, str(exc), "red")
            return
        except Exception as exc:  # a bug must show, not silently stop checking
            self._from_thread(
                self._show_status, f"check failed: {type(exc).__name__}: {exc}", "red"
            )
            return
        if get_current_worker().is_cancelled:
            return  # the form changed meanwhile: a newer check is running, show only that one
        self.app.call_from_thread(
            self._show_check, check.errors, check.warnings, findings, check.notes
        )
        if not spec.ulimits:
            self.app.call_from_thread(self._show_ulimit_hint, check.default_ulimits)

    def _cuda_driver(self) -> int | None:
        """NVML's CUDA driver version, read once (only for a real local GPU source)."""
        if not hasattr(self, "_cuda"):
            from gpuconsole.backend.launch import cuda_driver_version

            self._cuda = (
                cuda_driver_version(self.target.machine)
                if self._gpu_snapshot() is not None
                else None
            )
        return self._cuda

    def _show_ulimit_hint(self, applied: tuple[str, ...]) -> None:
        self.query_one("#f-ulimits", Input).placeholder = ulimit_hint(applied)

    def _show_check(self, errors: Any, warnings: Any, findings: Any = (), notes: Any = ()) -> None:
        self._errors = {}
        for field, message in errors:
            self._errors.setdefault(field, message)
        for widget in self.query(".field-error"):
            field = (widget.id or "").removeprefix("error-")
            message = self._errors.get(field)
            assert isinstance(widget, Static)
            widget.update(Text(message or "", style="red"))
            widget.display = bool(message)
        shown = {(w.id or "").removeprefix("error-") for w in self.query(".field-error")}
        other = [f"{f}: {m}" for f, m in self._errors.items() if f not in shown]
        # Defaults left out or lowered for this host: one line each, before the warnings.
        lines = [Text(f"• {n.message}", style="cyan") for n in notes]
        lines += [Text(f"⚠ {w.message}", style="yellow") for w in warnings]
        lines += [Text(f"✗ {m}", style="red") for m in other]
        style = {"error": "bold red", "warning": "yellow", "info": "cyan"}
        lines += [
            Text(f"GPU pre-flight: {f.text()}", style=style.get(f.severity, "")) for f in findings
        ]
        box = self.query_one("#launch-warnings", Static)
        box.update(Text("\n").join(lines) if lines else "")

    def _show_status(self, message: str, style: str = "") -> None:
        self.query_one("#launch-status", Static).update(Text(message, style=style))

    # -- GPU picker, profiles ---------------------------------------------------------------

    @on(SelectionList.SelectedChanged, "#gpu-picker")
    def _picked(self, event: SelectionList.SelectedChanged[str]) -> None:
        picked = sorted(event.selection_list.selected, key=int)
        self.query_one("#f-gpus", Input).value = ",".join(picked) if picked else "none"

    @on(Select.Changed, "#profile")
    def _profile(self, event: Select.Changed) -> None:
        profile = self.profiles.get(str(event.value))
        if profile is None:
            return
        spec = profile.to_spec(LaunchSpec(host=self.target.name))
        self.query_one("#variant", Select).value = spec.variant
        for name, _label, _ in INPUTS:
            self.query_one(f"#f-{name}", Input).value = field_text(getattr(spec, name))
        for name, _label in AREAS:
            self.query_one(f"#f-{name}", TextArea).text = "\n".join(getattr(spec, name))
        self.query_one("#save-name", Input).value = profile.name

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        from gpuconsole.settings.profiles import profile_from_spec, save_profile

        name = self.query_one("#save-name", Input).value.strip()
        if not name:
            self._show_status("Give the profile a name first (the box left of Save).", "red")
            return
        try:
            save_profile(profile_from_spec(name, self.spec()), self.config_path)
        except GpuconsoleError as exc:
            self._show_status(str(exc), "red")
            return
        self._show_status(f"Saved profile {name!r} in {self.config_path}", "green")

    # -- launching --------------------------------------------------------------------------

    @on(Button.Pressed, "#go")
    def _go(self) -> None:
        self.action_launch()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.action_cancel()

    def action_launch(self, create_missing: bool = False) -> None:
        if self._cancel is not None:
            return  # one launch at a time
        self._cancel = threading.Event()
        bar = self.query_one("#launch-progress", ProgressBar)
        bar.display = True
        bar.update(progress=0.0)
        self.query_one("#go", Button).disabled = True
        self._run_launch(self.spec(), self._cancel, create_missing)

    def action_cancel(self) -> None:
        running = any(w.group == "launch" and w.is_running for w in self.workers)
        if self._cancel is not None and running:
            self._cancel.set()
            self._show_status("Cancelling… (anything created is removed)", "yellow")
            return
        self.dismiss(None)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False)
    def _run_launch(self, spec: LaunchSpec, cancel: threading.Event, create_missing: bool) -> None:
        from gpuconsole.backend.launch import launch

        def progress(p: LaunchProgress) -> None:
            self._from_thread(self._progress, p)

        try:
            result = launch(
                self.host,
                spec,
                gpu_snapshot=self._gpu_snapshot(),
                on_progress=progress,
                cancel=cancel,
                create_missing_sources=create_missing,
            )
        except LaunchRejected as exc:
            self._from_thread(self._rejected, exc, spec)
            return
        except GpuconsoleError as exc:  # LaunchFailed carries the last log lines in its text
            self._from_thread(self._failed, str(exc))
            return
        except Exception as exc:  # never leave the form stuck on "launching"
            self._from_thread(self._failed, f"launch failed: {type(exc).__name__}: {exc}")
            return
        self._from_thread(self.dismiss, result)

    def _from_thread(self, callback: Any, *args: Any) -> None:
        """Hand a result to the UI, unless the app is already gone (quit mid-launch)."""
        if self.app.is_running:
            with contextlib.suppress(Exception):
                self.app.call_from_thread(callback, *args)

    def on_unmount(self) -> None:
        # Closing the form (or quitting) stops a launch in progress; the backend removes
        # whatever it had created.
        if self._cancel is not None:
            self._cancel.set()

    def _progress(self, p: LaunchProgress) -> None:
        self._show_status(f"[{p.stage}] {p.message}")
        if p.fraction is not None:
            self.query_one("#launch-progress", ProgressBar).update(progress=p.fraction)

    def _done(self) -> None:
        self._cancel = None
        self.query_one("#go", Button).disabled = False
        self.query_one("#launch-progress").display = False

    def _rejected(self, exc: LaunchRejected, spec: LaunchSpec) -> None:
        self._done()
        self._show_check(exc.errors, ())
        missing = list(getattr(exc, "missing_sources", ()) or ())
        self._show_status("Nothing was created: fix the fields in red.", "red")
        if missing and all(f == "volumes" for f, _ in exc.errors):

            def decided(yes: bool | None) -> None:
                if yes:
                    self.action_launch(create_missing=True)

            self.app.push_screen(
                ConfirmScreen(
                    "Create missing folders?",
                    "These mount sources do not exist:\n" + "\n".join(missing),
                    None,
                    yes="Create and launch",
                ),
                decided,
            )

    def _failed(self, message: str) -> None:
        self._done()
        self._show_status(message, "red")

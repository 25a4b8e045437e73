"""The `b` screen: build an SSH or Jupyter variant of a base image, with its build log streaming.

Most PyTorch images have no sshd and some no Jupyter; this builds a derived image tagged from
the base (``pytorch/pytorch:2.6.0-cuda12.4-...`` → ``gpuconsole/pytorch-ssh:2.6.0-cuda12.4-...``).
"""

from __future__ import annotations

import re
import threading

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, RichLog, Select, Static

from gpuconsole.backend.docker.host import DockerHost
from gpuconsole.backend.errors import GpuconsoleError

_STEP = re.compile(r"Step (\d+)/(\d+)")


class BuildVariantScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("ctrl+s", "build", "Build", priority=True),
        Binding("escape", "cancel", "Cancel / close"),
    ]

    def __init__(self, host: DockerHost, base: str = "") -> None:
        super().__init__()
        self.host = host
        self.base = base
        self._cancel: threading.Event | None = None
        self.built: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="build"):
            yield Static(f"Build a variant image on {self.host.name}", id="build-title")
            with Horizontal(classes="row"):
                yield Label("Base image", classes="field-label")
                yield Input(
                    self.base,
                    placeholder="e.g. pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
                    id="build-base",
                )
            with Horizontal(classes="row"):
                yield Label("Variant", classes="field-label")
                yield Select(
                    [("ssh", "ssh"), ("jupyter", "jupyter")],
                    value="ssh",
                    allow_blank=False,
                    id="build-variant",
                )
            with Horizontal(classes="row"):
                yield Label("Tag", classes="field-label")
                yield Input(placeholder="derived from the base when empty", id="build-tag")
            yield Static(id="build-status")
            yield ProgressBar(total=1.0, show_eta=False, id="build-progress")
            yield RichLog(id="build-log", max_lines=2000, wrap=False, markup=False)
            with Horizontal(id="build-buttons"):
                yield Button("Build (ctrl+s)", variant="primary", id="build-go")
                yield Button("Close (esc)", id="build-close")

    def on_mount(self) -> None:
        self.query_one("#build-base", Input).focus()

    @on(Button.Pressed, "#build-go")
    def _go(self) -> None:
        self.action_build()

    @on(Button.Pressed, "#build-close")
    def _close(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self._status("Cancelling the build…", "yellow")
            return
        self.dismiss(self.built)

    def action_build(self) -> None:
        if self._cancel is not None:
            return
        base = self.query_one("#build-base", Input).value.strip()
        if not base:
            self._status("base image: give the image to build on, e.g. debian:bookworm", "red")
            return
        variant = str(self.query_one("#build-variant", Select).value)
        tag = self.query_one("#build-tag", Input).value.strip() or None
        self._cancel = threading.Event()
        self.query_one("#build-log", RichLog).clear()
        self.query_one("#build-progress", ProgressBar).update(progress=0.0)
        self.query_one("#build-go", Button).disabled = True
        self._status(f"building the {variant} variant of {base}…")
        self._run(base, variant, tag, self._cancel)

    @work(thread=True, exclusive=True, group="build-variant", exit_on_error=False)
    def _run(self, base: str, variant: str, tag: str | None, cancel: threading.Event) -> None:
        from gpuconsole.backend.launch.build_variant import build_variant

        try:
            result = build_variant(
                self.host,
                base,
                variant,
                tag,
                on_log=lambda line: self.app.call_from_thread(self._log, line),
                cancel=cancel,
            )
        except GpuconsoleError as exc:
            self.app.call_from_thread(self._finished, None, str(exc))
            return
        self.app.call_from_thread(self._finished, result.tag, None)

    def _log(self, line: str) -> None:
        self.query_one("#build-log", RichLog).write(line.rstrip("\n"))
        step = _STEP.search(line)
        if step:
            done, total = int(step.group(1)), int(step.group(2))
            self.query_one("#build-progress", ProgressBar).update(progress=(done - 1) / total)

    def _finished(self, tag: str | None, error: str | None) -> None:
        self._cancel = None
        self.query_one("#build-go", Button).disabled = False
        if tag is not None:
            self.built = tag
            self.query_one("#build-progress", ProgressBar).update(progress=1.0)
            self._status(f"built {tag} — press n to launch it", "green")
        else:
            self._status(error or "build failed", "red")

    def _status(self, message: str, style: str = "") -> None:
        self.query_one("#build-status", Static).update(Text(message, style=style))

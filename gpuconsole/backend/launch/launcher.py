"""Orchestrate one launch: check -> pre-flight -> pull -> create -> start -> ready.

Made to be driven from a TUI worker thread as well as the CLI: progress goes to a callback
(never printed), ``cancel`` (a threading.Event) is honoured between and inside the long steps,
and every failure after the container exists removes it again — a failed or cancelled launch
leaves nothing behind. When the engine itself fails mid-launch (killed, restarted, frozen), the
removal waits a while for it, and what it still cannot remove is named in the error and removed
by the next launch on that host (launch.cleanup). The only state is on the engine (labels +
env), so a restarted console finds a launch again with ``describe_launch``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.docker.host import engine_api
from gpuconsole.backend.errors import (
    DockerApiError,
    GpuconsoleError,
    HostUnreachable,
    LaunchCancelled,
    LaunchFailed,
    LaunchRejected,
)
from gpuconsole.backend.launch.cleanup import (
    CLEANUP_WAIT_S,
    Active,
    engine_hung,
    find_launched,
    new_tag,
    remove_abandoned,
    remove_container,
    stream_errors,
)
from gpuconsole.backend.launch.create import (
    CreateRequest,
    build_create_request,
    notes_from_labels,
)
from gpuconsole.backend.launch.engine_limits import forget_engine_limits, refused_rlimit
from gpuconsole.backend.launch.preflight import Finding, run_preflight
from gpuconsole.backend.launch.readiness import (
    jupyter_status,
    jupyter_url,
    reach_address,
    ssh_banner,
    ssh_command,
)
from gpuconsole.backend.launch.spec import (
    LABEL_BIND,
    LABEL_LAUNCH,
    LABEL_PORT,
    LABEL_SSH_IDENTITY,
    LABEL_SSH_USER,
    LABEL_TOKEN_ENV,
    LABEL_VARIANT,
    Issue,
    LaunchPlan,
    LaunchSpec,
)
from gpuconsole.backend.launch.validate import check_launch
from gpuconsole.backend.models import PortMapping

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost
    from gpuconsole.backend.gpu.models import GpuSnapshot

#: Stages, in order, as reported in LaunchProgress.stage.
STAGES = ("check", "preflight", "pull", "create", "start", "wait", "ready", "cleanup")

GPU_RUNTIME_MISSING = (
    "the engine of host {host!r} has no NVIDIA container runtime, so it cannot give the "
    "container GPUs — install nvidia-container-toolkit on the host (then restart dockerd), "
    "or launch with GPUs: none (--gpus none)"
)


@dataclass(frozen=True, slots=True)
class LaunchProgress:
    """One progress report: ``stage`` (see STAGES), a line for people, a 0..1 fraction if known."""

    stage: str
    message: str
    fraction: float | None = None


ProgressCallback = Callable[[LaunchProgress], None]


@dataclass(frozen=True, slots=True)
class LaunchResult:
    """A running launch and how to reach it."""

    host: str
    id: str
    name: str
    variant: str
    image: str
    url: str | None = None
    token: str | None = None
    ssh_command: str | None = None
    ports: tuple[PortMapping, ...] = ()
    warnings: tuple[Issue, ...] = ()
    findings: tuple[Finding, ...] = field(default=())
    #: Defaults this launch did not get (left out or lowered to fit the host), one line each.
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``launch --json`` object."""
        return {
            "host": self.host,
            "id": self.id,
            "name": self.name,
            "variant": self.variant,
            "url": self.url,
            "token": self.token,
            "ssh_command": self.ssh_command,
            "ports": [
                {
                    "host_ip": p.host_ip,
                    "host_port": p.host_port,
                    "container_port": p.private_port,
                    "protocol": p.protocol,
                }
                for p in self.ports
            ],
            "notes": list(self.notes),
        }


def jump_host(host: DockerHost) -> str | None:
    """For a remote host, the ssh destination to jump through to its loopback."""
    machine = host.machine
    return None if machine.is_local else machine.address


def scrub(text: str, secret_values: tuple[str, ...]) -> str:
    for value in secret_values:
        if value:
            text = text.replace(value, "<token>")
    return text


class _Run:
    """The state of one launch in progress (what to clean up, where to report)."""

    def __init__(
        self,
        host: DockerHost,
        on_progress: ProgressCallback | None,
        cancel: threading.Event | None,
        cleanup_wait: float = CLEANUP_WAIT_S,
    ) -> None:
        self.host = host
        self.api, self.call = engine_api(host)
        self.on_progress = on_progress
        self.cancel = cancel
        self.cleanup_wait = cleanup_wait
        self.stage = "check"
        self.container_id: str | None = None
        self.secrets: tuple[str, ...] = ()
        #: This attempt's LABEL_LAUNCH value, and the name it asked for while the create's
        #: answer is unknown (the engine went away while answering).
        self.tag: str | None = None
        self.pending_name: str | None = None
        self.name = ""
        self.started = False
        #: What a failed launch could not remove (for the error), None when nothing was left.
        self.left_behind: str | None = None

    def report(self, stage: str, message: str, fraction: float | None = None) -> None:
        self.stage = stage
        if self.on_progress is not None:
            # A listener that went away (a closed UI, a closed stderr pipe) must not stop
            # the launch half-way, least of all its cleanup.
            with contextlib.suppress(Exception):
                self.on_progress(LaunchProgress(stage, message, fraction))

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise LaunchCancelled(self.stage)

    def logs(self, tail: int = 20) -> str:
        if self.container_id is None:
            return ""
        try:
            with self.call(self.container_id, "logs"):
                raw = self.api.logs(self.container_id, tail=tail)
        except GpuconsoleError:
            return ""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return scrub(text, self.secrets)

    def remove(self) -> None:
        """Remove what this attempt made. While the engine is away (stopped, restarting) the
        removal is tried again for ``cleanup_wait`` seconds; what is still there after that is
        named in ``left_behind`` — never reported as removed."""
        ref = self.container_id
        if ref is None and self.pending_name is not None:
            ref = self._find_pending()  # None: nothing was made, or it could not be told
        self.pending_name = None
        if ref is None:
            return
        self.container_id = None
        short = ref[:12]
        error = remove_container(self.api, self.call, ref, self.cleanup_wait)
        if error is None:
            self.report("cleanup", f"removed the failed container {short}")
            return
        self._left(f"the container {self.name} ({short})", error)

    def _find_pending(self) -> str | None:
        """The container a create whose answer was lost made after all, if any."""
        assert self.pending_name is not None and self.tag is not None
        deadline = time.monotonic() + self.cleanup_wait
        delay = 0.25
        while True:
            try:
                found = find_launched(self.api, self.call, self.pending_name, self.tag)
            except GpuconsoleError as exc:
                hung = isinstance(exc, HostUnreachable) and engine_hung(exc)
                if hung or time.monotonic() + delay > deadline:
                    self._left(f"a container named {self.pending_name} may be", exc)
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            return found

    def _left(self, what: str, error: GpuconsoleError) -> None:
        """``what`` is "the container N (id)" (known) or "a container named N may be"."""
        host = self.host.name
        rm = f"gpuconsole rm -f {self.name}" + (
            "" if self.host.machine.is_local else f" --host {host}"
        )
        later = (
            f"remove it with: {rm}"
            if self.started
            else f"the next launch on {host} removes it (or: {rm})"
        )
        reason = getattr(error, "reason", None) or str(error)
        went = "stopped answering" if engine_hung(error) else "went away"
        left = f"{what} is left" if what.startswith("the ") else f"{what} left"
        self.left_behind = (
            f"{left} on host {host!r}: the engine {went} before it could be removed "
            f"({reason}) — {later}"
        )
        self.report("cleanup", f"could not remove {self.name}: the engine {went} ({reason})")


def pull_image(
    host: DockerHost,
    image: str,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Pull ``image`` with per-layer progress folded into one line; LaunchRejected on failure."""
    run = _Run(host, on_progress, cancel)
    run.stage = "pull"
    _pull(run, image)


def _pull(run: _Run, image: str) -> None:
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(image)
    run.report("pull", f"pulling {image}")
    layers: dict[str, tuple[int, int]] = {}
    done: set[str] = set()
    last = 0.0
    try:
        with run.call(None, "pull"):
            stream = run.api.pull(repo, tag=tag or "latest", stream=True, decode=True)
            try:
                with stream_errors(run.host, "pull"):
                    for event in stream:
                        run.check_cancel()
                        if event.get("error"):
                            raise DockerApiError(str(event["error"]))
                        status = str(event.get("status", ""))
                        layer = str(event.get("id", ""))
                        detail = event.get("progressDetail") or {}
                        if status == "Downloading" and detail.get("total"):
                            layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
                        if status in ("Download complete", "Pull complete", "Already exists"):
                            done.add(layer)
                        now = time.monotonic()
                        if now - last < 1.0 and status not in ("Pull complete",):
                            continue
                        last = now
                        current = sum(c for c, _ in layers.values())
                        total = sum(t for _, t in layers.values())
                        fraction = current / total if total else None
                        mib = f", {current / 2**20:.0f}/{total / 2**20:.0f} MiB" if total else ""
                        run.report(
                            "pull", f"pulling {image}: {len(done)} layers done{mib}", fraction
                        )
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
    except DockerApiError as exc:
        raise LaunchRejected(
            [
                (
                    "image",
                    f"{image!r} is not on host {run.host.name!r} and pulling it failed: {exc} — "
                    "check the name and tag, log in to the registry (docker login), or build it "
                    "(gpuconsole build-variant)",
                )
            ]
        ) from exc
    run.report("pull", f"pulled {image}", 1.0)


def create_container(host: DockerHost, request: CreateRequest) -> str:
    """Create (not start) the container; LaunchRejected when the name was taken meanwhile."""
    api, call = engine_api(host)
    try:
        with call(request.name, "create"):
            host_config = api.create_host_config(**request.host_config)
            created = api.create_container(
                request.image,
                command=request.command,
                name=request.name,
                environment=request.environment,
                labels=request.labels,
                ports=request.ports or None,
                working_dir=request.working_dir,
                user=request.user,
                host_config=host_config,
                detach=True,
            )
    except DockerApiError as exc:
        if exc.status == 409:
            raise LaunchRejected(
                [("name", f"a container named {request.name!r} already exists — pick another")]
            ) from exc
        raise
    return str(created["Id"])


def _start_error(run: _Run, plan: LaunchPlan, exc: GpuconsoleError) -> GpuconsoleError:
    text = str(exc)
    lowered = text.lower()
    if "could not select device driver" in lowered or "nvidia-container-cli" in lowered:
        return LaunchFailed(GPU_RUNTIME_MISSING.format(host=plan.host), stage="start")
    if "port is already allocated" in lowered or "address already in use" in lowered:
        return LaunchRejected(
            [
                (
                    "port",
                    f"{plan.bind}:{plan.host_port} was taken just now — pick another, or "
                    "leave it empty for a free one",
                )
            ]
        )
    refused = refused_rlimit(text)
    if refused is not None:
        forget_engine_limits(run.host)  # the probe was wrong or could not see: ask again next time
        limits = [u for u in plan.ulimits if u.name == refused] or list(plan.ulimits)
        named = ", ".join(f"{u.name}={u.soft}:{u.hard}" for u in limits)
        return LaunchRejected(
            [
                (
                    "ulimits",
                    f"the engine of host {plan.host!r} refused to set {named} (it runs without "
                    "CAP_SYS_RESOURCE, e.g. inside a container) — lower it to the engine's own "
                    "limit (e.g. --ulimit memlock=8388608), leave it out, or give the engine "
                    "that capability",
                )
            ]
        )
    if "no such file or directory" in lowered and "mount" in lowered:
        return LaunchRejected([("volumes", f"a mount source vanished: {text}")])
    return LaunchFailed(f"the container did not start: {text}", run.logs(), stage="start")


def _without_refused_default(plan: LaunchPlan, error: str) -> LaunchPlan | None:
    """The plan without the default ulimit(s) the runtime just refused, with a note; None when
    the refused limit is one the user asked for (that is their call, and an error)."""
    refused = refused_rlimit(error)
    if refused is None or (refused and refused not in plan.default_ulimits):
        return None
    dropped = tuple(n for n in plan.default_ulimits if not refused or n == refused)
    if not dropped:
        return None
    notes = tuple(
        Issue(
            "ulimits",
            f"left out the default ulimit {u.name}={u.soft}: the engine of host {plan.host!r} "
            "refused to set it at start (raising it needs CAP_SYS_RESOURCE)",
        )
        for u in plan.ulimits
        if u.name in dropped
    )
    return dataclasses.replace(
        plan,
        ulimits=tuple(u for u in plan.ulimits if u.name not in dropped),
        default_ulimits=tuple(n for n in plan.default_ulimits if n not in dropped),
        notes=(*plan.notes, *notes),
    )


def _start(run: _Run, plan: LaunchPlan) -> LaunchPlan | None:
    """Start the created container. A default limit the runtime refuses (the engine could not
    be probed, or the probe was wrong) is no reason to fail: returns the plan without it, to
    create again; any other failure raises in words."""
    assert run.container_id is not None
    try:
        with run.call(plan.name, "start"):
            run.api.start(run.container_id)
    except (LaunchRejected, HostUnreachable):
        raise  # the engine went away: its own words say more than "did not start"
    except GpuconsoleError as exc:
        retry = _without_refused_default(plan, str(exc))
        if retry is None:
            raise _start_error(run, plan, exc) from exc
        forget_engine_limits(run.host)
        for note in retry.notes[len(plan.notes) :]:
            run.report("start", note.message)
        return retry
    return None


def _state(run: _Run) -> dict[str, Any]:
    assert run.container_id is not None
    with run.call(run.container_id, "inspect"):
        attrs: dict[str, Any] = run.api.inspect_container(run.container_id)
    return attrs


def _wait_ready(run: _Run, plan: LaunchPlan, token: str | None, timeout: float) -> None:
    address = reach_address(plan.bind)
    what = {"jupyter": "the Jupyter server", "ssh": "sshd"}.get(plan.variant, "the container")
    run.report("wait", f"waiting for {what} to answer on {address}:{plan.host_port or '-'}")
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        run.check_cancel()
        state = _state(run).get("State") or {}
        if not state.get("Running"):
            code = state.get("ExitCode")
            if plan.variant == "plain" and code == 0:
                return
            raise LaunchFailed(
                f"the container exited (code {code}) before {what} was ready",
                run.logs(),
                stage="wait",
            )
        if plan.variant == "plain":
            return
        assert plan.host_port is not None
        if plan.variant == "jupyter":
            assert token is not None
            status = jupyter_status(address, plan.host_port, token, machine=run.host.machine)
            if status == 200:
                return
        elif ssh_banner(address, plan.host_port, machine=run.host.machine) is not None:
            return
        if time.monotonic() >= deadline:
            raise LaunchFailed(
                f"{what} did not answer within {timeout:g} s", run.logs(), stage="wait"
            )
        if run.cancel is not None:
            run.cancel.wait(delay)
        else:
            time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _ports(attrs: dict[str, Any]) -> tuple[PortMapping, ...]:
    from gpuconsole.backend.docker.parse import details_from_inspect

    return details_from_inspect("", attrs).ports


def launch(
    host: DockerHost,
    spec: LaunchSpec,
    *,
    gpu_snapshot: GpuSnapshot | None = None,
    cuda_driver: int | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    timeout: float = 120.0,
    create_missing_sources: bool = False,
    cleanup_wait: float = CLEANUP_WAIT_S,
) -> LaunchResult:
    """Launch ``spec`` on ``host`` and wait until it answers.

    Raises LaunchRejected (bad fields, all at once; nothing created), LaunchFailed (it did not
    come up; removed again, with its last log lines — or, when the engine went away for longer
    than ``cleanup_wait`` seconds, what was left and how it goes), LaunchCancelled, or another
    GpuconsoleError (engine unreachable). Blocking: call it from a worker thread.

    First removes what failed launches left on the host (launch.cleanup), before the name
    check: the leftover of the same launch tried again usually holds its name.
    """
    run = _Run(host, on_progress, cancel, cleanup_wait)
    run.report("check", f"checking the launch on {host.name}")
    for note in remove_abandoned(host, strict=True):
        run.report("check", note)
    check = check_launch(host, spec, gpu_snapshot)
    if not check.ok and create_missing_sources and check.missing_sources:
        try:
            host.machine.make_dirs(check.missing_sources)
        except GpuconsoleError as exc:
            raise LaunchRejected(
                [("volumes", f"{exc} — create it yourself or fix the path")]
            ) from exc
        for source in check.missing_sources:
            run.report("check", f"created {source} on {host.name}")
        check = check_launch(host, spec, gpu_snapshot)
    plan = check.raise_for_errors()
    run.check_cancel()

    findings: tuple[Finding, ...] = ()
    if not plan.gpus.none:
        run.report("preflight", f"checking GPUs {plan.gpus.text()} on {host.name}")
        findings = tuple(
            run_preflight(
                host, plan.gpus, plan.image, gpu_snapshot=gpu_snapshot, cuda_driver=cuda_driver
            )
        )
        for finding in findings:
            run.report("preflight", f"{finding.severity}: {finding.text()}")
    run.check_cancel()

    if not plan.image_present:
        _pull(run, plan.image)
        run.check_cancel()

    token = secrets.token_hex(24) if plan.variant == "jupyter" else None
    container_id, attrs, plan = _create_and_start(run, plan, token, timeout)
    result = LaunchResult(
        host=host.name,
        id=container_id,
        name=plan.name,
        variant=plan.variant,
        image=plan.image,
        url=jupyter_url(plan.bind, plan.host_port, token)
        if token is not None and plan.host_port is not None
        else None,
        token=token,
        ssh_command=ssh_command(
            plan.bind, plan.host_port, "aiuser", plan.ssh_key_path, jump_host(host)
        )
        if plan.variant == "ssh" and plan.host_port is not None
        else None,
        ports=_ports(attrs),
        warnings=plan.warnings,
        findings=findings,
        notes=tuple(n.message for n in plan.notes),
    )
    run.report("ready", f"{plan.name} is ready")
    return result


def _create_and_start(
    run: _Run, plan: LaunchPlan, token: str | None, timeout: float
) -> tuple[str, dict[str, Any], LaunchPlan]:
    """Create, start and wait; the container is removed again on any failure.

    A start the runtime refuses for a default limit is done again without it (each round drops
    at least one default, so this ends). Returns the container's id, its inspect data once
    running, and the plan it was launched with (with a note for each dropped default).
    """
    while True:
        request = build_create_request(plan, token)
        run.tag = new_tag()
        request = dataclasses.replace(request, labels={**request.labels, LABEL_LAUNCH: run.tag})
        run.secrets = request.secrets
        run.name = plan.name
        run.started = False
        with Active(run.tag):
            try:
                run.report("create", f"creating {plan.name} from {plan.image}")
                try:
                    container_id = run.container_id = create_container(run.host, request)
                except HostUnreachable:
                    run.pending_name = plan.name  # the answer was lost, not the container
                    raise
                run.check_cancel()
                run.report("start", f"starting {plan.name}")
                retry = _start(run, plan)
                if retry is None:
                    run.started = True
                    _wait_ready(run, plan, token, timeout)
                    return container_id, _state(run), plan
            except BaseException as exc:
                stage = run.stage
                run.remove()
                if run.left_behind is not None and isinstance(exc, GpuconsoleError):
                    raise LaunchFailed(f"{exc}\n{run.left_behind}", stage=stage) from exc
                raise
            run.remove()
        plan = retry


def describe_launch(host: DockerHost, ref: str) -> LaunchResult:
    """Rebuild a launch's URL / ssh command from the engine (labels + env), e.g. after a restart."""
    api, call = engine_api(host)
    with call(ref, "inspect"):
        attrs: dict[str, Any] = api.inspect_container(ref)
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    env = dict(str(e).partition("=")[::2] for e in config.get("Env") or ())
    variant = labels.get(LABEL_VARIANT, "")
    port = labels.get(LABEL_PORT)
    bind = labels.get(LABEL_BIND, "127.0.0.1")
    token_env = labels.get(LABEL_TOKEN_ENV)
    token = env.get(token_env) if token_env else None
    return LaunchResult(
        host=host.name,
        id=str(attrs["Id"]),
        name=str(attrs.get("Name", "")).lstrip("/"),
        variant=variant,
        image=str(config.get("Image", "")),
        url=jupyter_url(bind, int(port), token)
        if variant == "jupyter" and port and token
        else None,
        token=token,
        ssh_command=ssh_command(
            bind,
            int(port),
            labels.get(LABEL_SSH_USER, "aiuser"),
            identity=labels.get(LABEL_SSH_IDENTITY),
            jump=jump_host(host),
        )
        if variant == "ssh" and port
        else None,
        ports=_ports(attrs),
        notes=notes_from_labels(labels),
    )

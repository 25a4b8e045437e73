"""Derived images: a base image plus what a variant needs (sshd + aiuser, or Jupyter).

The base is inspected first with one throwaway container (package manager, pip, Jupyter, sshd),
so the generated Dockerfile installs only what is missing and a base we cannot handle is refused
in words before anything is built. Only apt (Debian, Ubuntu) bases are supported. The build runs
through the engine's low-level build API with the Dockerfile in an in-memory tar, and every line
of its log goes to a callback. The tag says where the image came from:
``pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime`` -> ``gpuconsole/pytorch-ssh:2.6.0-cuda12.4-...``.
"""

from __future__ import annotations

import io
import re
import shlex
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.docker.errors_map import unreachable
from gpuconsole.backend.docker.host import EngineCall, engine_api
from gpuconsole.backend.errors import (
    BuildFailed,
    GpuconsoleError,
    HostUnreachable,
    LaunchCancelled,
)
from gpuconsole.backend.launch.cleanup import (
    CLEANUP_WAIT_S,
    LABEL_PROBE,
    Active,
    engine_hung,
    new_tag,
    remove_abandoned,
    remove_container,
    stream_errors,
)
from gpuconsole.backend.launch.spec import LABEL_LAUNCH, SSH_USER
from gpuconsole.backend.launch.variants import JUPYTER_LAUNCHER, JUPYTER_PORT

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost

BUILD_VARIANTS = ("ssh", "jupyter")
LABEL_VARIANT_IMAGE = "gpuconsole.variant-image"
LABEL_BASE = "gpuconsole.base"

LogCallback = Callable[[str], None]

_PROBE = r"""
pm=none
if [ -x /usr/bin/apt-get ]; then pm=apt
elif command -v apk >/dev/null 2>&1; then pm=apk
elif command -v dnf >/dev/null 2>&1; then pm=dnf
elif command -v yum >/dev/null 2>&1; then pm=yum
elif command -v zypper >/dev/null 2>&1; then pm=zypper
fi
echo "pm=$pm"
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  echo pip=1; fi
command -v jupyter-lab >/dev/null 2>&1 && echo lab=1
command -v jupyter-notebook >/dev/null 2>&1 && echo notebook=1
if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then echo sshd=1; fi
if [ -r /etc/os-release ]; then . /etc/os-release; echo "os=$ID"; fi
exit 0
"""

SSHD_HARDENING = (
    "# gpuconsole: key authentication only, no root login",
    "PasswordAuthentication no",
    "PermitRootLogin no",
    "PermitEmptyPasswords no",
    "PubkeyAuthentication yes",
    "AuthenticationMethods publickey",
)


@dataclass(frozen=True, slots=True)
class BaseFacts:
    """What the probe container found in the base image."""

    package_manager: str | None
    os_id: str | None = None
    pip: bool = False
    jupyter_lab: bool = False
    jupyter_notebook: bool = False
    sshd: bool = False


@dataclass(frozen=True, slots=True)
class BuildResult:
    tag: str
    image_id: str
    dockerfile: str


def parse_facts(output: str) -> BaseFacts:
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    pm = values.get("pm", "none")
    return BaseFacts(
        package_manager=None if pm == "none" else pm,
        os_id=values.get("os") or None,
        pip=values.get("pip") == "1",
        jupyter_lab=values.get("lab") == "1",
        jupyter_notebook=values.get("notebook") == "1",
        sshd=values.get("sshd") == "1",
    )


def derived_tag(base: str, variant: str) -> str:
    """``gpuconsole/<base name>-<variant>:<base tag>`` (digest -> ``sha256-<12 hex>``)."""
    ref, _, digest = base.partition("@")
    last = ref.rsplit("/", 1)[-1]
    name, sep, tag = last.partition(":")
    if digest:
        tag = "sha256-" + digest.split(":", 1)[-1][:12]
    elif not sep:
        tag = "latest"
    name = re.sub(r"[^a-z0-9._-]", "-", name.lower()) or "image"
    if not name.endswith(f"-{variant}"):
        name = f"{name}-{variant}"
    return f"gpuconsole/{name}:{tag}"


def _apt_install(packages: str) -> str:
    return (
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
    )


def variant_dockerfile(base: str, variant: str, facts: BaseFacts) -> str:
    """The Dockerfile for ``variant`` on ``base``; BuildFailed when the base is unsupported."""
    if variant not in BUILD_VARIANTS:
        raise BuildFailed(f"{variant!r} is not a buildable variant — use ssh or jupyter")
    if facts.package_manager != "apt":
        found = facts.package_manager or "no known package manager"
        raise BuildFailed(
            f"base {base!r} ({facts.os_id or 'unknown OS'}, {found}) is not a Debian/Ubuntu "
            "image with apt-get — gpuconsole builds variants only on those; start from a "
            "Debian/Ubuntu based image or install the server yourself"
        )
    lines = [f"FROM {base}", "USER root"]
    if variant == "ssh":
        steps = []
        if not facts.sshd:
            steps.append(_apt_install("openssh-server"))
        hardening = " ".join(shlex.quote(line) for line in SSHD_HARDENING)
        steps += [
            f"(id {SSH_USER} >/dev/null 2>&1 || useradd -m -s /bin/bash {SSH_USER})",
            # '*' is no password at all, yet not a locked account (sshd refuses those).
            f"usermod -p '*' {SSH_USER}",
            "mkdir -p /run/sshd",
            # Host keys are made per container at start, never shared through the image.
            "rm -f /etc/ssh/ssh_host_*",
            f"{{ printf '%s\\n' {hardening}; cat /etc/ssh/sshd_config; }} > /tmp/sshd_config",
            "mv /tmp/sshd_config /etc/ssh/sshd_config",
        ]
        lines.append("RUN " + " \\\n && ".join(steps))
        lines.append("EXPOSE 22")
        lines.append('CMD ["/bin/sh", "-c", "ssh-keygen -A && exec /usr/sbin/sshd -D -e"]')
    else:
        if facts.jupyter_lab or facts.jupyter_notebook:
            pass  # already there: the derived image only adds the launcher and labels
        elif facts.pip:
            lines.append(
                "RUN python3 -m pip install --no-cache-dir jupyterlab || { echo "
                "'gpuconsole: pip could not install jupyterlab; trying apt jupyter-notebook'; "
                + _apt_install("jupyter-notebook")
                + "; }"
            )
        else:
            lines.append("RUN " + _apt_install("jupyter-notebook"))
        lines.append(f"EXPOSE {JUPYTER_PORT}")
        lines.append(f'CMD ["/bin/sh", "-c", {_json_str(JUPYTER_LAUNCHER)}]')
    lines.append(f'LABEL {LABEL_VARIANT_IMAGE}="{variant}" {LABEL_BASE}={_json_str(base)}')
    return "\n".join(lines) + "\n"


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


def probe_base(host: DockerHost, base: str, timeout: float = 60.0) -> BaseFacts:
    """Run the probe script in a throwaway container of ``base`` (removed afterwards)."""
    api, call = engine_api(host)
    tag = new_tag()
    with Active(tag):
        return _probe(api, call, base, tag, timeout)


def _probe(api: Any, call: EngineCall, base: str, tag: str, timeout: float) -> BaseFacts:
    container_id: str | None = None
    try:
        with call(base, "probe"):
            created = api.create_container(
                base,
                entrypoint=["/bin/sh", "-c"],
                command=[_PROBE],
                user="root",
                # LABEL_LAUNCH: a probe the engine took away with it is removed later.
                labels={LABEL_PROBE: "1", LABEL_LAUNCH: tag},
            )
        container_id = str(created["Id"])
        try:
            with call(base, "probe"):
                api.start(container_id)
                api.wait(container_id, timeout=timeout)
                raw = api.logs(container_id, stdout=True, stderr=False)
        except GpuconsoleError as exc:
            raise BuildFailed(
                f"cannot look inside base {base!r}: {exc} — it needs /bin/sh (a distroless "
                "or scratch image cannot be extended this way)"
            ) from exc
    finally:
        if container_id is not None:
            remove_container(api, call, container_id, CLEANUP_WAIT_S)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return parse_facts(text)


def _context(dockerfile: str) -> io.BytesIO:
    buf = io.BytesIO()
    data = dockerfile.encode("utf-8")
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


class _EngineWatch:
    """While a build streams, ask the engine every ``every`` seconds whether it still answers.

    A build step may print nothing for minutes, so silence is no failure (the stream has no
    read timeout); an engine that does not answer a ping within its timeout is hung (stopped,
    not dead). Then the stream is closed under the reader, and the build fails in words within
    about ``every`` + the engine's timeout instead of waiting for ever. Closing the connection
    also makes the engine drop the build when it runs again, so nothing gets tagged later.

    Each ping runs in a thread of its own and is given the engine's timeout and a little: a
    ping stuck anywhere (not only in a socket read that has a timeout) still counts as no
    answer, and whatever it raises is an answer of its own.
    """

    def __init__(self, host: DockerHost, stream: object, every: float) -> None:
        self._host = host
        self._api, self._call = engine_api(host)
        self._stream = stream
        self._every = every
        self._timeout = float(getattr(host, "timeout", 10))
        self._done = threading.Event()
        self.failure: GpuconsoleError | None = None
        self._thread = threading.Thread(target=self._run, name="build-watch", daemon=True)
        self._thread.start()

    def _ping(self, answers: list[BaseException | None]) -> None:
        try:
            with self._call(None, "ping"):
                self._api.ping()
        except BaseException as exc:  # handed to the watch thread, which decides
            answers.append(exc)
        else:
            answers.append(None)

    def _run(self) -> None:
        while not self._done.wait(self._every):
            answers: list[BaseException | None] = []
            ping = threading.Thread(target=self._ping, args=(answers,), daemon=True)
            ping.start()
            ping.join(self._timeout + 2.0)
            if self._done.is_set():
                return
            answer = answers[0] if answers else TimeoutError("timed out")
            if answer is None:
                continue
            self.failure = (
                answer
                if isinstance(answer, GpuconsoleError)
                else unreachable(self._host.name, self._host.address, answer, self._timeout)
            )
            _close(self._stream)
            return

    def stop(self) -> None:
        self._done.set()


def _close(stream: object) -> None:
    """End the build's response now: its connection is closed, which the engine takes as the
    client going away (it cancels the build; generator.close() alone would not)."""
    from gpuconsole.backend.ssh.docker_api import close_stream

    close_stream(stream)


_RUNNING_IN = re.compile(r"^\s*---> Running in ([0-9a-f]{12,64})\s*$")
_REMOVING = re.compile(r"^\s*Removing intermediate container ([0-9a-f]{12,64})\s*$")


def _intermediate(event: dict[str, Any], current: str | None) -> str | None:
    """The container the build's current step runs in (from its log lines), else None."""
    for line in str(event.get("stream", "")).splitlines():
        running = _RUNNING_IN.match(line)
        if running:
            current = running.group(1)
        elif _REMOVING.match(line):
            current = None
    return current


def build_variant(
    host: DockerHost,
    base: str,
    variant: str,
    tag: str | None = None,
    *,
    on_log: LogCallback | None = None,
    cancel: threading.Event | None = None,
    watch_every: float = 2.0,
    cleanup_wait: float = CLEANUP_WAIT_S,
) -> BuildResult:
    """Build ``variant`` on ``base``; every build-log line goes to ``on_log``.

    Raises BuildFailed (unsupported base, failing step — with the last log lines; the engine
    gone or hung mid-build — nothing tagged, see ``_EngineWatch``), LaunchCancelled, or another
    GpuconsoleError (engine unreachable). Blocking.
    """
    if variant not in BUILD_VARIANTS:
        raise BuildFailed(f"{variant!r} is not a buildable variant — use ssh or jupyter")
    say = on_log or (lambda line: None)
    api, call = engine_api(host)
    present = True
    try:
        with call(None, "inspect image"):
            api.inspect_image(base)
    except GpuconsoleError as exc:
        if getattr(exc, "status", None) != 404:
            raise
        present = False
    for note in remove_abandoned(host, strict=True):
        say(note)
    if not present:
        from gpuconsole.backend.errors import LaunchRejected
        from gpuconsole.backend.launch.launcher import pull_image

        try:
            pull_image(host, base, lambda p: say(p.message), cancel)
        except LaunchRejected as exc:
            raise BuildFailed(exc.errors[0][1]) from exc
    say(f"inspecting {base}")
    facts = probe_base(host, base)
    say(
        f"base: {facts.os_id or 'unknown OS'}, package manager {facts.package_manager or 'none'}"
        f", pip {'yes' if facts.pip else 'no'}, sshd {'yes' if facts.sshd else 'no'}, jupyter "
        + ("lab" if facts.jupyter_lab else "notebook" if facts.jupyter_notebook else "no")
    )
    dockerfile = variant_dockerfile(base, variant, facts)
    target = tag or derived_tag(base, variant)
    say(f"building {target}")
    image_id = ""
    recent: list[str] = []
    step: str | None = None  # the container of the step in progress
    watch: _EngineWatch | None = None
    try:
        with call(target, "build"):
            stream = api.build(
                fileobj=_context(dockerfile),
                custom_context=True,
                tag=target,
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
                timeout=None,
            )
            watch = _EngineWatch(host, stream, watch_every)
            try:
                with stream_errors(host, "build"):
                    for event in stream:
                        if cancel is not None and cancel.is_set():
                            raise LaunchCancelled("build")
                        step = _intermediate(event, step)
                        _handle(event, say, recent)
                        aux: Any = event.get("aux")
                        if isinstance(aux, dict) and aux.get("ID"):
                            image_id = str(aux["ID"])
            finally:
                watch.stop()
                _close(stream)
        if watch.failure is not None:  # the stream ended because the watch closed it
            raise watch.failure
    except GpuconsoleError as exc:
        if isinstance(exc, (BuildFailed, LaunchCancelled)):
            raise
        cause: GpuconsoleError = exc
        if watch is not None and watch.failure is not None and engine_hung(watch.failure):
            cause = watch.failure
        raise BuildFailed(
            f"building {target} failed: {cause}"
            + _after_engine_failure(host, cause, step, say, cleanup_wait)
        ) from exc
    if not image_id:
        with call(target, "inspect image"):
            image_id = str(api.inspect_image(target)["Id"])
    say(f"built {target} ({image_id[:19]})")
    return BuildResult(target, image_id, dockerfile)


def _after_engine_failure(
    host: DockerHost,
    cause: GpuconsoleError,
    step: str | None,
    say: LogCallback,
    wait_s: float,
) -> str:
    """What became of the build when the engine failed under it, as the error's last line.

    A hung engine drops the build (and its step's container) itself once it runs again: the
    connection is closed. An engine that died cannot: the container of the step in progress
    stays, so it is removed here, waiting up to ``wait_s`` for an engine that restarts."""
    if not isinstance(cause, HostUnreachable):
        return ""
    if engine_hung(cause):
        return "\nnothing was tagged: the engine drops the build once it answers again"
    if step is None:
        return "\nnothing was tagged"
    api, call = engine_api(host)
    error = remove_container(api, call, step, wait_s)
    if error is None:
        say(f"removed the build's intermediate container {step[:12]}")
        return "\nnothing was tagged"
    rm = f"gpuconsole rm -f {step[:12]}" + ("" if host.machine.is_local else f" --host {host.name}")
    return (
        f"\nnothing was tagged; the build's intermediate container {step[:12]} is left (the "
        f"engine did not come back within {wait_s:g} s) — remove it with: {rm}"
    )


def _handle(event: dict[str, Any], say: LogCallback, recent: list[str]) -> None:
    if "stream" in event:
        for line in str(event["stream"]).splitlines():
            if line.strip():
                say(line)
                recent.append(line)
                del recent[:-15]
    if event.get("error"):
        tail = "\n".join(recent[-10:])
        raise BuildFailed(
            f"the build failed: {str(event['error']).strip()}"
            + (f"\n--- last build lines ---\n{tail}" if tail else "")
        )

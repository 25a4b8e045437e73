"""Check a LaunchSpec against the host it is for; report every bad field at once.

Validation is split in two so a form can re-check on every keystroke without touching the
engine more than needed: ``gather_facts`` asks the engine once (CPUs, memory, names, published
ports, image), ``validate`` is pure and returns a ``LaunchCheck`` with all errors, warnings and
missing mount sources, plus the resolved ``LaunchPlan`` when there are no errors.
"""

from __future__ import annotations

import getpass
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.errors import GpuconsoleError, LaunchRejected
from gpuconsole.backend.launch.defaults import ULIMIT_NAMES as ULIMIT_NAMES
from gpuconsole.backend.launch.defaults import parse_ulimit as parse_ulimit
from gpuconsole.backend.launch.defaults import resolve_shm, resolve_ulimits
from gpuconsole.backend.launch.engine_limits import EngineLimits, engine_limits
from gpuconsole.backend.launch.ports import pick_free_port, port_problem, valid_bind_address
from gpuconsole.backend.launch.sizes import SizeError, parse_size
from gpuconsole.backend.launch.spec import (
    CONTAINER_PORTS,
    KEYS_ENV,
    PORT_RANGES,
    TOKEN_ENV,
    VARIANTS,
    GpuSelection,
    Issue,
    LaunchPlan,
    LaunchSpec,
    VolumeMount,
    parse_gpus,
)
from gpuconsole.backend.launch.ssh_keys import KeyNotFound, find_public_key
from gpuconsole.backend.models import EVERY_INTERFACE

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost
    from gpuconsole.backend.gpu.models import GpuSnapshot

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_ENV_KEY = re.compile(r"[^=\s]+")
#: Docker refuses memory limits below 6 MiB.
MIN_MEMORY = 6 * 1024 * 1024
_RESERVED_ENV = {
    TOKEN_ENV: "gpuconsole generates the Jupyter token — drop it from the environment",
    KEYS_ENV: "gpuconsole installs your public key itself — use --ssh-key to pick it",
    "NVIDIA_VISIBLE_DEVICES": "gpuconsole sets it from the GPU selection — use --gpus instead",
}


@dataclass(frozen=True, slots=True)
class EngineFacts:
    """What validation needs to know about the host, read from the engine in one go."""

    host: str
    #: The engine runs on this machine: bind mounts and port binds can be checked here.
    local: bool = True
    #: For a remote machine: the bind-mount sources that exist there (checked when the facts
    #: were gathered; a source typed later is checked again by the launch itself).
    remote_existing: frozenset[str] = frozenset()
    remote_checked: frozenset[str] = frozenset()
    #: The remote user's home, for ``~`` in a remote bind-mount source.
    home: str | None = None
    cpus: int | None = None
    memory_bytes: int | None = None
    names: frozenset[str] = frozenset()
    #: (host ip, host port) -> name of the container publishing it.
    published: Mapping[tuple[str, int], str] = field(default_factory=dict)
    #: None when not asked (no image given).
    image_present: bool | None = None
    image_attrs: Mapping[str, Any] = field(default_factory=dict)
    #: Which ulimits the engine can set (probed once per host); None: not asked, refuse nothing.
    limits: EngineLimits | None = None


@dataclass(frozen=True, slots=True)
class LaunchCheck:
    """The outcome of ``validate``: errors (field, message) stop a launch, warnings do not."""

    errors: tuple[tuple[str, str], ...]
    warnings: tuple[Issue, ...]
    missing_sources: tuple[str, ...]
    plan: LaunchPlan | None
    #: Defaults left out or lowered because the host cannot apply them (one line each).
    notes: tuple[Issue, ...] = ()
    #: The default ulimits this launch gets (``stack=67108864``), for the form's hint.
    default_ulimits: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> LaunchPlan:
        if self.errors or self.plan is None:
            raise LaunchRejected(list(self.errors), self.missing_sources)
        return self.plan


def gather_facts(host: DockerHost, image: str = "", volumes: tuple[str, ...] = ()) -> EngineFacts:
    """Ask the engine (through ``host.api()``) and its machine what validation needs.

    Raises GpuconsoleError. Locality comes from the engine's machine, never from its address.
    """
    from gpuconsole.backend.docker.host import engine_api

    machine = host.machine
    api, call = engine_api(host)
    with call(None, "info"):
        info = api.info()
    with call(None, "list"):
        containers = api.containers(all=True)
    names = set()
    published: dict[tuple[str, int], str] = {}
    for c in containers:
        cname = ((c.get("Names") or ["/"])[0]).lstrip("/")
        names.add(cname)
        for p in c.get("Ports") or ():
            if p.get("PublicPort"):
                # No IP: published on every interface (as the engine reads it).
                ip = str(p.get("IP") or EVERY_INTERFACE[0])
                published[(ip, int(p["PublicPort"]))] = cname
    present: bool | None = None
    attrs: dict[str, Any] = {}
    if image.strip():
        try:
            with call(None, "inspect image"):
                attrs = api.inspect_image(image.strip())
            present = True
        except GpuconsoleError as exc:
            if getattr(exc, "status", None) != 404:
                raise
            present = False
    home: str | None = None
    existing: frozenset[str] = frozenset()
    checked: frozenset[str] = frozenset()
    if not machine.is_local:
        from gpuconsole.backend.hosts.machine import CommandError

        try:
            home = machine.run(["sh", "-c", 'printf %s "$HOME"'], timeout=10).strip() or None
        except CommandError:
            home = None
        sources = []
        for text in volumes:
            try:
                vol = parse_volume(text, home=home, remote=True)
            except ValueError:
                continue
            if not vol.named:
                sources.append(vol.source)
        if sources:
            checked = frozenset(sources)
            existing = machine.existing(sources)
    return EngineFacts(
        host=host.name,
        local=machine.is_local,
        remote_existing=existing,
        remote_checked=checked,
        home=home,
        cpus=info.get("NCPU"),
        memory_bytes=info.get("MemTotal"),
        names=frozenset(names),
        published=published,
        image_present=present,
        image_attrs=attrs,
        limits=engine_limits(host, info),
    )


def image_tag_warning(image: str) -> str | None:
    """Why an image reference is not reproducible (no tag, or ``latest``), else None."""
    if "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return (
            f"{image!r} has no tag, which means 'latest' and changes under you — pin a "
            "semantic tag (e.g. :2.6.0-cuda12.4-cudnn9-runtime)"
        )
    if last.rsplit(":", 1)[1] == "latest":
        return (
            f"{image!r} uses the 'latest' tag, which changes under you — pin a semantic "
            "tag (e.g. :2.6.0-cuda12.4-cudnn9-runtime)"
        )
    return None


def _gpu_problems(sel: GpuSelection, host: str, snapshot: GpuSnapshot | None) -> list[str]:
    if not sel.ids:
        return []
    gpus = snapshot.gpus if snapshot is not None else ()
    if not gpus:
        why = (snapshot.error if snapshot is not None else None) or "no GPU data was given"
        return [
            f"cannot check GPU {sel.text()}: host {host!r} reports no GPUs ({why}) — "
            "use all or none, or fix the NVIDIA driver so the GPUs can be listed"
        ]
    indices = {str(g.index) for g in gpus}
    uuids = {g.uuid for g in gpus}
    have = ", ".join(f"{g.index} ({g.name})" for g in gpus)
    return [
        f"GPU {device} is not on host {host!r} (it has {have}) — pick from those"
        for device in sel.ids
        if device not in indices and device not in uuids
    ]


def _default_name(variant: str, names: frozenset[str]) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers with arbitrary uids)
        user = "user"
    user = re.sub(r"[^a-zA-Z0-9_.-]", "", user) or "user"
    n = 1
    while f"{variant}-{user}-{n}" in names:
        n += 1
    return f"{variant}-{user}-{n}"


def parse_volume(
    text: str, cwd: Path | None = None, *, home: str | None = None, remote: bool = False
) -> VolumeMount:
    """``SRC:DST[:ro|rw]`` -> VolumeMount; raises ValueError with the expected form.

    On a remote host ``~`` is that host's home and a relative source means nothing there.
    """
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(f"{text!r} is not SRC:DST[:ro] — e.g. ~/notebooks:/workspace/notebooks")
    src, dst = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise ValueError(f"{text!r} has mode {mode!r} — use ro or rw (or nothing)")
    if not dst.startswith("/"):
        raise ValueError(f"{text!r}: the container path {dst!r} must be absolute (start with /)")
    if remote and src.startswith("."):
        raise ValueError(
            f"{text!r}: a relative source means nothing on a remote host — give an absolute "
            "path on that host (or ~/...)"
        )
    if remote and src.startswith("~") and home:
        src = home + src[1:] if src == "~" or src.startswith("~/") else src
    if remote and src.startswith("/"):
        return VolumeMount(os.path.normpath(src), dst, mode == "ro")
    if src.startswith(("~", "/", ".")):
        try:
            path = Path(src).expanduser()
        except RuntimeError:  # ~user of no such user
            raise ValueError(
                f"{text!r}: {src.partition('/')[0]!r} is no user's home here — give the full path"
            ) from None
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        return VolumeMount(os.path.normpath(path), dst, mode == "ro")
    if not _VOLUME_NAME.fullmatch(src):
        raise ValueError(f"{text!r}: {src!r} is neither a path nor a volume name")
    return VolumeMount(src, dst, mode == "ro", named=True)


def _cpus(value: str | float | int | None) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("not a number")
    try:
        cpus = float(value)
    except OverflowError:  # an int past a float's range
        raise ValueError("not a finite number") from None
    if not math.isfinite(cpus * 1e9):  # NanoCpus must be a whole number
        raise ValueError("not a finite number")
    return cpus


def validate(
    spec: LaunchSpec,
    facts: EngineFacts,
    gpu_snapshot: GpuSnapshot | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LaunchCheck:
    """Every problem with ``spec`` on this host, and the resolved plan when there is none."""
    errors: list[tuple[str, str]] = []
    warnings: list[Issue] = []
    missing: list[str] = []
    environ = os.environ if environ is None else environ

    def err(field_name: str, message: str) -> None:
        errors.append((field_name, message))

    variant = spec.variant.strip().lower()
    if variant not in VARIANTS:
        err("variant", f"{spec.variant!r} is not a variant — use one of {', '.join(VARIANTS)}")

    image = spec.image.strip()
    if not image:
        err("image", "no image given — e.g. --image pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime")
    elif any(ch.isspace() for ch in image):
        err("image", f"{image!r} contains spaces — an image reference has none")
    else:
        tag_warning = image_tag_warning(image)
        if tag_warning:
            warnings.append(Issue("image", tag_warning))
        if facts.image_present is False:
            warnings.append(Issue("image", f"{image!r} is not on host {facts.host!r}; pulling it"))

    name = spec.name.strip()
    if name:
        if not _NAME.fullmatch(name):
            err("name", f"{name!r} is not a container name — use letters, digits, _ . - only")
        elif name in facts.names:
            err(
                "name",
                f"a container named {name!r} already exists on {facts.host!r} — pick another "
                "name or leave it empty for a generated one",
            )
    else:
        name = _default_name(variant if variant in VARIANTS else "launch", facts.names)

    gpus = GpuSelection()
    try:
        gpus = parse_gpus(spec.gpus)
    except ValueError as exc:
        err("gpus", str(exc))
    for problem in _gpu_problems(gpus, facts.host, gpu_snapshot):
        err("gpus", problem)

    memory: int | None = None
    if spec.memory and str(spec.memory).strip():
        try:
            memory = parse_size(spec.memory)
        except SizeError as exc:
            err("memory", str(exc))
        else:
            if memory < MIN_MEMORY:
                err("memory", f"{spec.memory!r} is below Docker's minimum of 6m — give more")
                memory = None
            elif facts.memory_bytes and memory > facts.memory_bytes:
                gib = facts.memory_bytes / 1024**3
                err(
                    "memory",
                    f"{spec.memory!r} is more than host {facts.host!r} has ({gib:.1f} GiB) — "
                    "ask for less",
                )

    nano_cpus: int | None = None
    try:
        cpus = _cpus(spec.cpus)
    except ValueError:
        err("cpus", f"{spec.cpus!r} is not a number — e.g. 8 or 1.5")
        cpus = None
    if cpus is not None:
        if cpus < 0.01:
            # Docker's smallest quota; below it NanoCpus rounds to 0, which means "no limit".
            err("cpus", f"{spec.cpus!r} is below Docker's minimum of 0.01 — e.g. 8 or 1.5")
        elif facts.cpus and cpus > facts.cpus:
            err(
                "cpus",
                f"{spec.cpus!r} is more than host {facts.host!r} has ({facts.cpus} CPUs) — "
                f"ask for {facts.cpus} or fewer",
            )
        else:
            nano_cpus = round(cpus * 1e9)

    shm_choice = resolve_shm(spec.shm_size, variant, facts.memory_bytes, facts.host)
    for message in shm_choice.errors:
        err("shm_size", message)
    ulimit_choice = resolve_ulimits(tuple(spec.ulimits), facts.limits, facts.host)
    for message in ulimit_choice.errors:
        err("ulimits", message)
    notes = (*shm_choice.notes, *ulimit_choice.notes)
    applied_defaults = ulimit_choice.default_texts()

    volumes: list[VolumeMount] = []
    for text in spec.volumes:
        try:
            vol = parse_volume(text, cwd, home=facts.home, remote=not facts.local)
        except ValueError as exc:
            err("volumes", str(exc))
            continue
        if not vol.named and not _source_exists(facts, vol.source):
            missing.append(vol.source)
            err(
                "volumes",
                f"{vol.source} does not exist — create it (mkdir -p {vol.source}, or --mkdir) "
                "or fix the path; Docker would create it owned by root",
            )
        if any(v.destination == vol.destination for v in volumes):
            err("volumes", f"{vol.destination} is mounted twice — keep one")
        volumes.append(vol)
    if not spec.volumes:
        warnings.append(
            Issue(
                "volumes",
                "no volume mounted: whatever you save in the container is lost when it is "
                "removed — mount your code and data with -v SRC:DST",
            )
        )

    env: list[tuple[str, str]] = []
    for text in spec.env:
        key, sep, value = text.partition("=")
        if not key or not _ENV_KEY.fullmatch(key):
            err("env", f"{text!r} is not KEY=VALUE")
            continue
        if key in _RESERVED_ENV:
            err("env", f"{key} is reserved: {_RESERVED_ENV[key]}")
            continue
        if not sep:
            if key not in environ:
                err("env", f"{key} has no value and is not set here — give KEY=VALUE")
                continue
            value = environ[key]
        env.append((key, value))

    labels: list[tuple[str, str]] = []
    for text in spec.labels:
        key, sep, value = text.partition("=")
        if not key.strip():
            err("labels", f"{text!r} is not KEY=VALUE")
        elif key.startswith("gpuconsole."):
            err("labels", f"{key} is reserved for gpuconsole's own labels — pick another key")
        else:
            labels.append((key.strip(), value))

    workdir = spec.workdir.strip()
    if workdir and not workdir.startswith("/"):
        err("workdir", f"{workdir!r} must be an absolute path in the container (start with /)")
    user = spec.user.strip()
    if user and any(ch.isspace() for ch in user):
        err("user", f"{user!r} is not a user — give NAME, UID or UID:GID")
    if user and variant == "ssh":
        err("user", "the ssh variant runs sshd as root and logs you in as aiuser — drop --user")

    command = tuple(spec.command)
    if command and variant in CONTAINER_PORTS:
        err("command", f"the {variant} variant runs its own server — only plain takes a command")

    bind = spec.bind.strip() or "127.0.0.1"
    bind_ok = valid_bind_address(bind)
    if not bind_ok:
        err("bind", f"{bind!r} is not an IP address — use 127.0.0.1 (the default)")
    elif bind in EVERY_INTERFACE:
        warnings.append(
            Issue(
                "bind",
                f"publishing on {bind} opens the port on every interface, past the host "
                "firewall — keep 127.0.0.1 and reach it through an SSH tunnel",
            )
        )

    container_port = CONTAINER_PORTS.get(variant)
    host_port: int | None = None
    port_text = "" if spec.port is None else str(spec.port).strip()
    if port_text and port_text != "0":
        if container_port is None:
            err("port", f"the {variant} variant publishes no port — drop -p")
        else:
            try:
                host_port = int(port_text)
                if not 1 <= host_port <= 65535:
                    raise ValueError
            except ValueError:
                err("port", f"{port_text!r} is not a port — give 1-65535, or leave it empty")
                host_port = None
            if host_port is not None and bind_ok:
                clash = port_problem(bind, host_port, facts.published, facts.local)
                if clash:
                    err("port", f"{clash} — pick another, or leave it empty for a free one")
    elif container_port is not None and bind_ok:
        low, high = PORT_RANGES[variant]
        host_port = pick_free_port(bind, facts.published, facts.local, range(low, high + 1))
        if host_port is None:
            err("port", f"no free port found on {bind} — give one with -p")

    key_text: str | None = None
    key_path: str | None = None
    if variant == "ssh":
        try:
            public_key = find_public_key(spec.ssh_key or None)
        except KeyNotFound as exc:
            err("ssh_key", str(exc))
        else:
            key_text = public_key.text
            if public_key.identity and not public_key.is_default:
                key_path = str(public_key.identity)

    if errors:
        return LaunchCheck(
            tuple(errors), tuple(warnings), tuple(missing), None, notes, applied_defaults
        )
    plan = LaunchPlan(
        spec=spec,
        host=facts.host,
        variant=variant,
        image=image,
        name=name,
        gpus=gpus,
        memory_bytes=memory,
        nano_cpus=nano_cpus,
        shm_size_bytes=shm_choice.size,
        ulimits=ulimit_choice.ulimits,
        ipc_host=spec.ipc_host,
        volumes=tuple(volumes),
        env=tuple(env),
        workdir=workdir,
        user=user,
        container_port=container_port,
        host_port=host_port,
        bind=bind,
        labels=tuple(labels),
        command=command,
        ssh_public_key=key_text,
        ssh_key_path=key_path,
        image_present=bool(facts.image_present),
        warnings=tuple(warnings),
        notes=notes,
        default_ulimits=ulimit_choice.defaulted,
    )
    return LaunchCheck((), tuple(warnings), (), plan, notes, applied_defaults)


def _source_exists(facts: EngineFacts, source: str) -> bool:
    if facts.local:
        return os.path.exists(source)
    return source in facts.remote_existing or source not in facts.remote_checked


def check_launch(
    host: DockerHost, spec: LaunchSpec, gpu_snapshot: GpuSnapshot | None = None
) -> LaunchCheck:
    """Validate ``spec`` against ``host`` as it is now (one engine round of questions)."""
    return validate(spec, gather_facts(host, spec.image, spec.volumes), gpu_snapshot)

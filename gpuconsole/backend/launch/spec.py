"""What a user asks for (``LaunchSpec``) and what validation turns it into (``LaunchPlan``).

``LaunchSpec`` holds the fields as a person types them — strings, as in a form, a profile or
``docker run`` flags — so one validator serves the TUI form, the CLI and profiles alike, and can
report every bad field at once. ``LaunchPlan`` is the checked, resolved result (sizes in bytes,
name and port picked); only a plan is ever turned into a container.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

VARIANTS: tuple[str, ...] = ("jupyter", "ssh", "plain")

#: Ports inside the container for the variants that publish one.
CONTAINER_PORTS: dict[str, int] = {"jupyter": 8888, "ssh": 22}

#: Where a free host port is looked for first, so URLs look familiar (8888, 2222).
PORT_RANGES: dict[str, tuple[int, int]] = {"jupyter": (8888, 8999), "ssh": (2222, 2299)}

#: PyTorch DataLoader workers need more than Docker's 64 MB /dev/shm.
DEFAULT_SHM: dict[str, str] = {"jupyter": "8g", "ssh": "8g"}

#: NVIDIA's recommended limits for deep-learning containers (memlock unlimited, 64 MiB stack).
#: Applied only where the engine can set them (launch.defaults; launch.engine_limits).
DEFAULT_ULIMITS: tuple[str, ...] = ("memlock=-1", "stack=67108864")

DEFAULT_BIND = "127.0.0.1"
SSH_USER = "aiuser"

# Labels gpuconsole puts on what it launches. The engine is the source of truth: a console that
# restarts finds its launches (and how to reach them) from these labels and the container's env.
LABEL_VARIANT = "gpuconsole.variant"
LABEL_PROFILE = "gpuconsole.profile"
LABEL_PORT = "gpuconsole.port"
LABEL_CONTAINER_PORT = "gpuconsole.container-port"
LABEL_BIND = "gpuconsole.bind"
LABEL_GPUS = "gpuconsole.gpus"
LABEL_SSH_USER = "gpuconsole.ssh-user"
#: The private key (a path on the launching machine) that logs in: ``o`` and the details reuse it.
LABEL_SSH_IDENTITY = "gpuconsole.ssh-identity"
LABEL_TOKEN_ENV = "gpuconsole.token-env"
LABEL_VERSION = "gpuconsole.version"
#: Defaults this launch did not get (left out or lowered to fit the host), for the details.
LABEL_NOTES = "gpuconsole.notes"
#: Which launch attempt made the container (``host/pid/start/nonce``): a launch that fails when
#: the engine goes away finds (and a later one removes) what it left (launch.cleanup).
LABEL_LAUNCH = "gpuconsole.launch"
TOKEN_ENV = "JUPYTER_TOKEN"
KEYS_ENV = "GPUCONSOLE_AUTHORIZED_KEYS"


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """A launch request, field by field as typed (flag names as in ``docker run``).

    Empty means "default": ``name`` generated, ``port`` picked free, ``shm_size`` 8g for
    jupyter/ssh, ``ulimits`` merged over memlock=-1 and stack=67108864 by name — each default
    only as far as the host can apply it (see ``launch.defaults``).
    """

    variant: str = "jupyter"
    image: str = ""
    host: str = "local"
    name: str = ""
    #: ``all``, ``none``, indices ``0,1`` or UUIDs ``GPU-...`` (``device=`` prefix accepted).
    gpus: str = "none"
    memory: str = ""
    cpus: str | float | int | None = None
    shm_size: str | None = None
    #: ``NAME=SOFT[:HARD]`` each; -1 means unlimited.
    ulimits: tuple[str, ...] = ()
    ipc_host: bool = False
    #: ``SRC:DST[:ro]`` each; ``~`` expanded, relative sources taken from the current directory.
    volumes: tuple[str, ...] = ()
    #: ``KEY=VALUE`` each (``KEY`` alone copies it from this environment, as docker does).
    env: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""
    port: int | str | None = None
    bind: str = DEFAULT_BIND
    #: Extra ``KEY=VALUE`` labels (the ``gpuconsole.*`` ones are set by the launcher).
    labels: tuple[str, ...] = ()
    profile: str = ""
    #: Public key to install for ssh (default ~/.ssh/id_ed25519.pub, then id_ecdsa, id_rsa).
    ssh_key: str = ""
    #: Command for the plain variant (the image's own command when empty).
    command: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> LaunchSpec:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class GpuSelection:
    """The GPUs a launch asks for: all, none, or device ids (indices or UUIDs)."""

    all: bool = False
    ids: tuple[str, ...] = ()

    @property
    def none(self) -> bool:
        return not self.all and not self.ids

    @property
    def visible_devices(self) -> str:
        """NVIDIA_VISIBLE_DEVICES for this selection (``void`` hides every GPU)."""
        if self.all:
            return "all"
        return ",".join(self.ids) if self.ids else "void"

    def text(self) -> str:
        if self.all:
            return "all"
        return ",".join(self.ids) if self.ids else "none"


def parse_gpus(text: str | int | None) -> GpuSelection:
    """``all`` / ``none`` / ``0,1`` / ``GPU-uuid,...``; ValueError names the accepted forms."""
    if text is None:
        return GpuSelection()
    raw = str(text).strip()
    if raw.startswith('"') and raw.endswith('"'):
        raw = raw[1:-1]
    if raw.startswith("device="):
        raw = raw[len("device=") :]
    lowered = raw.lower()
    if lowered in ("", "none", "void"):
        return GpuSelection()
    if lowered == "all":
        return GpuSelection(all=True)
    ids = [part.strip() for part in raw.split(",")]
    for part in ids:
        if not part or not (part.isdigit() or part.upper().startswith(("GPU-", "MIG-"))):
            raise ValueError(
                f"{text!r} is not a GPU selection — use all, none, indices like 0,1, "
                "or UUIDs like GPU-8e0c…"
            )
    return GpuSelection(ids=tuple(dict.fromkeys(ids)))


@dataclass(frozen=True, slots=True)
class VolumeMount:
    """A bind mount (``source`` an absolute host path) or a named volume (``named``)."""

    source: str
    destination: str
    read_only: bool = False
    named: bool = False

    def text(self) -> str:
        return f"{self.source}:{self.destination}" + (":ro" if self.read_only else "")


@dataclass(frozen=True, slots=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class Issue:
    """A warning about a field that does not stop the launch (``latest`` tag, no volume)."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """A validated spec with every default resolved; what the container is created from."""

    spec: LaunchSpec
    host: str
    variant: str
    image: str
    name: str
    gpus: GpuSelection
    memory_bytes: int | None
    nano_cpus: int | None
    shm_size_bytes: int | None
    ulimits: tuple[Ulimit, ...]
    ipc_host: bool
    volumes: tuple[VolumeMount, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    user: str
    container_port: int | None
    host_port: int | None
    bind: str
    labels: tuple[tuple[str, str], ...]
    command: tuple[str, ...]
    ssh_public_key: str | None
    ssh_key_path: str | None
    image_present: bool
    warnings: tuple[Issue, ...] = ()
    #: Defaults left out or lowered to fit the host (one line each; shown and labelled).
    notes: tuple[Issue, ...] = ()
    #: Names of the ulimits that came from the defaults, not from the user.
    default_ulimits: tuple[str, ...] = ()

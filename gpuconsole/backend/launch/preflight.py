"""Checks before a GPU launch, returned as data (severity, message, fix) for the CLI and TUI.

None of them blocks a launch — the engine has the last word, and our detection can be wrong on
setups we have not seen (CDI, rootless) — but each says in words what is about to go wrong:
an engine that cannot hand out GPUs, an image built for a newer CUDA than the driver supports,
GPUs another container already holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpuconsole.backend.launch.spec import GpuSelection

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost
    from gpuconsole.backend.gpu.models import GpuSnapshot
    from gpuconsole.backend.hosts.machine import Machine
    from gpuconsole.backend.models import GpuRequest

ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One pre-flight result. ``severity`` is error (will very likely fail), warning or info."""

    severity: str
    code: str
    message: str
    fix: str = ""

    def text(self) -> str:
        return self.message + (f" — {self.fix}" if self.fix else "")


def cuda_driver_version(machine: Machine | None = None) -> int | None:
    """The newest CUDA the driver of ``machine`` supports (e.g. 12080 for 12.8), or None.

    This computer: NVML, imported and initialised only when called. A remote machine: the
    ``CUDA Version`` of its ``nvidia-smi`` header (one command). Any failure (no driver, no
    library) means "unknown", never an exception.
    """
    if machine is not None and not machine.is_local:
        from gpuconsole.backend.hosts.machine import CommandError

        try:
            header = machine.run(["nvidia-smi"], timeout=15)
        except CommandError:
            return None
        found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header)
        return int(found.group(1)) * 1000 + int(found.group(2)) * 10 if found else None
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        return int(pynvml.nvmlSystemGetCudaDriverVersion())
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _version_tuple(text: str) -> tuple[int, int] | None:
    match = re.match(r"\s*v?(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def image_cuda_version(image_attrs: Mapping[str, Any]) -> tuple[int, int] | None:
    """The CUDA an image was built for: its CUDA_VERSION env, else NVIDIA's image labels."""
    config = image_attrs.get("Config") or {}
    for item in config.get("Env") or ():
        key, _, value = str(item).partition("=")
        if key == "CUDA_VERSION":
            found = _version_tuple(value)
            if found:
                return found
    labels = config.get("Labels") or {}
    for key in ("com.nvidia.cuda.version", "cuda.version", "org.opencontainers.image.cuda"):
        if key in labels:
            found = _version_tuple(str(labels[key]))
            if found:
                return found
    return None


#: Asks the engine's machine for the NVIDIA toolkit hook or an NVIDIA CDI spec in one command.
_TOOLKIT_SCRIPT = r"""
command -v nvidia-container-runtime-hook >/dev/null 2>&1 && exit 0
command -v nvidia-container-toolkit >/dev/null 2>&1 && exit 0
for d in "$@"; do for f in "$d"/*nvidia*; do [ -e "$f" ] && exit 0; done; done
exit 1
"""


def engine_has_nvidia(info: Mapping[str, Any], machine: Machine | None = None) -> bool:
    """Can the engine satisfy ``--gpus``: nvidia runtime, toolkit hook or NVIDIA CDI specs?

    The hook and the CDI specs are looked for on the engine's machine (``machine``; None
    means: runtimes only).
    """
    runtimes = info.get("Runtimes") or {}
    if "nvidia" in runtimes or info.get("DefaultRuntime") == "nvidia":
        return True
    if machine is None:
        return False
    dirs = [str(d) for d in info.get("CDISpecDirs") or ()]
    if machine.is_local:
        if shutil.which("nvidia-container-runtime-hook") or shutil.which(
            "nvidia-container-toolkit"
        ):
            return True
        for directory in dirs:
            with contextlib.suppress(OSError):
                if any("nvidia" in name for name in os.listdir(directory)):
                    return True
        return False
    from gpuconsole.backend.hosts.machine import CommandError

    try:
        machine.run(["sh", "-c", _TOOLKIT_SCRIPT, "sh", *dirs], timeout=10)
    except CommandError:
        return False
    return True


def _indices(sel_ids: tuple[str, ...], snapshot: GpuSnapshot | None) -> set[str]:
    by_uuid = {g.uuid: str(g.index) for g in snapshot.gpus} if snapshot else {}
    return {by_uuid.get(i, i) for i in sel_ids}


def _ordered(ids: set[str]) -> str:
    return ",".join(sorted(ids, key=lambda i: (not i.isdigit(), int(i) if i.isdigit() else 0, i)))


def _overlap(mine: GpuSelection, theirs: GpuRequest, snapshot: GpuSnapshot | None) -> str | None:
    """Which GPUs two requests share, as text, or None."""
    if mine.none or theirs.none:
        return None
    if theirs.all:
        return "all GPUs" if mine.all else "GPU " + _ordered(_indices(mine.ids, snapshot))
    if not theirs.device_ids:
        return f"any {theirs.count} GPU(s)"  # the runtime picks: may be any of ours
    theirs_ids = _indices(theirs.device_ids, snapshot)
    if mine.all:
        return "GPU " + _ordered(theirs_ids)
    shared = _indices(mine.ids, snapshot) & theirs_ids
    return "GPU " + _ordered(shared) if shared else None


def preflight_findings(
    gpus: GpuSelection,
    *,
    engine_info: Mapping[str, Any],
    machine: Machine | None,
    image_attrs: Mapping[str, Any] | None = None,
    cuda_driver: int | None = None,
    other_requests: Mapping[str, GpuRequest] | None = None,
    gpu_snapshot: GpuSnapshot | None = None,
    used_by: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Pure: the findings for a GPU launch from facts gathered elsewhere.

    ``other_requests`` maps running containers' names to their GPU requests; ``used_by`` maps
    GPU index (as text) to a description of who really uses it (from attribution).
    """
    if gpus.none:
        return []
    findings: list[Finding] = []
    if not engine_has_nvidia(engine_info, machine):
        findings.append(
            Finding(
                ERROR,
                "no-nvidia-runtime",
                "the engine has no NVIDIA container runtime (no 'nvidia' runtime, toolkit hook "
                "or NVIDIA CDI spec), so it cannot give a container GPUs",
                "install nvidia-container-toolkit on the host and restart dockerd, or launch "
                "with GPUs: none",
            )
        )
    wanted = image_cuda_version(image_attrs or {})
    if wanted is not None and cuda_driver:
        have = (cuda_driver // 1000, (cuda_driver % 1000) // 10)
        if wanted > have:
            major = wanted[0] > have[0]
            findings.append(
                Finding(
                    ERROR if major else WARNING,
                    "cuda-too-new",
                    f"the image is built for CUDA {wanted[0]}.{wanted[1]} but the host driver "
                    f"supports CUDA {have[0]}.{have[1]}"
                    + ("" if major else " (minor-version compatibility may still work)"),
                    f"pick an image for CUDA {have[0]}.{have[1]} or older, or update the "
                    "NVIDIA driver",
                )
            )
    for name, request in sorted((other_requests or {}).items()):
        shared = _overlap(gpus, request, gpu_snapshot)
        if shared:
            findings.append(
                Finding(
                    WARNING,
                    "gpu-reserved",
                    f"{shared} also reserved by container {name!r}",
                    "allowed, but the two share memory and compute — pick free GPUs if "
                    "you need them alone",
                )
            )
    wanted_idx = (
        {str(g.index) for g in gpu_snapshot.gpus}
        if gpus.all and gpu_snapshot is not None
        else _indices(gpus.ids, gpu_snapshot)
    )
    for index, who in sorted((used_by or {}).items()):
        if index in wanted_idx:
            findings.append(
                Finding(
                    WARNING,
                    "gpu-busy",
                    f"GPU {index} is in use by {who}",
                    "allowed, but memory may run out — pick a free GPU",
                )
            )
    return findings


def _used_by(
    snapshot: GpuSnapshot,
    requests: Mapping[str, GpuRequest],
    names: Mapping[str, str],
    machine: Machine,
) -> dict[str, str]:
    from gpuconsole.backend.gpu.attribution import attribute_gpu_processes

    attribution = attribute_gpu_processes(snapshot, requests, machine=machine)
    who: dict[str, list[str]] = {}
    for row in attribution.processes:
        if row.container_id:
            label = f"container {names.get(row.container_id, row.container_id[:12])!r}"
        else:
            label = f"host process {row.command or row.process.pid}"
        entries = who.setdefault(str(row.process.gpu_index), [])
        if label not in entries:
            entries.append(label)
    return {index: ", ".join(labels) for index, labels in who.items()}


def run_preflight(
    host: DockerHost,
    gpus: GpuSelection,
    image: str,
    *,
    gpu_snapshot: GpuSnapshot | None = None,
    cuda_driver: int | None = None,
    exclude: str | None = None,
) -> list[Finding]:
    """Gather the facts from the engine (and the optional GPU snapshot) and run the checks."""
    if gpus.none:
        return []
    from gpuconsole.backend.docker.host import engine_api
    from gpuconsole.backend.errors import GpuconsoleError

    api, call = engine_api(host)
    with call(None, "info"):
        info = api.info()
    attrs: dict[str, Any] = {}
    with contextlib.suppress(GpuconsoleError), call(None, "inspect image"):
        attrs = api.inspect_image(image)
    running = [c for c in host.list_containers(all=False) if c.id != exclude]
    requests = host.gpu_requests([c.id for c in running]) if running else {}
    names = {c.id: c.name for c in running}
    used = (
        _used_by(gpu_snapshot, requests, names, host.machine)
        if gpu_snapshot is not None and gpu_snapshot.processes
        else {}
    )
    return preflight_findings(
        gpus,
        engine_info=info,
        machine=host.machine,
        image_attrs=attrs,
        cuda_driver=cuda_driver,
        other_requests={names[cid]: r for cid, r in requests.items() if cid in names},
        gpu_snapshot=gpu_snapshot,
        used_by=used,
    )

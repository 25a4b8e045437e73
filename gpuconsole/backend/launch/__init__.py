"""Launching Jupyter, SSH and plain containers, and building the images they need.

The public API for the CLI and the TUI form:

- ``LaunchSpec`` (what the user asked for, as typed) -> ``check_launch`` -> ``LaunchCheck``
  (all field errors at once, warnings, missing mount sources, the resolved ``LaunchPlan``);
- ``launch(host, spec, on_progress=..., cancel=...)`` -> ``LaunchResult`` (URL, token, ssh
  command, ports), raising LaunchRejected / LaunchFailed / LaunchCancelled;
- ``run_preflight`` -> ``Finding`` list for GPU launches;
- ``build_variant`` -> a derived ``gpuconsole/<base>-<variant>:<tag>`` image;
- ``describe_launch`` finds a launch's URL / ssh command again from the engine;
- ``remove_abandoned`` removes what launches the engine failed under left on a host.

Importing this package does not import docker-py; that happens on the first engine call.
"""

from __future__ import annotations

from gpuconsole.backend.launch.cleanup import remove_abandoned
from gpuconsole.backend.launch.launcher import (
    STAGES,
    LaunchProgress,
    LaunchResult,
    ProgressCallback,
    create_container,
    describe_launch,
    launch,
    pull_image,
)
from gpuconsole.backend.launch.preflight import Finding, cuda_driver_version, run_preflight
from gpuconsole.backend.launch.sizes import SizeError, format_size, parse_size
from gpuconsole.backend.launch.spec import (
    VARIANTS,
    GpuSelection,
    Issue,
    LaunchPlan,
    LaunchSpec,
    parse_gpus,
)
from gpuconsole.backend.launch.validate import (
    EngineFacts,
    LaunchCheck,
    check_launch,
    gather_facts,
    validate,
)

__all__ = [
    "STAGES",
    "VARIANTS",
    "EngineFacts",
    "Finding",
    "GpuSelection",
    "Issue",
    "LaunchCheck",
    "LaunchPlan",
    "LaunchProgress",
    "LaunchResult",
    "LaunchSpec",
    "ProgressCallback",
    "SizeError",
    "check_launch",
    "create_container",
    "cuda_driver_version",
    "describe_launch",
    "format_size",
    "gather_facts",
    "launch",
    "parse_gpus",
    "parse_size",
    "pull_image",
    "remove_abandoned",
    "run_preflight",
    "validate",
]

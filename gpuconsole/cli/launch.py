"""``gpuconsole launch`` and ``gpuconsole build-variant`` (argument parsing stays import-light).

Flag names follow ``docker run``. Progress goes to stderr, the result to stdout (``--json``
keeps stdout machine-readable). Exit codes: 0 launched, 2 invalid input (every bad field is
named, nothing was created), 1 the launch or build failed (and left nothing behind).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from gpuconsole.cli.common import add_host_option, err, one_host

if TYPE_CHECKING:
    from gpuconsole.backend.gpu.models import GpuSnapshot
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.backend.launch import LaunchSpec
    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"launch", "build-variant"})

#: LaunchSpec field -> the flag a CLI user knows it by, for error messages.
FLAGS = {
    "variant": "--variant",
    "image": "--image",
    "name": "--name",
    "gpus": "--gpus",
    "memory": "--memory",
    "cpus": "--cpus",
    "shm_size": "--shm-size",
    "ulimits": "--ulimit",
    "volumes": "--volume",
    "env": "--env",
    "workdir": "--workdir",
    "user": "--user",
    "port": "--publish",
    "bind": "--bind",
    "labels": "--label",
    "ssh_key": "--ssh-key",
    "command": "COMMAND",
    "profile": "--profile",
}


def add_parsers(sub: Any) -> None:
    """Register the launch subcommands on the top-level parser's subparsers."""
    p = sub.add_parser(
        "launch",
        help="launch a Jupyter, SSH or plain container with GPU and resource limits",
        description="Launch a container the way the console does: ports on 127.0.0.1, a "
        "generated Jupyter token passed by environment, key-only SSH, shm and ulimits set "
        "for deep learning. Flags as in docker run; a --profile supplies defaults.",
    )
    p.add_argument("--profile", metavar="NAME", help="start from [profiles.NAME] of the config")
    p.add_argument("--variant", help="jupyter (default), ssh or plain")
    p.add_argument("--image", metavar="IMAGE", help="image reference, with a semantic tag")
    p.add_argument("--name", help="container name (default: <variant>-<user>-<n>)")
    p.add_argument("--gpus", metavar="SPEC", help="all, none (default), 0,1 or GPU UUIDs")
    p.add_argument("-m", "--memory", metavar="SIZE", help="memory limit, e.g. 32g")
    p.add_argument("--cpus", metavar="N", help="CPU limit, e.g. 8 or 1.5")
    p.add_argument("--shm-size", metavar="SIZE", help="/dev/shm size (default 8g for jupyter/ssh)")
    p.add_argument(
        "-v", "--volume", action="append", default=None, metavar="SRC:DST[:ro]", dest="volumes"
    )
    p.add_argument("-e", "--env", action="append", default=None, metavar="KEY=VALUE")
    p.add_argument("-p", "--publish", metavar="PORT", dest="port", help="host port (default: free)")
    p.add_argument("--bind", metavar="ADDR", help="host address to publish on (default 127.0.0.1)")
    p.add_argument("--ipc-host", action="store_true", default=None, help="share the host's IPC")
    p.add_argument(
        "--ulimit",
        action="append",
        default=None,
        metavar="NAME=SOFT[:HARD]",
        dest="ulimits",
        help="default memlock=-1 and stack=67108864, each where the engine can set it",
    )
    p.add_argument("-w", "--workdir", metavar="DIR")
    p.add_argument("-u", "--user", metavar="USER")
    p.add_argument("-l", "--label", action="append", default=None, metavar="KEY=VALUE")
    p.add_argument("--ssh-key", metavar="PATH", help="public key for ssh (default ~/.ssh/id_*)")
    p.add_argument("--mkdir", action="store_true", help="create missing volume sources")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="readiness wait")
    p.add_argument("--dry-run", action="store_true", help="check only; create nothing")
    p.add_argument("--save-profile", metavar="NAME", help="save these options as a profile")
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    add_host_option(p)
    p.add_argument(
        "plain_command",
        nargs="*",
        metavar="COMMAND",
        help="command for the plain variant (after --)",
    )

    b = sub.add_parser(
        "build-variant",
        help="build an image adding sshd or Jupyter to a Debian/Ubuntu base",
        description="Derive gpuconsole/<base>-<variant>:<base tag> from a base image.",
    )
    b.add_argument("--base", required=True, metavar="IMAGE", help="base image")
    b.add_argument("--variant", required=True, choices=("ssh", "jupyter"))
    b.add_argument("--tag", metavar="TAG", help="tag for the result (default: derived)")
    b.add_argument("--json", action="store_true", help="print {tag, id} as JSON at the end")
    add_host_option(b)


_err = err


def _spec_from_args(args: argparse.Namespace, settings: Settings) -> LaunchSpec:
    from gpuconsole.backend.launch import LaunchSpec

    spec = LaunchSpec()
    if args.profile:
        from gpuconsole.settings.config import config_path
        from gpuconsole.settings.profiles import get_profile

        spec = get_profile(args.profile, settings.path or config_path(args.config)).to_spec()
    changes: dict[str, Any] = {}
    for key in ("variant", "image", "name", "gpus", "memory", "cpus", "shm_size", "port"):
        value = getattr(args, key)
        if value is not None:
            changes[key] = value
    for key, attr in (("workdir", "workdir"), ("user", "user"), ("bind", "bind")):
        if getattr(args, attr) is not None:
            changes[key] = getattr(args, attr)
    if args.ssh_key is not None:
        changes["ssh_key"] = args.ssh_key
    if args.ipc_host:
        changes["ipc_host"] = True
    # Lists add to the profile's (a profile's volumes plus one more -v).
    for key, attr in (("volumes", "volumes"), ("env", "env"), ("ulimits", "ulimits")):
        extra = getattr(args, attr)
        if extra:
            changes[key] = (*getattr(spec, key), *extra)
    if args.label:
        changes["labels"] = (*spec.labels, *args.label)
    if args.plain_command:
        changes["command"] = tuple(args.plain_command)
    return spec.replace(**changes)


def _gpu_facts(spec: LaunchSpec, host: Host) -> tuple[GpuSnapshot | None, int | None]:
    """The host's GPUs and its driver's CUDA version, only for launches that ask for GPUs."""
    from gpuconsole.backend.launch import parse_gpus

    try:
        if parse_gpus(spec.gpus).none:
            return None, None
    except ValueError:
        return None, None  # validation reports it
    from gpuconsole.backend.launch import cuda_driver_version
    from gpuconsole.cli.gpus import first_sample

    if host.gpu is None:
        return None, None
    try:
        snapshot = first_sample(host.gpu)
    finally:
        host.gpu.close()
    return snapshot, cuda_driver_version(host.machine) if snapshot.gpus else None


def _print_rejected(errors: tuple[tuple[str, str], ...]) -> None:
    for field_name, message in errors:
        _err(f"{FLAGS.get(field_name, field_name)}: {message}")


def _cmd_launch(args: argparse.Namespace, settings: Settings) -> int:
    from gpuconsole.backend.errors import LaunchCancelled, LaunchFailed, LaunchRejected
    from gpuconsole.backend.launch import (
        LaunchProgress,
        check_launch,
        launch,
        run_preflight,
    )
    from gpuconsole.settings.profiles import ProfileError

    try:
        spec = _spec_from_args(args, settings)
    except ProfileError as exc:  # an unknown or malformed --profile is bad input: exit 2
        _err(f"--profile: {exc}")
        return 2
    hosted = one_host(settings, args, gpus=True)
    host = hosted.engine
    spec = spec.replace(host=hosted.name)
    try:
        snapshot, cuda = _gpu_facts(spec, hosted)
        if args.dry_run or args.save_profile:
            check = check_launch(host, spec, snapshot)
            for issue in check.warnings:
                _err(f"warning: {FLAGS.get(issue.field, issue.field)}: {issue.message}")
            for issue in check.notes:
                _err(f"note: {FLAGS.get(issue.field, issue.field)}: {issue.message}")
            if not check.ok:
                _print_rejected(check.errors)
                return 2
            assert check.plan is not None
            if args.save_profile:
                from gpuconsole.settings.config import config_path
                from gpuconsole.settings.profiles import profile_from_spec, save_profile

                path = settings.path or config_path(args.config)
                save_profile(profile_from_spec(args.save_profile, spec), path)
                _err(f"saved profile {args.save_profile!r} in {path}")
            if args.dry_run:
                plan = check.plan
                for finding in run_preflight(
                    host, plan.gpus, plan.image, gpu_snapshot=snapshot, cuda_driver=cuda
                ):
                    _err(f"preflight {finding.severity}: {finding.text()}")
                port = f" on {plan.bind}:{plan.host_port}" if plan.host_port else ""
                print(f"would launch {plan.name} ({plan.variant}) from {plan.image}{port}")
                return 0

        def progress(p: LaunchProgress) -> None:
            if p.stage == "preflight":
                _err(f"preflight {p.message}")
            else:
                print(f"[{p.stage}] {p.message}", file=sys.stderr, flush=True)

        try:
            result = launch(
                host,
                spec,
                gpu_snapshot=snapshot,
                cuda_driver=cuda,
                on_progress=progress,
                timeout=args.timeout,
                create_missing_sources=args.mkdir,
            )
        except LaunchRejected as exc:
            _print_rejected(exc.errors)
            return 2
        except (LaunchFailed, LaunchCancelled) as exc:
            _err(str(exc))
            return 1
        for issue in result.warnings:
            _err(f"warning: {FLAGS.get(issue.field, issue.field)}: {issue.message}")
        if args.json:
            print(json.dumps(result.to_json(), indent=2))
        else:
            print(f"{result.name} ({result.id[:12]}) is up on {result.host}")
            if result.url:
                where = "" if hosted.is_local else f" (on {hosted.name}'s loopback)"
                print(f"  Jupyter{where}: {result.url}")
            if result.ssh_command:
                print(f"  SSH:     {result.ssh_command}")
            if not hosted.is_local and result.url:
                print(f"  A local URL: gpuconsole tunnel {result.name} --host {hosted.name}")
            for note in result.notes:
                print(f"  Note:    {note}")
        return 0
    finally:
        hosted.close()


def _cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    from gpuconsole.backend.errors import BuildFailed
    from gpuconsole.backend.launch.build_variant import build_variant

    hosted = one_host(settings, args)
    out = sys.stderr if args.json else sys.stdout
    try:
        result = build_variant(
            hosted.engine,
            args.base,
            args.variant,
            args.tag,
            on_log=lambda line: print(line, file=out, flush=True),
        )
    except BuildFailed as exc:
        _err(str(exc))
        return 1
    finally:
        hosted.close()
    if args.json:
        print(json.dumps({"tag": result.tag, "id": result.image_id}))
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.read_only or settings.read_only:
        _err(f"read-only mode: {args.command!r} is disabled (drop --read-only)")
        return 1
    if args.command == "launch":
        return _cmd_launch(args, settings)
    return _cmd_build(args, settings)

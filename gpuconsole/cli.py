"""Command line: ``gpuconsole`` opens the console; subcommands script the same actions.

Heavy modules (textual, docker) are imported only by the code path that needs them, so
``gpuconsole --version`` and ``--help`` answer instantly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuconsole import __version__

if TYPE_CHECKING:
    from gpuconsole.backend.docker.host import DockerHost
    from gpuconsole.config import Settings


def _interval(text: str) -> float:
    """--gpu-interval: 0.1 to 60 seconds (argparse turns the error into exit code 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text} is outside 0.1..60 seconds — e.g. 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuconsole",
        description="A keyboard-driven console for containers and GPUs. "
        "Without a command, opens the full-screen console.",
    )
    parser.add_argument("--version", action="version", version=f"gpuconsole {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: platform dir)")
    parser.add_argument(
        "--docker-host",
        metavar="URL",
        help="Docker engine address (default: $DOCKER_HOST, else unix:///var/run/docker.sock)",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="disable every action that changes anything (for shared screens)",
    )
    parser.add_argument(
        "--gpu-replay",
        metavar="FILE",
        type=Path,
        help="show a recorded GPU JSONL (looping) instead of this host's GPUs",
    )
    parser.add_argument(
        "--gpu-interval",
        metavar="SECONDS",
        type=_interval,
        default=None,
        help="GPU sample interval (default 1 s; history keeps 10 minutes)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ps = sub.add_parser("ps", help="list containers with CPU, memory and GPU requests")
    ps.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    ps.add_argument("--json", action="store_true", help="machine-readable output")

    for name, text in (
        ("start", "start containers"),
        ("stop", "stop containers"),
        ("restart", "restart containers"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("names", nargs="+", metavar="NAME", help="container name or id")
        if name != "start":
            p.add_argument(
                "-t", "--time", type=int, default=10, help="seconds to wait before killing"
            )
    rm = sub.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="also remove running containers")
    rm.add_argument("names", nargs="+", metavar="NAME", help="container name or id")

    from gpuconsole import cli_gpus, cli_launch

    cli_gpus.add_parsers(sub)
    cli_launch.add_parsers(sub)
    return parser


def _err(message: str) -> None:
    print(f"gpuconsole: {message}", file=sys.stderr)


def make_host(settings: Settings, args: argparse.Namespace) -> DockerHost:
    """The local engine, from --docker-host, the config file, $DOCKER_HOST or the socket."""
    from gpuconsole.backend.docker.local import LocalDockerHost

    return LocalDockerHost(base_url=args.docker_host or settings.docker_host)


def _ps_rows(host: DockerHost, show_all: bool) -> list[dict[str, Any]]:
    from gpuconsole import format as fmt

    containers = host.list_containers(all=show_all)
    running = [c.id for c in containers if c.running]
    measure = getattr(host, "measured_stats", None)
    stats = (measure(running) if measure else host.stats(running)) if running else {}
    gpus = host.gpu_requests([c.id for c in containers]) if containers else {}
    rows = []
    for c in containers:
        s = stats.get(c.id)
        rows.append(
            {
                "host": c.host,
                "id": c.id,
                "name": c.name,
                "image": c.image,
                "state": c.state,
                "status": c.status,
                "variant": c.variant,
                "gpus": fmt.gpus_json(gpus.get(c.id)),
                "cpu_percent": None
                if s is None or s.cpu_percent is None
                else round(s.cpu_percent, 2),
                "memory_bytes": s.memory_bytes if s else None,
                "memory_limit_bytes": s.memory_limit_bytes if s else None,
                "ports": [
                    {
                        "host_ip": p.host_ip,
                        "host_port": p.host_port,
                        "container_port": p.private_port,
                        "protocol": p.protocol,
                    }
                    for p in c.ports
                ],
                "_summary": c,
                "_gpu": gpus.get(c.id),
            }
        )
    return rows


def _cmd_ps(host: DockerHost, args: argparse.Namespace) -> int:
    from gpuconsole import format as fmt

    rows = _ps_rows(host, args.all)
    if args.json:
        print(
            json.dumps(
                [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], indent=2
            )
        )
        return 0
    header = (
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "STATUS",
        "CPU %",
        "MEM USAGE / LIMIT",
        "GPUS",
        "VARIANT",
        "PORTS",
    )
    table = [header]
    for r in rows:
        c = r["_summary"]
        table.append(
            (
                c.short_id,
                c.name,
                fmt.image(c.image),
                c.status,
                fmt.cpu_percent(r["cpu_percent"], c.running),
                fmt.memory(r["memory_bytes"], r["memory_limit_bytes"], c.running),
                fmt.gpus(r["_gpu"]),
                fmt.variant(c),
                fmt.ports(c.ports),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _cmd_action(host: DockerHost, args: argparse.Namespace) -> int:
    from gpuconsole.backend.errors import GpuconsoleError, HostUnreachable

    status = 0
    for name in args.names:
        try:
            if args.command == "start":
                host.start(name)
            elif args.command == "stop":
                host.stop(name, timeout=args.time)
            elif args.command == "restart":
                host.restart(name, timeout=args.time)
            else:
                host.remove(name, force=args.force)
        except HostUnreachable:
            raise
        except GpuconsoleError as exc:
            _err(str(exc))
            status = 1
            continue
        print(name)
    return status


def _run_tui(settings: Settings, args: argparse.Namespace) -> int:
    from gpuconsole.backend.gpu import ReplayError, open_local_gpu_source
    from gpuconsole.ui.app import GpuconsoleApp

    interval = args.gpu_interval if args.gpu_interval is not None else settings.gpu_interval
    try:
        gpu_source = open_local_gpu_source(args.gpu_replay, interval)
    except ReplayError as exc:
        _err(f"--gpu-replay: {exc}")
        return 1
    app = GpuconsoleApp(
        host=make_host(settings, args),
        read_only=args.read_only or settings.read_only,
        refresh_seconds=settings.refresh_seconds,
        show_all=settings.show_all,
        gpu_source=gpu_source,
        gpu_interval=interval,
        replay_name=args.gpu_replay.name if args.gpu_replay else None,
        config_path=settings.path,
    )
    app.run()
    return app.return_code or 0


def cli_gpus_commands() -> frozenset[str]:
    from gpuconsole.cli_gpus import COMMANDS

    return COMMANDS


def cli_launch_commands() -> frozenset[str]:
    from gpuconsole.cli_launch import COMMANDS

    return COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from gpuconsole.backend.errors import GpuconsoleError
    from gpuconsole.config import load_settings

    try:
        settings = load_settings(args.config)
        if args.command is None:
            return _run_tui(settings, args)
        if args.read_only and args.command in ("start", "stop", "restart", "rm"):
            _err(f"read-only mode: {args.command!r} is disabled (drop --read-only)")
            return 1
        if args.command in cli_gpus_commands():
            from gpuconsole import cli_gpus

            return cli_gpus.run(args, settings)
        if args.command in cli_launch_commands():
            from gpuconsole import cli_launch

            return cli_launch.run(args, settings)
        host = make_host(settings, args)
        try:
            if args.command == "ps":
                return _cmd_ps(host, args)
            return _cmd_action(host, args)
        finally:
            host.close()
    except GpuconsoleError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130

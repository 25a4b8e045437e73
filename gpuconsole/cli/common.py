"""What every command shares: error output, plain tables, and picking the hosts to act on.

Heavy modules (docker, paramiko, textual) are imported by the code paths that need them only, so
``gpuconsole --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.backend.hosts.spec import HostSpec
    from gpuconsole.settings.config import Settings

T = TypeVar("T")


def err(message: str) -> None:
    print(f"gpuconsole: {message}", file=sys.stderr)


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, three spaces apart, as ``docker ps`` prints them."""
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def add_host_option(parser: argparse.ArgumentParser, all_hosts: bool = False) -> None:
    parser.add_argument(
        "--host",
        metavar="NAME",
        # No default of its own: ``gpuconsole --host H CMD`` (the global option) must not be
        # overwritten by this parser's None.
        default=argparse.SUPPRESS,
        help="act on this host of the config (default: the local engine, else the first host)",
    )
    if all_hosts:
        parser.add_argument(
            "--all-hosts",
            action="store_true",
            help="every enabled host; unreachable ones are named on stderr",
        )


def host_specs(settings: Settings, args: argparse.Namespace) -> list[HostSpec]:
    """The specs the command acts on: ``--all-hosts``, ``--host NAME`` or the default host.

    ``--docker-host`` overrides the local engine's URL (only the local host has one).
    """
    import dataclasses

    from gpuconsole.settings.config import ConfigError

    for problem in (*settings.warnings, *settings.host_errors):
        err(f"warning: {problem}")
    specs = list(settings.enabled_hosts())
    docker_url = getattr(args, "docker_host", None)
    if docker_url:
        specs = [dataclasses.replace(s, docker_url=docker_url) if s.is_local else s for s in specs]
    if getattr(args, "all_hosts", False):
        if getattr(args, "host", None):
            raise ConfigError("--host and --all-hosts exclude each other — pick one")
        return list(specs)
    name = getattr(args, "host", None)
    if name:
        wanted = settings.host(name)
        return [s for s in specs if s.name == wanted.name]
    if not specs:
        raise ConfigError(
            f"every host is disabled in {settings.path} — enable one, or pass --host NAME"
        )
    return [next((s for s in specs if s.is_local), specs[0])]


def open_for(settings: Settings, args: argparse.Namespace, *, gpus: bool = False) -> list[Host]:
    """Hosts for a command (not connected yet: the first call does that, per host)."""
    from gpuconsole.backend.hosts.open import open_hosts

    specs = host_specs(settings, args)
    options = settings.ssh
    if getattr(args, "accept_new_host_key", False):
        import dataclasses

        options = dataclasses.replace(options, accept_new_host_key=True)
    return open_hosts(
        specs,
        options,
        gpus=gpus,
        gpu_interval=getattr(args, "gpu_interval", None) or settings.gpu_interval,
    )


def one_host(settings: Settings, args: argparse.Namespace, *, gpus: bool = False) -> Host:
    (host,) = open_for(settings, args, gpus=gpus)
    return host


def each_host(hosts: Sequence[Host], work: Callable[[Host], T]) -> list[T | BaseException]:
    """``work`` on every host at once, in host order: a slow host costs its own time only."""
    if len(hosts) == 1:
        try:
            return [work(hosts[0])]
        except Exception as exc:
            return [exc]

    def guarded(host: Host) -> T | BaseException:
        try:
            return work(host)
        except Exception as exc:
            return exc

    from concurrent.futures import ThreadPoolExecutor  # not for one host: before ps's window

    with ThreadPoolExecutor(max_workers=min(64, len(hosts))) as pool:
        return list(pool.map(guarded, hosts))


def close_all(hosts: Sequence[Host]) -> None:
    for host in hosts:
        host.close()


def seconds_arg(text: str) -> float:
    """An interval option (--gpu-interval, record --interval): 0.1 to 60 seconds; argparse
    turns the error into exit code 2."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text} is outside 0.1..60 seconds — e.g. 1")
    return value

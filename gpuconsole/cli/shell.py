"""``gpuconsole shell``: an interactive shell in a container, or on a host, in this terminal.

Exits with the shell's own exit code (as ``docker exec`` does), so scripts can use it; 255 when
the session was left with ``~.`` or its connection broke (as ssh does), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from gpuconsole.cli.common import add_host_option, close_all, err, open_for

if TYPE_CHECKING:
    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.settings.config import Settings

COMMANDS: frozenset[str] = frozenset({"shell"})
LOST = 255


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "shell",
        help="an interactive shell in a container (or, without NAME, on the --host itself)",
        description="Open a shell on a real pty inside container NAME (bash, else sh), locally "
        "or on a remote host over its SSH connection; without NAME, a login shell on the host "
        "given with --host. Type ~. at the start of a line to leave a session that hangs.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="container name or id")
    add_host_option(p)
    p.add_argument(
        "--shell",
        metavar="CMD",
        help="program to run (default: [shell] command, else bash, else sh)",
    )
    p.add_argument("-u", "--user", metavar="USER", help="user (name or uid[:gid]) in the container")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory in the container")
    p.add_argument(
        "--start",
        action="store_true",
        help="start the container first if it is stopped (otherwise asks on a terminal)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.name is None and not args.host:
        err("shell: give a container NAME, or --host HOST for a shell on that host")
        return 2
    if args.name is None and (args.user or args.workdir):
        err("shell: --user and --workdir apply inside a container — give its NAME")
        return 2
    hosts = open_for(settings, args)
    try:
        return _run(hosts[0], args, settings)
    finally:
        close_all(hosts)


def _run(host: Host, args: argparse.Namespace, settings: Settings) -> int:
    from gpuconsole.backend.shells.exec_pty import ContainerNotRunning, ShellRefused
    from gpuconsole.backend.shells.session import ShellRequest, describe_end, run_session

    request = ShellRequest(
        host,
        args.name,
        shell=args.shell or settings.shell,
        user=args.user,
        workdir=args.workdir,
    )
    try:
        end = run_session(request)
    except ContainerNotRunning as exc:
        if not (args.start or _ask_start(exc)):
            err(str(exc))
            return 1
        host.engine.start(args.name)
        try:
            end = run_session(request)
        except ShellRefused as refused:
            err(str(refused))
            return refused.exit_code
    except ShellRefused as exc:
        err(str(exc))
        return exc.exit_code
    from gpuconsole.backend.shells.bridge import Ending

    if end.ending is not Ending.EXITED:
        err(describe_end(request, end))
        return LOST
    return end.exit_code if end.exit_code is not None else LOST


def _ask_start(exc: Exception) -> bool:
    """On a terminal, offer to start the stopped container (the default is no)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    sys.stderr.write(f"{exc}\nStart it now? [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() in ("y", "yes")

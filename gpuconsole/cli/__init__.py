"""Command line: ``gpuconsole`` opens the console; subcommands script the same actions.

One module per command group (containers, gpus, launch, hosts) plus the console itself (tui);
shared helpers in ``common``. Heavy modules (textual, docker, paramiko) are imported only by the
code path that needs them, so ``gpuconsole --version`` and ``--help`` answer instantly.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from gpuconsole import __version__
from gpuconsole.cli import containers, gpus, hosts, launch, logs, serve, shell, usage
from gpuconsole.cli.common import seconds_arg

#: Command group modules, each with COMMANDS, add_parsers(sub) and run(args, settings).
GROUPS = (containers, gpus, launch, hosts, logs, shell, serve, usage)


#: The top-level options that take a value (the word after them is not the command).
_VALUED = frozenset({"--config", "--docker-host", "--host", "--gpu-replay", "--gpu-interval"})


def _groups_for(argv: Sequence[str]) -> tuple[ModuleType, ...]:
    """The command groups whose parsers this command line needs: the one that holds its
    command, else every group (no command, ``--help``, or a word to be told unknown).
    Building all 16 parsers took ~35 ms (argparse sizes a help formatter and looks up
    translations for every argument), before ``ps`` could start its CPU window."""
    words = iter(argv)
    for word in words:
        if word == "--":
            break
        if word.startswith("-"):
            if word in _VALUED:
                next(words, None)
            continue
        for group in GROUPS:
            if word in group.COMMANDS:
                return (group,)
        break
    return GROUPS


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser; given ``argv``, with only the subparsers it needs."""
    parser = argparse.ArgumentParser(
        prog="gpuconsole",
        description="A keyboard-driven console for containers and GPUs, local and over SSH. "
        "Without a command, opens the full-screen console over every configured host.",
    )
    parser.add_argument("--version", action="version", version=f"gpuconsole {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: platform dir)")
    parser.add_argument(
        "--docker-host",
        metavar="URL",
        help="the local engine's address (default: $DOCKER_HOST, else unix:///var/run/docker.sock)",
    )
    parser.add_argument(
        "--host",
        dest="host",
        metavar="NAME",
        help="the console: show only this host of the config",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="disable every action that changes anything (for shared screens)",
    )
    parser.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="trust an SSH host key never seen before (added to known_hosts); a changed key "
        "is always refused",
    )
    parser.add_argument(
        "--gpu-replay",
        metavar="FILE",
        type=Path,
        help="show a recorded GPU JSONL (looping) instead of the first host's GPUs",
    )
    parser.add_argument(
        "--gpu-interval",
        metavar="SECONDS",
        type=seconds_arg,
        default=None,
        help="GPU sample interval (default 1 s; history keeps 10 minutes)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS if argv is None else _groups_for(argv):
        group.add_parsers(sub)
    return parser


def _spare_finalization() -> None:
    """The command is done and the process about to end: move every object out of the cyclic
    collector's reach, whose passes over docker-py's and paramiko's objects during the
    interpreter's teardown took 0.15-0.35 s (measured on ``logs -f``: the command ended that
    long after the container). Nothing is left to collect in a process that is exiting."""
    import gc

    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        import sys

        argv = sys.argv[1:]
    parser = _parser(argv)
    args = parser.parse_args(argv)
    from gpuconsole.backend.errors import GpuconsoleError
    from gpuconsole.cli.common import err
    from gpuconsole.settings.config import load_settings

    try:
        settings = load_settings(args.config)
        if args.command is None:
            from gpuconsole.cli import tui

            return tui.run(args, settings)
        for group in GROUPS:
            if args.command in group.COMMANDS:
                try:
                    return int(group.run(args, settings))
                finally:
                    _spare_finalization()
        parser.error(f"unknown command {args.command!r}")
    except GpuconsoleError as exc:
        err(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    return 2

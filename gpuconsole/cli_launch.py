"""``gpuconsole launch`` and ``gpuconsole build-variant`` (argument parsing stays import-light)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpuconsole.config import Settings

COMMANDS: frozenset[str] = frozenset()


def add_parsers(sub: Any) -> None:
    """Register the launch subcommands on the top-level parser's subparsers."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise NotImplementedError(args.command)

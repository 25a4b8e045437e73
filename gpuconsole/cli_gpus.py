"""``gpuconsole gpus``: per-GPU telemetry with the containers holding each GPU."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpuconsole.config import Settings

COMMANDS: frozenset[str] = frozenset()


def add_parsers(sub: Any) -> None:
    """Register ``gpus`` on the top-level parser's subparsers."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise NotImplementedError(args.command)

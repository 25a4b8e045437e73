"""The command line parser, built with only the subparsers a command line needs.

Each command must still find its own options whatever stands before it, and the top-level
help and the unknown-command error must still name every command.
"""

from __future__ import annotations

import pytest

from gpuconsole import cli

EVERY = sorted(c for group in cli.GROUPS for c in group.COMMANDS)


@pytest.mark.parametrize("command", EVERY)
def test_each_command_parses_with_only_its_group(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "logs" if command in ("ps", "start") else "ps"  # an option's value, not the command
    for before in ([], ["--config", other], ["--host", other], ["--read-only"]):
        argv = [*before, command, "--help"]
        with pytest.raises(SystemExit) as end:
            cli._parser(argv).parse_args(argv)
        assert end.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: gpuconsole {command} ")


def test_help_and_unknown_command_name_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["--docker-host", "ps", "--help"]):
        with pytest.raises(SystemExit):
            cli._parser(argv).parse_args(argv)
        out = capsys.readouterr().out
        assert all(f"    {c} " in out for c in EVERY), out
    with pytest.raises(SystemExit) as end:
        cli._parser(["pss"]).parse_args(["pss"])
    assert end.value.code == 2
    err = capsys.readouterr().err
    assert all(repr(c) in err for c in EVERY), err

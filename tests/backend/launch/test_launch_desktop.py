"""Browser and clipboard helpers the TUI calls after a launch."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from gpuconsole.backend.launch.desktop import copy_to_clipboard, osc52

URL = "http://127.0.0.1:8888/?token=0123456789abcdef"


def test_osc52_carries_the_text_for_the_terminal() -> None:
    seq = osc52(URL)
    assert seq.startswith("\x1b]52;c;") and seq.endswith("\x07")
    assert base64.b64decode(seq[len("\x1b]52;c;") : -1]).decode() == URL


def test_clipboard_tool_gets_the_secret_on_stdin_not_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = tmp_path / "xclip"
    tool.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert copy_to_clipboard(URL) == "xclip"
    assert (tmp_path / "stdin").read_text() == URL
    assert "token" not in (tmp_path / "argv").read_text()


def test_no_clipboard_tool_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert copy_to_clipboard(URL) is None

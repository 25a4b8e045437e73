"""Faults of the config and profile files, as a user meets them: a full disk while a profile is
saved, broken or mistyped files, a symlink into a dotfiles repository, a file others may read
or change. Real files (and a real full tmpfs), the real CLI as a subprocess, the console
through Pilot. Each test checks what the user notices — the words, the exit status, no
traceback — and that nothing was lost or left behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static

from gpuconsole.settings.config import load_settings
from gpuconsole.settings.profiles import Profile, ProfileError, load_profiles, save_profile
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.launch_form import LaunchForm

from fakes import H100_RECORDING
from support import TEST_IMAGE, host_at, run_cli
from uihelpers import until

CONFIG = (
    "# team settings — keep the comments\n"
    "[ui]\nrefresh_seconds = 1.5\n\n"
    '[profiles.train]\nimage = "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"\n'
    'memory = "32g"\ncpus = 8\n'
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    out = run_cli(*args, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


async def open_form(app: GpuconsoleApp, pilot: Any) -> LaunchForm:
    """``n``, and the form once its fields are there (the screen is pushed before them)."""
    await pilot.press("n")
    await until(
        pilot,
        lambda: isinstance(app.screen, LaunchForm) and bool(app.screen.query("#save-name")),
        what="the launch form",
    )
    await pilot.pause(0.2)
    assert isinstance(app.screen, LaunchForm)
    return app.screen


def shown(widget: Static) -> str:
    return str(widget.render())


# -- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs holding a config file, then filled to the last byte. Unmounted after."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        (mount / "config.toml").write_text(CONFIG)
        os.chmod(mount / "config.toml", 0o600)
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass  # full: every page of the tmpfs is taken
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], check=False)


def _untouched(disk: Path) -> None:
    """The old file byte for byte, and no temp file beside it."""
    assert (disk / "config.toml").read_text() == CONFIG
    assert sorted(p.name for p in disk.iterdir()) == ["config.toml", "filler"]


def test_full_disk_saving_a_profile_keeps_the_old_file(full_disk: Path) -> None:
    config = full_disk / "config.toml"
    with pytest.raises(ProfileError) as info:
        save_profile(Profile("big", {"image": "a/b:1", "env": ["A=" + "x" * 100]}), config)
    message = str(info.value)
    assert "No space left on device" in message and str(config) in message
    assert "old file is unchanged" in message and "free some space" in message
    _untouched(full_disk)
    assert set(load_profiles(config)) == {"train"}


def test_full_disk_launch_save_profile_exits_1_and_keeps_the_file(full_disk: Path) -> None:
    config = full_disk / "config.toml"
    out = cli(
        "--config", str(config), "launch", "--image", TEST_IMAGE, "--memory", "1g",
        "--save-profile", "small", "--dry-run",
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "No space left on device" in out.stderr and str(config) in out.stderr
    assert "saved profile" not in out.stderr and "would launch" not in out.stdout
    _untouched(full_disk)


async def test_full_disk_save_in_the_launch_form_is_an_inline_error(full_disk: Path) -> None:
    config = full_disk / "config.toml"
    app = GpuconsoleApp(host_at(), refresh_seconds=0.5, config_path=config)
    async with app.run_test(size=(140, 50)) as pilot:
        form = await open_form(app, pilot)
        form.query_one("#f-image", Input).value = TEST_IMAGE
        form.query_one("#f-memory", Input).value = "1g"
        form.query_one("#save-name", Input).value = "small"
        await pilot.pause(0.1)
        await pilot.click("#save")
        status = form.query_one("#launch-status", Static)
        await until(pilot, lambda: "No space left" in shown(status), what="the error under Save")
        text = shown(status)
        assert "config.toml" in text and "old file is unchanged" in text
        assert app.screen is form  # still there, still usable: nothing crashed
        await pilot.press("escape")
    _untouched(full_disk)


# -- broken files ---------------------------------------------------------------------------

BROKEN = [
    # (file content, words the message must hold)
    (
        "[ui]\nrefresh_seconds = \n",
        ["not valid TOML", "line 2", "refresh_seconds =", "fix that line"],
    ),
    ("[ui]\nshow_all = true\nx = [1,\n", ["not valid TOML", "end of the file", "line, 3", "close"]),
    ('[ui]\nrefresh_seconds = "fast"\n', ["ui.refresh_seconds must be", "'fast'", "fix or remove"]),
    ("[ui]\nrefresh_seconds = 600\n", ["ui.refresh_seconds must be between 0.2 and 60", "pick"]),
    ("[ui]\nrefresh_second = 3\n", ["unknown key ui.refresh_second", "refresh_seconds"]),
    ("[gpus]\ninterval_seconds = 3\n", ["unknown table or key 'gpus'", "[gpu]"]),
    ("refresh_seconds = 3\n", ["outside any table", "belongs under [ui]"]),
    ("ui = 3\n", ["[ui] must be a table", "fix or remove"]),
    ("[alerts]\nidle_minute = 5\n", ["unknown key alerts.idle_minute", "idle_minutes"]),
]


@pytest.mark.parametrize(("text", "words"), BROKEN, ids=[t for t, _ in BROKEN])
def test_a_broken_config_is_named_with_the_fix_and_left_alone(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    before = config.stat().st_mtime_ns
    out = cli("--config", str(config), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 1
    assert str(config) in out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1  # one sentence, not a dump
    assert config.read_text() == text and config.stat().st_mtime_ns == before


def test_bytes_that_are_not_utf8_name_the_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b"[ui]\nshow_all = true\n# caf\xe9\n")
    out = cli("--config", str(config), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 1
    assert f"config file {config} is not UTF-8 text" in out.stderr
    assert "line 3" in out.stderr and "save it as UTF-8" in out.stderr


def test_the_console_itself_stops_on_a_broken_config_before_drawing(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[ui\nrefresh_seconds = 1\n")
    out = cli("--config", str(config), "--gpu-replay", str(H100_RECORDING))
    assert out.returncode == 1
    assert "not valid TOML: line 1" in out.stderr and "'[ui'" in out.stderr
    assert "\x1b[" not in out.stdout  # the full-screen console never started


def test_a_directory_or_a_dangling_link_is_named(tmp_path: Path) -> None:
    out = cli("--config", str(tmp_path), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 1 and "is a directory" in out.stderr and "config.toml" in out.stderr
    link = tmp_path / "config.toml"
    link.symlink_to(tmp_path / "dotfiles" / "gpuconsole.toml")
    out = cli("--config", str(link), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 1
    assert "is a symlink to" in out.stderr and "which does not exist" in out.stderr
    assert "fix the link" in out.stderr
    # Not taken for "no file, the defaults" when it is the default path either.
    out = run_cli("gpus", "--replay", str(H100_RECORDING), env={"GPUCONSOLE_CONFIG": str(link)})
    assert out.returncode == 1 and "which does not exist" in out.stderr


BAD_PROFILES = [
    ("[profiles.p]\nimage = 3\n", ["[profiles.p]: image must be a str, got 3", "fix it"]),
    ('[profiles.p]\nimage = "x:1"\nmemroy = "1g"\n', ["unknown key 'memroy'", "memory"]),
    ('[profiles.p]\nvolumes = "/data:/data"\n', ["volumes must be a list of strings"]),
    ("[profiles]\np = 3\n", ["[profiles.p] must be a table of launch options"]),
]


@pytest.mark.parametrize(("text", "words"), BAD_PROFILES, ids=[t for t, _ in BAD_PROFILES])
def test_a_broken_profile_is_bad_input_of_launch(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    out = cli("--config", str(config), "launch", "--profile", "p", "--dry-run")
    assert out.returncode == 2, out.stderr  # bad input, refused before any engine is asked
    assert "--profile" in out.stderr and str(config) in out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)
    assert config.read_text() == text


async def test_a_broken_profile_leaves_the_console_running(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.p]\nimage = "x:1"\nmemroy = "1g"\n')
    app = GpuconsoleApp(host_at(), refresh_seconds=0.5, config_path=config)
    async with app.run_test(size=(140, 50)) as pilot:
        await open_form(app, pilot)
        notes = [n.message for n in app._notifications]
        assert any("profiles not loaded" in n and "memroy" in n and str(config) in n for n in notes)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LaunchForm), what="the table")
    assert config.read_text() == '[profiles.p]\nimage = "x:1"\nmemroy = "1g"\n'


# -- a symlink into a dotfiles repository --------------------------------------------------


@pytest.fixture
def dotfiles(tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "dotfiles" / "gpuconsole" / "config.toml"
    target.parent.mkdir(parents=True)
    target.write_text(CONFIG)
    target.chmod(0o600)
    link = tmp_path / "home" / ".config" / "gpuconsole" / "config.toml"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(target, link.parent))
    return link, target


def test_a_symlinked_config_is_read_through_the_link(dotfiles: tuple[Path, Path]) -> None:
    link, _target = dotfiles
    assert load_settings(link).refresh_seconds == 1.5
    out = cli("--config", str(link), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 0 and out.stderr == ""


async def test_saving_through_a_symlink_writes_the_target(dotfiles: tuple[Path, Path]) -> None:
    link, target = dotfiles
    app = GpuconsoleApp(host_at(), refresh_seconds=0.5, config_path=link)
    async with app.run_test(size=(140, 50)) as pilot:
        form = await open_form(app, pilot)
        form.query_one("#f-image", Input).value = TEST_IMAGE
        form.query_one("#f-memory", Input).value = "2g"
        form.query_one("#save-name", Input).value = "small"
        await pilot.pause(0.1)
        await pilot.click("#save")
        status = form.query_one("#launch-status", Static)
        await until(pilot, lambda: "Saved profile" in shown(status), what="saved")
    assert link.is_symlink() and link.resolve() == target.resolve()
    text = target.read_text()
    assert text.startswith(CONFIG) and "[profiles.small]" in text and 'memory = "2g"' in text
    assert set(load_profiles(link)) == {"train", "small"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.toml"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["config.toml"]


# -- who may read or change the file --------------------------------------------------------


def test_a_file_others_may_change_is_warned_about(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[alerts]\ncommand = "notify-send gpu"\n')
    config.chmod(0o666)
    out = cli("--config", str(config), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 0  # a warning: the console still works
    assert "can be changed by other users (mode 0666)" in out.stderr
    assert f"chmod 600 {config}" in out.stderr
    assert "NVIDIA H100" in out.stdout


def test_world_readable_secrets_are_warned_about_and_plain_0644_is_not(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[profiles.p]\nimage = "x:1"\nenv = ["WANDB_API_KEY=abc"]\n')
    config.chmod(0o644)
    out = cli("--config", str(config), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 0
    assert "other users can read" in out.stderr and "(mode 0644)" in out.stderr
    assert "env" in out.stderr and f"chmod 600 {config}" in out.stderr
    config.write_text("[ui]\nrefresh_seconds = 2\n")  # nothing to hide: the usual 0644 is fine
    out = cli("--config", str(config), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 0 and out.stderr == ""
    config.chmod(0o600)
    config.write_text('[profiles.p]\nimage = "x:1"\nenv = ["WANDB_API_KEY=abc"]\n')
    out = cli("--config", str(config), "gpus", "--replay", str(H100_RECORDING))
    assert out.returncode == 0 and out.stderr == ""

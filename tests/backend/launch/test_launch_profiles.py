"""Profiles in the config file: round trip, and saving never damages the rest of the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gpuconsole.backend.launch import LaunchSpec
from gpuconsole.settings.config import load_settings
from gpuconsole.settings.profiles import (
    Profile,
    ProfileError,
    delete_profile,
    get_profile,
    load_profiles,
    profile_from_spec,
    save_profile,
)

EXISTING = """\
# my gpuconsole settings
[docker]
host = "unix:///run/docker.sock"  # the team engine

[profiles.old]
variant = "ssh"
image = "gpuconsole/debian-ssh:bookworm"

[ui]
refresh_seconds = 1.5
"""


def test_round_trip_from_a_spec(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    spec = LaunchSpec(
        variant="jupyter",
        image="pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
        gpus="0,1",
        memory="32g",
        cpus=8,
        shm_size="16g",
        volumes=("~/notebooks:/workspace/notebooks",),
        env=('GREETING=say "hi"\\n',),
        ipc_host=True,
        name="not-kept",
    )
    save_profile(profile_from_spec("pytorch-jupyter", spec), cfg)
    text = cfg.read_text()
    assert "[profiles.pytorch-jupyter]" in text and 'memory = "32g"' in text
    assert "cpus = 8" in text
    loaded = get_profile("pytorch-jupyter", cfg).to_spec()
    assert loaded == spec.replace(profile="pytorch-jupyter", name="")
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600


def test_the_documented_example_loads(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "[profiles.pytorch-jupyter]\n"
        'variant = "jupyter"\n'
        'image = "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"\n'
        'gpus = "0,1"\nmemory = "32g"\ncpus = 8\nshm_size = "16g"\n'
        'volumes = ["~/notebooks:/workspace/notebooks"]\n'
    )
    spec = get_profile("pytorch-jupyter", cfg).to_spec()
    assert (spec.gpus, spec.memory, spec.cpus, spec.shm_size) == ("0,1", "32g", 8, "16g")
    assert spec.volumes == ("~/notebooks:/workspace/notebooks",)


def test_saving_keeps_other_content_and_comments(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(EXISTING)
    cfg.chmod(0o644)
    save_profile(Profile("new", {"image": "x/y:1", "cpus": 2.5}), cfg)
    text = cfg.read_text()
    assert text.startswith(EXISTING.split("[profiles.old]")[0])  # header and comments intact
    assert "# the team engine" in text
    assert set(load_profiles(cfg)) == {"old", "new"}
    settings = load_settings(cfg)
    assert settings.docker_host == "unix:///run/docker.sock" and settings.refresh_seconds == 1.5
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600

    # Replacing keeps the table where it was, and the tables after it.
    save_profile(Profile("old", {"variant": "plain", "image": "busybox:1"}), cfg)
    text = cfg.read_text()
    assert text.index("[profiles.old]") < text.index("[ui]")
    assert get_profile("old", cfg).values == {"variant": "plain", "image": "busybox:1"}
    assert load_settings(cfg).refresh_seconds == 1.5

    delete_profile("old", cfg)
    assert set(load_profiles(cfg)) == {"new"}
    assert load_settings(cfg).refresh_seconds == 1.5


def test_failure_mid_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(EXISTING)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ProfileError, match=r"No space left.*old file is unchanged"):
        save_profile(Profile("new", {"image": "x/y:1"}), cfg)
    assert cfg.read_text() == EXISTING
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no temp file left


def test_forms_it_cannot_edit_are_refused_not_mangled(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    inline = '[profiles]\nold = { image = "x/y:1" }\n'
    cfg.write_text(inline)
    with pytest.raises(ProfileError, match="edit it by hand"):
        save_profile(Profile("old", {"image": "x/y:2"}), cfg)
    assert cfg.read_text() == inline


def test_bad_profiles_name_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[profiles.p]\nimage = "x:1"\nmemroy = "1g"\n')
    with pytest.raises(ProfileError, match=r"\[profiles.p\] has an unknown key 'memroy'"):
        load_profiles(cfg)
    cfg.write_text("[profiles.p]\ncpus = true\n")
    with pytest.raises(ProfileError, match="cpus must be"):
        load_profiles(cfg)
    cfg.write_text('[profiles.p]\nimage = "x:1"\n')
    with pytest.raises(ProfileError, match=r"no profile 'q'.*profiles: p"):
        get_profile("q", cfg)


def test_names_needing_quotes(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    save_profile(Profile("team.a b", {"image": "x:1"}), cfg)
    assert get_profile("team.a b", cfg).values == {"image": "x:1"}


def test_comments_around_a_replaced_profile_survive(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[profiles.train]\nimage = "a/b:1"\n\n# ---- GPU sampling: do not touch ----\n'
        "[gpu]\ninterval_seconds = 2.0\n"
    )
    save_profile(Profile("train", {"image": "a/b:2"}), cfg)
    text = cfg.read_text()
    assert "# ---- GPU sampling: do not touch ----\n[gpu]" in text
    assert get_profile("train", cfg).values == {"image": "a/b:2"}


def test_a_symlinked_config_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "gpuconsole.toml"
    real.parent.mkdir()
    real.write_text("[ui]\nrefresh_seconds = 3.0\n")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save_profile(Profile("p", {"image": "a/b:1"}), link)
    assert link.is_symlink() and link.resolve() == real
    assert "[profiles.p]" in real.read_text() and "refresh_seconds = 3.0" in real.read_text()

"""``[alerts]`` in the config file: defaults, every key, and errors that name the file, the key
and the fix (temporary files only; the last test runs the CLI as a user would)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuconsole.settings.config import (
    AlertSettings,
    ConfigError,
    load_alert_settings,
    load_settings,
)

from support import run_cli


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("GPUCONSOLE_CONFIG", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_table_or_a_file(tmp_path: Path) -> None:
    defaults = AlertSettings()
    assert (
        defaults.enabled,
        defaults.idle_minutes,
        defaults.idle_utilization_percent,
        defaults.temperature_c,
        defaults.memory_percent,
        defaults.command,
    ) == (True, 15.0, 5.0, 85.0, 95.0, None)
    assert load_settings(config(tmp_path, "[ui]\nshow_all = true\n")).alerts == defaults
    assert load_alert_settings(tmp_path / "missing.toml") == defaults
    assert load_alert_settings(None) == defaults


def test_every_key(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        "[alerts]\n"
        "idle_minutes = 30\n"
        "idle_utilization_percent = 2.5\n"
        "temperature_c = 80\n"
        "memory_percent = 90\n"
        'command = "curl -s -d @- https://chat.example/hook"\n'
        "enabled = true\n",
    )
    expected = AlertSettings(
        enabled=True,
        idle_minutes=30.0,
        idle_utilization_percent=2.5,
        temperature_c=80.0,
        memory_percent=90.0,
        command="curl -s -d @- https://chat.example/hook",
    )
    assert load_settings(path).alerts == expected
    assert load_alert_settings(path) == expected


def test_an_empty_command_is_no_command_and_alerts_can_be_off(tmp_path: Path) -> None:
    path = config(tmp_path, '[alerts]\ncommand = "  "\nenabled = false\n')
    assert load_settings(path).alerts == AlertSettings(enabled=False, command=None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "idle_minutes = -1",
            "alerts.idle_minutes must be between 0 and 10080, got -1 — pick e.g. 15",
        ),
        (
            "idle_utilization_percent = 0",
            "alerts.idle_utilization_percent must be between 0.1 and 100, got 0",
        ),
        ("temperature_c = 200", "alerts.temperature_c must be between 30 and 120, got 200"),
        ("memory_percent = 101", "alerts.memory_percent must be between 1 and 100, got 101"),
        ('temperature_c = "hot"', "alerts.temperature_c must be a float, got 'hot'"),
        ('enabled = "yes"', "alerts.enabled must be a bool, got 'yes'"),
        ("command = 3", "alerts.command must be a str, got 3"),
        ("idle_minute = 5", "unknown key alerts.idle_minute — the keys are command, enabled,"),
    ],
)
def test_errors_name_the_file_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = config(tmp_path, f"[alerts]\n{text}\n")
    for load in (load_settings, load_alert_settings):
        with pytest.raises(ConfigError) as caught:
            load(path)
        assert str(caught.value).startswith(f"{path}: ")
        assert message in str(caught.value)


def test_alerts_must_be_a_table(tmp_path: Path) -> None:
    path = config(tmp_path, "alerts = 3\n")
    with pytest.raises(ConfigError, match=r"\[alerts\] must be a table — fix or remove it"):
        load_settings(path)
    with pytest.raises(ConfigError, match=r"\[alerts\] must be a table"):
        load_alert_settings(path)


def test_the_cli_stops_on_a_bad_alerts_key(tmp_path: Path) -> None:
    path = config(tmp_path, "[alerts]\ntemperature_c = 500\n")
    result = run_cli("--config", str(path), "hosts")
    assert result.returncode != 0
    assert f"{path}: alerts.temperature_c must be between 30 and 120" in result.stderr

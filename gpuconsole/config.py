"""Typed settings from a TOML file under the platform's config directory.

Looked up in this order: ``--config PATH``, ``$GPUCONSOLE_CONFIG``, then
``<user config dir>/gpuconsole/config.toml``. A missing file means defaults; a malformed one is
an error that names the file, the key and the fix — never silently ignored.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuconsole.backend.errors import GpuconsoleError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib


class ConfigError(GpuconsoleError):
    """The config file cannot be used as it is."""


@dataclass(frozen=True, slots=True)
class Settings:
    docker_host: str | None = None
    refresh_seconds: float = 2.0
    show_all: bool = True
    read_only: bool = False
    gpu_interval: float = 1.0
    path: Path | None = None


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("gpuconsole")) / "config.toml"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("GPUCONSOLE_CONFIG")
    if env:
        return Path(env).expanduser()
    return default_config_path()


def _get(table: dict[str, Any], key: str, kind: type, where: str, path: Path) -> Any:
    value = table.get(key)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(
            f"{path}: {where}.{key} must be a {kind.__name__}, got {value!r} — fix or remove it"
        )
    return value


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = config_path(explicit)
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist — check the --config path")
        return Settings(path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc} — fix that line") from exc
    docker = data.get("docker", {})
    ui = data.get("ui", {})
    refresh = _get(ui, "refresh_seconds", float, "ui", path)
    if refresh is not None and not 0.2 <= refresh <= 60:
        raise ConfigError(
            f"{path}: ui.refresh_seconds must be between 0.2 and 60, got {refresh} — pick e.g. 2"
        )
    gpu = data.get("gpu", {})
    gpu_interval = _get(gpu, "interval_seconds", float, "gpu", path)
    if gpu_interval is not None and not 0.1 <= gpu_interval <= 60:
        raise ConfigError(
            f"{path}: gpu.interval_seconds must be between 0.1 and 60, got {gpu_interval} — "
            "pick e.g. 1"
        )
    defaults = Settings()
    return Settings(
        docker_host=_get(docker, "host", str, "docker", path),
        refresh_seconds=refresh if refresh is not None else defaults.refresh_seconds,
        show_all=_b(_get(ui, "show_all", bool, "ui", path), defaults.show_all),
        read_only=_b(_get(ui, "read_only", bool, "ui", path), defaults.read_only),
        gpu_interval=gpu_interval if gpu_interval is not None else defaults.gpu_interval,
        path=path,
    )


def _b(value: bool | None, default: bool) -> bool:
    return default if value is None else value

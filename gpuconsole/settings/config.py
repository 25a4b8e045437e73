"""Typed settings from a TOML file under the platform's config directory.

Looked up in this order: ``--config PATH``, ``$GPUCONSOLE_CONFIG``, then
``<user config dir>/gpuconsole/config.toml``. A missing file means defaults; a malformed one is
an error that names the file, the key and the fix — never silently ignored. One bad
``[[hosts]]`` entry is the exception: it is reported (``Settings.host_errors``) and the other
hosts still load, so one typo does not take the whole fleet away.

The hosts are the local engine (``local``, which a ``[[hosts]]`` entry with ``local = true`` may
rename or disable), every ``[[hosts]]`` entry with ``ssh = ...``, and the Docker CLI's contexts
whose endpoint is ``ssh://`` (unless ``[docker] contexts = false``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.spec import DEFAULT_REMOTE_SOCKET, HostSpec, SshOptions


class ConfigError(GpuconsoleError):
    """The config file cannot be used as it is."""


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """``[alerts]``: when a GPU or a container's reservation raises an alert.

    The defaults are what a shared box usually wants: a reservation idle under 5 % for a quarter
    of an hour is worth a word, 85 °C is near an H100's slowdown point, 95 % memory is one
    allocation from an out-of-memory error.
    """

    enabled: bool = True
    #: How long every GPU a container reserved (or uses) must stay under
    #: ``idle_utilization_percent`` before its reservation counts as idle.
    idle_minutes: float = 15.0
    idle_utilization_percent: float = 5.0
    temperature_c: float = 85.0
    memory_percent: float = 95.0
    #: Run by ``sh -c`` for each alert raised or cleared, the alert as JSON on stdin.
    command: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    docker_host: str | None = None
    refresh_seconds: float = 2.0
    show_all: bool = True
    read_only: bool = False
    gpu_interval: float = 1.0
    path: Path | None = None
    #: Every host of the fleet, the local engine first (disabled ones included, marked).
    hosts: tuple[HostSpec, ...] = (HostSpec("local"),)
    #: Bad ``[[hosts]]`` entries, each a sentence naming the file, the entry and the fix.
    host_errors: tuple[str, ...] = ()
    ssh: SshOptions = field(default_factory=SshOptions)
    #: ``[shell] command``: what ``e`` / ``gpuconsole shell`` runs in a container (None: bash,
    #: else sh).
    shell: str | None = None
    #: ``[alerts]``: thresholds of the alert rules and the optional command run per alert.
    alerts: AlertSettings = field(default_factory=AlertSettings)
    #: About the file itself (who may change or read it), each naming the file and the fix;
    #: the settings are used all the same.
    warnings: tuple[str, ...] = ()

    def enabled_hosts(self) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if h.enabled)

    def host(self, name: str) -> HostSpec:
        """The enabled host called ``name``; ConfigError listing the known ones otherwise."""
        for spec in self.hosts:
            if spec.name == name:
                if not spec.enabled:
                    raise ConfigError(
                        f"host {name!r} is disabled in {self.path} — set enabled = true"
                    )
                return spec
        known = ", ".join(h.name for h in self.enabled_hosts()) or "none"
        raise ConfigError(
            f"no host named {name!r} (known: {known}) — add it as a [[hosts]] entry in {self.path}"
        )


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


_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def toml_problem(path: Path, text: str, exc: Exception) -> str:
    """A TOML syntax error as a sentence: the file, the line (and its text), what is wrong and
    the fix (``tomllib`` says "Invalid value (at line 2, column 19)")."""
    message = str(exc)
    found = _TOML_AT.search(message)
    what = message[: found.start()] if found else message
    lines = text.split("\n")  # TOML's line numbers count \n only
    if found and found.group(1):
        number, column = int(found.group(1)), int(found.group(2))
        shown = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        return (
            f"config file {path} is not valid TOML: line {number}, column {column}: {what}: "
            f"{shown!r} — {_toml_fix(what)}"
        )
    number = next((n for n in range(len(lines), 0, -1) if lines[n - 1].strip()), 0)
    shown = lines[number - 1].strip() if number else ""
    where = f" (the last line, {number}: {shown!r})" if number else ""
    return (
        f"config file {path} is not valid TOML: {what} at the end of the file{where} — "
        "something is left open: close the [ ], { } or quotes it opened"
    )


def _toml_fix(what: str) -> str:
    low = what.lower()
    if "overwrite" in low or "twice" in low:
        return "it is set twice in the file: keep one"
    if "invalid value" in low:
        return 'fix that line (text goes in quotes: key = "text"; numbers and true/false not)'
    return "fix that line"


def read_config_text(path: Path, error: type[GpuconsoleError]) -> str:
    """The file's text; ``error`` (naming the file and the fix) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        line = exc.object[: exc.start].count(b"\n") + 1
        raise error(
            f"config file {path} is not UTF-8 text (byte 0x{bad} on line {line}) — save it as UTF-8"
        ) from exc
    except IsADirectoryError as exc:
        raise error(
            f"config file {path} is a directory — pass the file, e.g. {path / 'config.toml'}"
        ) from exc
    except OSError as exc:
        raise error(
            f"cannot read config file {path}: {exc.strerror or exc} — check the path and "
            "its permissions"
        ) from exc


def _read_toml(path: Path) -> dict[str, Any]:
    """The config file's tables; unreadable or invalid TOML is a ConfigError naming the file."""
    # Imported here: most runs have no config file, and `ps` starts its CPU window only after
    # the settings are read (tomllib and what it imports cost ~12 ms of a 1.2 s budget).
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised only on 3.10
        import tomli as tomllib

    text = read_config_text(path, ConfigError)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(toml_problem(path, text, exc)) from exc


#: The tables (and keys) a config file may hold; anything else is a typo, said as such.
_TABLE_KEYS: dict[str, frozenset[str]] = {
    "docker": frozenset({"host", "contexts"}),
    "ui": frozenset({"refresh_seconds", "show_all", "read_only"}),
    "gpu": frozenset({"interval_seconds"}),
    "shell": frozenset({"command"}),
}
_TOP_LEVEL = frozenset({*_TABLE_KEYS, "ssh", "alerts", "hosts", "profiles"})


def _check_keys(data: dict[str, Any], path: Path) -> None:
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        home = next((t for t, keys in _TABLE_KEYS.items() if unknown[0] in keys), None)
        if home is not None:
            raise ConfigError(
                f"{path}: {unknown[0]} is outside any table — it belongs under [{home}]; "
                f"move it below a [{home}] line"
            )
        raise ConfigError(
            f"{path}: unknown table or key {unknown[0]!r} — the tables are "
            f"{', '.join(f'[{t}]' for t in sorted(_TOP_LEVEL - {'hosts'}))} and [[hosts]]; "
            "fix or remove it"
        )
    for table, keys in _TABLE_KEYS.items():
        extra = sorted(set(data.get(table, {})) - keys)
        if extra:
            raise ConfigError(
                f"{path}: unknown key {table}.{extra[0]} — the keys of [{table}] are "
                f"{', '.join(sorted(keys))}; fix or remove it"
            )


def _file_warnings(path: Path, data: dict[str, Any]) -> tuple[str, ...]:
    """Who else may change or read the file (a symlink: its target, which is what counts)."""
    try:
        info = path.stat()
    except OSError:
        return ()
    mode = info.st_mode & 0o777
    if mode & 0o022:
        return (
            f"{path} can be changed by other users (mode {mode:04o}), and the commands it "
            f"names ([alerts] command, [shell] command) are run as you — chmod 600 {path}",
        )
    uid = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if info.st_uid not in (uid, 0):
        return (
            f"{path} belongs to another user (uid {info.st_uid}), who can change the commands "
            f"it runs as you — copy it to a file of your own",
        )
    profiles = data.get("profiles")
    secrets = isinstance(profiles, dict) and any(
        isinstance(p, dict) and p.get("env") for p in profiles.values()
    )
    if mode & 0o044 and secrets:
        return (
            f"other users can read {path} (mode {mode:04o}), and its profiles hold environment "
            f"values (env = [...]) that may be secrets — chmod 600 {path}",
        )
    return ()


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = config_path(explicit)
    if not path.exists():
        if path.is_symlink():
            raise ConfigError(
                f"config file {path} is a symlink to {os.readlink(path)}, which does not exist "
                "— fix the link (or remove it to use the defaults)"
            )
        if explicit:
            raise ConfigError(f"config file {path} does not exist — check the --config path")
        hosts, errors = _hosts([], path, None, True)
        return Settings(path=path, hosts=hosts, host_errors=errors)
    data = _read_toml(path)
    for table in ("docker", "ui", "gpu", "ssh", "shell", "alerts"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"{path}: [{table}] must be a table — fix or remove it")
    _check_keys(data, path)
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
    docker_host = _get(docker, "host", str, "docker", path)
    use_contexts = _b(_get(docker, "contexts", bool, "docker", path), True)
    hosts, host_errors = _hosts(data.get("hosts", []), path, docker_host, use_contexts)
    return Settings(
        docker_host=docker_host,
        refresh_seconds=refresh if refresh is not None else defaults.refresh_seconds,
        show_all=_b(_get(ui, "show_all", bool, "ui", path), defaults.show_all),
        read_only=_b(_get(ui, "read_only", bool, "ui", path), defaults.read_only),
        gpu_interval=gpu_interval if gpu_interval is not None else defaults.gpu_interval,
        path=path,
        hosts=hosts,
        host_errors=host_errors,
        ssh=_ssh_options(data.get("ssh", {}), path),
        shell=_get(data.get("shell", {}), "command", str, "shell", path) or None,
        alerts=alert_settings(data.get("alerts", {}), path),
        warnings=_file_warnings(path, data),
    )


def _b(value: bool | None, default: bool) -> bool:
    return default if value is None else value


_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HOST_KEYS = frozenset({"name", "ssh", "identity_file", "docker_socket", "local", "enabled"})


def check_ssh_spec(text: str) -> str | None:
    """Why ``user@host[:port]`` (or an ssh_config alias) is unusable, or None."""
    if not text or any(ch.isspace() for ch in text):
        return f"{text!r} is not user@host[:port] or an alias from ~/.ssh/config"
    user, at, rest = text.rpartition("@")
    if at and not user:
        return f"{text!r} has an empty user before @ — write user@host or drop the @"
    if rest.startswith("-"):
        return f"{text!r}: a host name cannot start with '-'"
    if rest.startswith("["):  # [v6::addr]:port
        host, _, port = rest[1:].partition("]")
        port = port[1:] if port.startswith(":") else ""
    else:
        host, _, port = rest.partition(":")
    if not host:
        return f"{text!r} names no host — write user@host[:port]"
    if rest.endswith(":") or (port and (not port.isdigit() or not 1 <= int(port) <= 65535)):
        return f"{text!r} has port {port!r} — a port is a number from 1 to 65535"
    return None


def _host_entry(
    raw: Any, where: str, path: Path, local_url: str | None
) -> tuple[HostSpec | None, str | None]:
    def bad(message: str) -> tuple[None, str]:
        return None, f"{path}: {where}: {message}"

    if not isinstance(raw, dict):
        return bad("must be a table (name = ..., ssh = ...)")
    unknown = sorted(set(raw) - _HOST_KEYS)
    if unknown:
        return bad(
            f"unknown key {', '.join(unknown)} — the keys are {', '.join(sorted(_HOST_KEYS))}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        return bad('has no name — add name = "gpu1" (what the console and --host call it)')
    if not _HOST_NAME.fullmatch(name):
        return bad(f"name {name!r} may use letters, digits, '.', '_' and '-' only — rename it")
    for key, kind in (("ssh", str), ("identity_file", str), ("docker_socket", str)):
        if key in raw and not isinstance(raw[key], kind):
            return bad(f'{key} must be a string — e.g. {key} = "..."')
    for key in ("local", "enabled"):
        if key in raw and not isinstance(raw[key], bool):
            return bad(f"{key} must be true or false")
    enabled = raw.get("enabled", True)
    if raw.get("local"):
        if "ssh" in raw:
            return bad("is both local = true and ssh = ... — keep one")
        return HostSpec(name, docker_url=local_url, enabled=enabled, origin=where), None
    ssh = raw.get("ssh")
    if ssh is None:
        return bad('has no ssh = "user@host[:port]" (or local = true for this computer)')
    problem = check_ssh_spec(ssh)
    if problem:
        return bad(f"ssh: {problem}")
    socket = raw.get("docker_socket", DEFAULT_REMOTE_SOCKET)
    if not socket.startswith("/"):
        return bad(f"docker_socket {socket!r} must be an absolute path on that host")
    identity = raw.get("identity_file")
    return (
        HostSpec(
            name,
            ssh=ssh,
            identity_file=os.path.expanduser(identity) if identity else None,
            docker_socket=socket,
            enabled=enabled,
            origin=where,
        ),
        None,
    )


def _hosts(
    raw: Any, path: Path, docker_host: str | None, use_contexts: bool
) -> tuple[tuple[HostSpec, ...], tuple[str, ...]]:
    errors: list[str] = []
    entries: list[HostSpec] = []
    local_url = docker_host or os.environ.get("DOCKER_HOST") or None
    if not isinstance(raw, list):
        errors.append(f"{path}: hosts must be [[hosts]] tables — fix or remove it")
        raw = []
    for number, item in enumerate(raw, start=1):
        label = f"[[hosts]] #{number}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            label += f" ({item['name']})"
        spec, error = _host_entry(item, label, path, local_url)
        if error:
            errors.append(error)
            continue
        assert spec is not None
        if any(e.name == spec.name for e in entries):
            errors.append(f"{path}: {label}: the name {spec.name!r} is taken — rename one")
            continue
        if spec.is_local and any(e.is_local for e in entries):
            errors.append(f"{path}: {label}: only one entry may be local = true — keep one")
            continue
        entries.append(spec)
    if not any(e.is_local for e in entries):
        local = _default_local(local_url)
        if any(e.name == local.name for e in entries):
            # A [[hosts]] entry took the name: it replaces the default local host.
            pass
        else:
            entries.insert(0, local)
    else:
        entries.sort(key=lambda e: not e.is_local)
    if use_contexts:
        for spec in docker_contexts():
            if not any(e.name == spec.name for e in entries):
                entries.append(spec)
    return tuple(entries), tuple(errors)


def _default_local(local_url: str | None) -> HostSpec:
    """The local engine — unless DOCKER_HOST says ssh://, which is a remote host."""
    if local_url and local_url.startswith("ssh://"):
        target = local_url[len("ssh://") :].rstrip("/")
        name = target.rpartition("@")[2].partition(":")[0] or "remote"
        return HostSpec(name, ssh=target, origin="DOCKER_HOST")
    return HostSpec("local", docker_url=local_url, origin="default")


def docker_contexts() -> list[HostSpec]:
    """The Docker CLI's contexts whose endpoint is ssh:// (``docker context create --docker
    host=ssh://...``); others are local engines or TLS endpoints this console does not use."""
    base = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "contexts" / "meta"
    found: list[HostSpec] = []
    try:
        metas = sorted(base.glob("*/meta.json"))
    except OSError:
        return found
    for meta in metas:
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            name = str(data["Name"])
            endpoint = str(data["Endpoints"]["docker"]["Host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not endpoint.startswith("ssh://") or not _HOST_NAME.fullmatch(name):
            continue
        target = endpoint[len("ssh://") :].rstrip("/")
        if check_ssh_spec(target) is None:
            found.append(HostSpec(name, ssh=target, origin=f"docker context {name}"))
    return found


#: ``[alerts]`` number keys: (lowest, highest, an example for the message).
_ALERT_RANGES: dict[str, tuple[float, float, str]] = {
    "idle_minutes": (0.0, 10080.0, "15"),
    "idle_utilization_percent": (0.1, 100.0, "5"),
    "temperature_c": (30.0, 120.0, "85"),
    "memory_percent": (1.0, 100.0, "95"),
}
_ALERT_KEYS = frozenset({*_ALERT_RANGES, "command", "enabled"})


def alert_settings(table: dict[str, Any], path: Path) -> AlertSettings:
    """The ``[alerts]`` table, checked: every message names the file, the key and the fix."""
    unknown = sorted(set(table) - _ALERT_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key alerts.{unknown[0]} — the keys are "
            f"{', '.join(sorted(_ALERT_KEYS))}"
        )
    values: dict[str, Any] = {}
    for key, (low, high, example) in _ALERT_RANGES.items():
        value = _get(table, key, float, "alerts", path)
        if value is None:
            continue
        if not low <= value <= high:
            raise ConfigError(
                f"{path}: alerts.{key} must be between {low:g} and {high:g}, got {value:g} — "
                f"pick e.g. {example}"
            )
        values[key] = value
    enabled = _get(table, "enabled", bool, "alerts", path)
    if enabled is not None:
        values["enabled"] = enabled
    command = _get(table, "command", str, "alerts", path)
    if command is not None and command.strip():
        values["command"] = command
    return AlertSettings(**values)


def load_alert_settings(path: Path | None) -> AlertSettings:
    """Only the ``[alerts]`` table of ``path`` (defaults when there is no file), for a console
    built without the full settings."""
    if path is None or not path.exists():
        return AlertSettings()
    data = _read_toml(path)
    table = data.get("alerts", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [alerts] must be a table — fix or remove it")
    return alert_settings(table, path)


def _ssh_options(table: dict[str, Any], path: Path) -> SshOptions:
    defaults = SshOptions()
    values: dict[str, Any] = {}
    for key, low, high in (
        ("connect_timeout", 1.0, 120.0),
        ("probe_interval", 0.5, 300.0),
        ("probe_timeout", 0.5, 60.0),
    ):
        value = _get(table, key, float, "ssh", path)
        if value is not None:
            if not low <= value <= high:
                raise ConfigError(
                    f"{path}: ssh.{key} must be between {low:g} and {high:g} seconds, got "
                    f"{value} — pick e.g. {getattr(defaults, key):g}"
                )
            values[key] = value
    down_after = _get(table, "down_after", int, "ssh", path)
    if down_after is not None:
        if not 1 <= down_after <= 100:
            raise ConfigError(f"{path}: ssh.down_after must be 1 to 100, got {down_after}")
        values["down_after"] = down_after
    unknown = sorted(
        set(table) - {"connect_timeout", "probe_interval", "probe_timeout", "down_after"}
    )
    if unknown:
        raise ConfigError(f"{path}: unknown key ssh.{unknown[0]} — fix or remove it")
    return SshOptions(**values)

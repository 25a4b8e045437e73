"""Named launch presets in the config file's ``[profiles.NAME]`` tables.

Keys are named like the ``launch`` flags (``shm_size`` for ``--shm-size``). Saving edits the
file in place without a TOML library that would drop comments: only the profile's own table is
re-written (a small serializer), spliced where it was, and the result is parsed again and
compared with what was intended before anything is written — a file whose profiles are written
in a form we do not edit (inline tables, dotted keys) is refused, not mangled. The write is
atomic (temp file in the same directory, fsync, os.replace), the file mode 0600: a crash or a
full disk mid-write leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.launch.spec import LaunchSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

#: Profile key -> accepted Python types (lists hold strings).
PROFILE_KEYS: dict[str, tuple[type, ...]] = {
    "variant": (str,),
    "image": (str,),
    "name": (str,),
    "gpus": (str, int),
    "memory": (str, int),
    "cpus": (int, float, str),
    "shm_size": (str, int),
    "ulimits": (list,),
    "ipc_host": (bool,),
    "volumes": (list,),
    "env": (list,),
    "workdir": (str,),
    "user": (str,),
    "port": (int, str),
    "bind": (str,),
    "labels": (list,),
    "ssh_key": (str,),
}
_LIST_KEYS = frozenset(k for k, t in PROFILE_KEYS.items() if t == (list,))
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ProfileError(GpuconsoleError):
    """A profile cannot be read, found or saved; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def to_spec(self, base: LaunchSpec | None = None) -> LaunchSpec:
        """The profile as a LaunchSpec (over ``base``'s defaults)."""
        changes: dict[str, Any] = {"profile": self.name}
        for key, value in self.values.items():
            if key in _LIST_KEYS:
                changes[key] = tuple(str(v) for v in value)
            elif key in ("gpus", "memory", "shm_size"):
                changes[key] = str(value)
            else:
                changes[key] = value
        return (base or LaunchSpec()).replace(**changes)


def profile_from_spec(name: str, spec: LaunchSpec) -> Profile:
    """The non-default fields of ``spec`` as a profile (what a form's "save" stores)."""
    default = LaunchSpec()
    values: dict[str, Any] = {}
    for key in PROFILE_KEYS:
        value = getattr(spec, key)
        if value == getattr(default, key) or value is None or value == "":
            continue
        if key == "name":
            continue  # a profile launches many containers: names are generated
        values[key] = list(value) if isinstance(value, tuple) else value
    return Profile(name, values)


def _check_values(name: str, raw: Any, path: Path) -> dict[str, Any]:
    where = f"{path}: [profiles.{name}]"
    if not isinstance(raw, dict):
        raise ProfileError(f"{where} must be a table of launch options — fix the file")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        norm = key.replace("-", "_")
        kinds = PROFILE_KEYS.get(norm)
        if kinds is None:
            raise ProfileError(
                f"{where} has an unknown key {key!r} — use one of {', '.join(PROFILE_KEYS)}"
            )
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if ok and isinstance(value, list):
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            want = " or ".join("list of strings" if k is list else k.__name__ for k in kinds)
            raise ProfileError(f"{where}: {key} must be a {want}, got {value!r} — fix it")
        values[norm] = value
    return values


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    from gpuconsole.settings.config import read_config_text, toml_problem

    if not path.exists() and not path.is_symlink():
        return "", {}
    text = read_config_text(path, ProfileError) if path.exists() else ""
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(toml_problem(path, text, exc)) from exc


def load_profiles(path: Path) -> dict[str, Profile]:
    _, data = _read(path)
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ProfileError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables")
    return {name: Profile(name, _check_values(name, raw, path)) for name, raw in tables.items()}


def get_profile(name: str, path: Path) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        have = ", ".join(sorted(profiles)) or "none yet"
        raise ProfileError(
            f"no profile {name!r} in {path} (profiles: {have}) — check the name, or save one "
            "with gpuconsole launch ... --save-profile NAME"
        )
    return profiles[name]


# -- writing ------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProfileError(f"{value!r} cannot be stored in a profile")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise ProfileError(f"{value!r} cannot be stored in a profile")


def _toml_string(text: str) -> str:
    # JSON's escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL, and a
    # lone surrogate (undecodable bytes from argv) cannot be written to a UTF-8 file at all.
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise ProfileError(f"{text!r} is not valid text (undecodable bytes) — retype it")
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def profile_table(profile: Profile) -> str:
    lines = [f"[profiles.{toml_key(profile.name)}]"]
    for key, value in profile.values.items():
        lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def _header_path(line: str) -> tuple[str, ...] | None:
    """The key path of a table header line (``[a.b]`` -> ("a", "b")), None if not one."""
    stripped = line.strip()
    if not stripped.startswith("["):
        return None
    try:
        parsed: Any = tomllib.loads(stripped)
    except tomllib.TOMLDecodeError:
        return None
    keys: list[str] = []
    while isinstance(parsed, dict) and len(parsed) == 1:
        key = next(iter(parsed))
        keys.append(key)
        parsed = parsed[key]
        if isinstance(parsed, list):
            parsed = parsed[0] if parsed else {}
    return tuple(keys)


def _splice(text: str, name: str, block: str | None) -> str:
    """``text`` with the [profiles.NAME] table (and its sub-tables) replaced by ``block``."""
    # TOML breaks lines at \n only (str.splitlines would also break at \x85, \u2028, ...,
    # which may sit inside a quoted key).
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    headers = [(i, _header_path(line)) for i, line in enumerate(lines)]
    headers = [(i, p) for i, p in headers if p is not None]
    remove: list[tuple[int, int]] = []
    for n, (start, header) in enumerate(headers):
        assert header is not None
        if header[:2] == ("profiles", name):
            end = headers[n + 1][0] if n + 1 < len(headers) else len(lines)
            # Comments and blank lines just above the next table belong to that table.
            while end > start + 1 and (
                not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")
            ):
                end -= 1
            remove.append((start, end))
    insert_at = remove[0][0] if remove else None
    for start, end in reversed(remove):
        del lines[start:end]
    out = "".join(lines)
    if block is None:
        return out
    if insert_at is not None:
        head = "".join(lines[:insert_at])
        tail = "".join(lines[insert_at:])
        sep = "\n" if tail and not block.endswith("\n\n") else ""
        return head + block + sep + tail
    if out and not out.endswith("\n"):
        out += "\n"
    if out.strip():
        out += "\n"
    return out + block


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` all or nothing, mode 0600.

    A symlinked config (dotfiles) is written through: the link stays, its target changes.
    """
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _without_empty_profiles(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not (k == "profiles" and v == {})}


def _write_checked(path: Path, text: str, data: dict[str, Any], name: str, new: Any) -> None:
    expected = dict(data)
    profiles = dict(expected.get("profiles", {}))
    if new is None:
        profiles.pop(name, None)
    else:
        profiles[name] = new
    expected["profiles"] = profiles
    try:
        result: dict[str, Any] | None = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        result = None
    if result is None or _without_empty_profiles(result) != _without_empty_profiles(expected):
        raise ProfileError(
            f"cannot update profile {name!r} in {path} safely: the file defines profiles in a "
            "form gpuconsole does not edit (inline tables or dotted keys) — edit it by hand, "
            f"as a [profiles.{name}] table"
        )
    try:
        atomic_write(path, text)
    except OSError as exc:
        fix = {
            errno.ENOSPC: "free some space on its disk and save again",
            errno.EDQUOT: "free some space (disk quota) and save again",
            errno.EACCES: "check the permissions of the file and its directory",
            errno.EROFS: "it is on a read-only file system — pass another --config",
        }.get(exc.errno or 0, "save again once that is fixed")
        target = Path(os.path.realpath(path))
        where = f"{path} (a link to {target})" if path.is_symlink() else str(path)
        raise ProfileError(
            f"cannot save profile {name!r}: writing {where} failed: {exc.strerror or exc} — "
            f"the old file is unchanged; {fix}"
        ) from exc


def save_profile(profile: Profile, path: Path) -> None:
    """Add or replace ``[profiles.NAME]``, keeping every other table, key and comment."""
    if not profile.name:
        raise ProfileError("a profile needs a name")
    text, data = _read(path)
    values = _check_values(profile.name, dict(profile.values), path)
    new_text = _splice(text, profile.name, profile_table(Profile(profile.name, values)))
    _write_checked(path, new_text, data, profile.name, values)


def delete_profile(name: str, path: Path) -> None:
    text, data = _read(path)
    if name not in (data.get("profiles") or {}):
        raise ProfileError(f"no profile {name!r} in {path}")
    _write_checked(path, _splice(text, name, None), data, name, None)

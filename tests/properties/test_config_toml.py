"""Property tests for the config file (``load_settings``) and profiles (``[profiles.NAME]``).

Any file gives Settings or a ConfigError / ProfileError naming the file, never another
exception; TOML hand-written from valid values loads back the same settings; a profile saved by
the code's own writer loads back equal, and the rest of the file is kept.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpuconsole.settings.config import ConfigError, load_settings
from gpuconsole.settings.profiles import (
    PROFILE_KEYS,
    Profile,
    ProfileError,
    load_profiles,
    save_profile,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory for the module; each example writes its own file in a fresh subdir."""
    root = tmp_path_factory.mktemp("props")
    (root / "docker").mkdir()
    env = {"DOCKER_CONFIG": str(root / "docker"), "HOME": str(root)}
    with mock.patch.dict(os.environ, env):
        os.environ.pop("DOCKER_HOST", None)
        os.environ.pop("GPUCONSOLE_CONFIG", None)
        yield root


def _fresh(root: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=root)) / "config.toml"


def toml_str(text: str) -> str:
    """A TOML basic string, hand-written (control characters and DEL escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_val(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_val(v) for v in value) + "]"
    raise AssertionError(value)


text_no_surrogates = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    text_no_surrogates,
)
any_value = st.one_of(scalar, st.lists(scalar, max_size=3))
TABLE_KEYS = {
    "docker": ["host", "contexts"],
    "ui": ["refresh_seconds", "show_all", "read_only"],
    "gpu": ["interval_seconds"],
    "ssh": ["connect_timeout", "probe_interval", "probe_timeout", "down_after", "bogus"],
    "shell": ["command"],
    "alerts": [
        "enabled",
        "idle_minutes",
        "idle_utilization_percent",
        "temperature_c",
        "memory_percent",
        "command",
        "bogus",
    ],
}
HOST_KEYS = ["name", "ssh", "identity_file", "docker_socket", "local", "enabled", "port"]


@st.composite
def config_text(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for table, keys in TABLE_KEYS.items():
        if not draw(st.booleans()):
            continue
        lines.append(f"[{table}]")
        for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=4)):
            lines.append(f"{key} = {toml_val(draw(any_value))}")
    for _ in range(draw(st.integers(0, 3))):
        lines.append("[[hosts]]")
        for key in draw(st.lists(st.sampled_from(HOST_KEYS), unique=True, max_size=4)):
            value = draw(
                st.one_of(
                    any_value,
                    st.from_regex(r"[a-z]{1,5}@[a-z]{1,5}(:\d{1,6})?", fullmatch=True),
                )
            )
            lines.append(f"{key} = {toml_val(value)}")
    return "\n".join(lines) + "\n"


def _load(path: Path) -> object:
    try:
        return load_settings(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
        return exc


@FAST
@given(st.one_of(config_text(), st.text(max_size=200)))
@example("[ui]\nrefresh_seconds = 1e400\n")
@example("[ui]\nrefresh_seconds = nan\n")
@example("ui = 3\n")
@example('hosts = "x"\n')
@example('[[hosts]]\nname = "a"\nssh = "u@h:99999999999999999999999"\n')
def test_any_config_gives_settings_or_config_error(workdir: Path, text: str) -> None:
    path = _fresh(workdir)
    path.write_text(text, encoding="utf-8")
    result = _load(path)
    if not isinstance(result, ConfigError):
        for error in result.host_errors:  # type: ignore[attr-defined]
            assert str(path) in error and "[[hosts]]" in error


@FAST
@given(st.binary(max_size=60))
def test_any_bytes_give_settings_or_config_error(workdir: Path, data: bytes) -> None:
    path = _fresh(workdir)
    path.write_bytes(data)
    _load(path)


def _in(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=low, max_value=high, allow_nan=False)


host_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@FAST
@given(
    refresh=st.one_of(st.none(), _in(0.2, 60), st.integers(1, 60)),
    interval=st.one_of(st.none(), _in(0.1, 60)),
    show_all=st.one_of(st.none(), st.booleans()),
    read_only=st.one_of(st.none(), st.booleans()),
    docker_host=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    shell=st.one_of(st.none(), st.text(min_size=1, max_size=20).filter(str.strip)),
    connect_timeout=st.one_of(st.none(), _in(1, 120)),
    down_after=st.one_of(st.none(), st.integers(1, 100)),
    idle=st.one_of(st.none(), _in(0, 10080)),
    temperature=st.one_of(st.none(), _in(30, 120)),
    hosts=st.lists(
        st.tuples(
            host_name,
            st.from_regex(r"[a-z]{1,8}@[a-z][a-z0-9.-]{0,10}(:[1-9]\d{0,3})?", fullmatch=True),
            st.booleans(),
        ),
        max_size=3,
        unique_by=lambda h: h[0].lower(),
    ).filter(lambda hs: all(h[0] != "local" for h in hs)),
)
def test_valid_config_loads_back_the_same(
    workdir: Path,
    refresh: float | None,
    interval: float | None,
    show_all: bool | None,
    read_only: bool | None,
    docker_host: str | None,
    shell: str | None,
    connect_timeout: float | None,
    down_after: int | None,
    idle: float | None,
    temperature: float | None,
    hosts: list[tuple[str, str, bool]],
) -> None:
    tables: dict[str, dict[str, object]] = {
        "docker": {"host": docker_host, "contexts": False},
        "ui": {"refresh_seconds": refresh, "show_all": show_all, "read_only": read_only},
        "gpu": {"interval_seconds": interval},
        "ssh": {"connect_timeout": connect_timeout, "down_after": down_after},
        "shell": {"command": shell},
        "alerts": {"idle_minutes": idle, "temperature_c": temperature},
    }
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {toml_val(v)}" for k, v in values.items() if v is not None]
    for name, ssh, enabled in hosts:
        lines += ["[[hosts]]", f"name = {toml_str(name)}", f"ssh = {toml_str(ssh)}"]
        lines.append(f"enabled = {toml_val(enabled)}")
    path = _fresh(workdir)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_settings(path)
    assert loaded.docker_host == docker_host
    assert loaded.refresh_seconds == (2.0 if refresh is None else refresh)
    assert loaded.gpu_interval == (1.0 if interval is None else interval)
    assert loaded.show_all is (True if show_all is None else show_all)
    assert loaded.read_only is (False if read_only is None else read_only)
    assert loaded.shell == shell
    assert loaded.ssh.connect_timeout == (10.0 if connect_timeout is None else connect_timeout)
    assert loaded.ssh.down_after == (2 if down_after is None else down_after)
    assert loaded.alerts.idle_minutes == (15.0 if idle is None else idle)
    assert loaded.alerts.temperature_c == (85.0 if temperature is None else temperature)
    assert loaded.host_errors == ()
    remote = [(h.name, h.ssh, h.enabled) for h in loaded.hosts if not h.is_local]
    assert remote == hosts
    assert loaded.hosts[0].is_local and loaded.hosts[0].docker_url == docker_host


@FAST
@given(
    st.sampled_from(["refresh_seconds", "show_all"]),
    st.one_of(st.text(max_size=5), st.lists(st.integers(), max_size=2), st.integers(100, 10**6)),
)
def test_wrong_type_or_range_names_the_key(workdir: Path, key: str, value: object) -> None:
    path = _fresh(workdir)
    path.write_text(f"[ui]\n{key} = {toml_val(value)}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"ui.{key}" in str(info.value) and str(path) in str(info.value)


# -- profiles -----------------------------------------------------------------------------

profile_text = st.text(max_size=20)
PROFILE_VALUE = {
    "variant": profile_text,
    "image": profile_text,
    "name": profile_text,
    "gpus": st.one_of(profile_text, st.integers(0, 8)),
    "memory": st.one_of(profile_text, st.integers(0, 2**40)),
    "cpus": st.one_of(st.integers(0, 256), st.floats(0, 256), profile_text),
    "shm_size": st.one_of(profile_text, st.integers(0, 2**40)),
    "ulimits": st.lists(profile_text, max_size=3),
    "ipc_host": st.booleans(),
    "volumes": st.lists(profile_text, max_size=3),
    "env": st.lists(profile_text, max_size=3),
    "workdir": profile_text,
    "user": profile_text,
    "port": st.one_of(st.integers(0, 65535), profile_text),
    "bind": profile_text,
    "labels": st.lists(profile_text, max_size=3),
    "ssh_key": profile_text,
}
assert set(PROFILE_VALUE) == set(PROFILE_KEYS)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    name = draw(st.text(min_size=1, max_size=12))
    keys = draw(st.lists(st.sampled_from(sorted(PROFILE_KEYS)), unique=True, max_size=6))
    return Profile(name, {key: draw(PROFILE_VALUE[key]) for key in keys})


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


PREAMBLES = [
    "",
    "# my settings\n[ui]\nrefresh_seconds = 2\n",
    '[profiles.other]\nimage = "x:1"\n\n# trailing comment\n',
    '[ui]\nshow_all = false\n[profiles.other]\ngpus = "all"\n[alerts]\nenabled = false\n',
]


@FAST
@given(st.lists(profiles(), min_size=1, max_size=3), st.sampled_from(PREAMBLES))
@example([Profile("p", {"image": "a\x7fb"})], "")  # DEL was written raw: not valid TOML
@example([Profile("p\x7f", {})], "")
@example([Profile("p", {"image": "\ud800"})], "")  # a lone surrogate: UnicodeEncodeError
def test_saved_profiles_load_back_equal(workdir: Path, saved: list[Profile], preamble: str) -> None:
    path = _fresh(workdir)
    path.write_text(preamble, encoding="utf-8")
    expected: dict[str, dict[str, object]] = {}
    for profile in saved:
        try:
            save_profile(profile, path)
        except ProfileError as exc:
            # Only a value that cannot be stored in a UTF-8 file may be refused.
            assert any(
                "\ud800" <= ch <= "\udfff"
                for ch in json.dumps([profile.name, profile.values], ensure_ascii=False)
            ), exc
            continue
        expected[profile.name] = dict(profile.values)
    loaded = load_profiles(path)
    for name, values in expected.items():
        assert name in loaded
        got = dict(loaded[name].values)
        assert got.keys() == values.keys()
        for key, value in values.items():
            assert _same(got[key], value), (key, got[key], value)
    if "[ui]" in preamble:
        assert load_settings(path).refresh_seconds in (2.0, 2) or "refresh" not in preamble
    if "other" in preamble and "other" not in expected:
        assert "other" in loaded


@FAST
@given(st.text(max_size=200))
def test_any_file_gives_profiles_or_profile_error(workdir: Path, text: str) -> None:
    path = _fresh(workdir)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_profiles(path)
    except ProfileError as exc:
        assert str(path) in str(exc)

"""The fleet from the config file: [[hosts]], the local engine, DOCKER_HOST, Docker contexts, [ssh].

Pure: temporary files only (HOME, DOCKER_CONFIG and DOCKER_HOST are the test's own), except the
last test, which runs the CLI as a subprocess (it connects to nothing).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gpuconsole.backend.hosts.spec import DEFAULT_REMOTE_SOCKET, HostSpec, SshOptions
from gpuconsole.settings.config import ConfigError, Settings, load_settings

from support import run_cli


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DOCKER_HOST, an empty Docker config dir, a HOME of the test's own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("GPUCONSOLE_CONFIG", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return home


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path)


def names(settings: Settings) -> list[str]:
    return [h.name for h in settings.hosts]


def by_name(settings: Settings) -> dict[str, HostSpec]:
    return {h.name: h for h in settings.hosts}


GPU1 = '[[hosts]]\nname = "gpu1"\nssh = "alice@gpu1.lab:2222"\n'
GPU2 = '[[hosts]]\nname = "gpu2"\nssh = "gpu2"\n'


def test_hosts_entries_parse_with_the_local_engine_first(tmp_path: Path, clean_env: Path) -> None:
    settings = load(
        tmp_path,
        GPU1 + 'identity_file = "~/keys/id_gpu1"\ndocker_socket = "/run/user/1000/docker.sock"\n'
        "\n" + GPU2,
    )
    assert settings.host_errors == ()
    assert names(settings) == ["local", "gpu1", "gpu2"]
    local, gpu1, gpu2 = settings.hosts
    assert local.is_local and local.enabled and local.origin == "default"
    assert gpu1 == HostSpec(
        "gpu1",
        ssh="alice@gpu1.lab:2222",
        identity_file=str(clean_env / "keys" / "id_gpu1"),
        docker_socket="/run/user/1000/docker.sock",
        origin="[[hosts]] #1 (gpu1)",
    )
    assert not gpu1.is_local
    assert gpu2.ssh == "gpu2" and gpu2.identity_file is None
    assert gpu2.docker_socket == DEFAULT_REMOTE_SOCKET
    assert settings.enabled_hosts() == settings.hosts
    assert settings.host("gpu2") is gpu2


def test_no_file_means_the_local_engine_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUCONSOLE_CONFIG", str(tmp_path / "absent.toml"))
    settings = load_settings()
    assert names(settings) == ["local"]
    assert settings.hosts[0].is_local and settings.host_errors == ()


def test_a_local_entry_renames_the_local_engine_and_goes_first(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[docker]\nhost = "unix:///srv/docker.sock"\n\n'
        + GPU1
        + '\n[[hosts]]\nname = "workstation"\nlocal = true\n',
    )
    assert settings.host_errors == ()
    assert names(settings) == ["workstation", "gpu1"]
    here = settings.hosts[0]
    assert here.is_local and here.docker_url == "unix:///srv/docker.sock"
    with pytest.raises(ConfigError, match="known: workstation, gpu1"):
        settings.host("local")


def test_enabled_false_disables_a_host(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        GPU1
        + "enabled = false\n\n"
        + GPU2
        + '\n[[hosts]]\nname = "local"\nlocal = true\nenabled = false\n',
    )
    assert settings.host_errors == ()
    assert names(settings) == ["local", "gpu1", "gpu2"]  # still listed (as disabled)
    assert [h.name for h in settings.enabled_hosts()] == ["gpu2"]
    assert not by_name(settings)["gpu1"].enabled and not by_name(settings)["local"].enabled
    with pytest.raises(ConfigError, match=r"'gpu1' is disabled .* enabled = true"):
        settings.host("gpu1")


@pytest.mark.parametrize(
    ("entry", "number", "fragments"),
    [
        ('[[hosts]]\nssh = "bob@box"\n', "#2", ["has no name", 'name = "']),
        ('[[hosts]]\nname = "gpu1"\nssh = "bob@box"\n', "#2 (gpu1)", ["taken", "rename"]),
        (
            '[[hosts]]\nname = "box"\nssh = "bob@box:99999"\n',
            "#2 (box)",
            ["99999", "a number from 1 to 65535"],
        ),
        (
            '[[hosts]]\nname = "box"\nssh = "bob@box"\nhostname = "box.lab"\n',
            "#2 (box)",
            ["unknown key hostname", "the keys are", "identity_file"],
        ),
        (
            '[[hosts]]\nname = "box"\nssh = "bob@box"\nlocal = true\n',
            "#2 (box)",
            ["local = true and ssh", "keep one"],
        ),
    ],
    ids=["no-name", "duplicate", "bad-port", "unknown-key", "ssh-and-local"],
)
def test_a_bad_entry_is_reported_and_the_others_still_load(
    tmp_path: Path, entry: str, number: str, fragments: list[str]
) -> None:
    settings = load(tmp_path, GPU1 + "\n" + entry + "\n" + GPU2)
    (problem,) = settings.host_errors
    path = str(tmp_path / "config.toml")
    assert problem.startswith(f"{path}: [[hosts]] {number}: "), problem
    for fragment in fragments:
        assert fragment in problem, problem
    assert names(settings) == ["local", "gpu1", "gpu2"]
    assert by_name(settings)["gpu1"].ssh == "alice@gpu1.lab:2222"


@pytest.mark.parametrize(
    "spec", ["bob@box:", "@box", "-oProxyCommand=touch"], ids=["empty-port", "empty-user", "dash"]
)
def test_a_spec_the_connection_would_refuse_is_reported_at_load(tmp_path: Path, spec: str) -> None:
    """What the SSH layer refuses to connect to is a config problem, found when loading."""
    settings = load(tmp_path, GPU1 + f'\n[[hosts]]\nname = "box"\nssh = "{spec}"\n')
    (problem,) = settings.host_errors
    assert "[[hosts]] #2 (box)" in problem and spec in problem
    assert names(settings) == ["local", "gpu1"]


def test_docker_host_ssh_url_is_an_ssh_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "ssh://u@h:2222")
    settings = load(tmp_path, GPU1)
    assert names(settings) == ["h", "gpu1"]
    remote = settings.hosts[0]
    assert not remote.is_local
    assert remote.ssh == "u@h:2222" and remote.origin == "DOCKER_HOST"
    assert not any(h.is_local for h in settings.hosts)


def test_docker_host_unix_url_is_the_local_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/elsewhere.sock")
    (local,) = load(tmp_path, "").hosts
    assert local.is_local and local.name == "local"
    assert local.docker_url == "unix:///tmp/elsewhere.sock"


def write_context(docker_dir: Path, name: str, endpoint: str) -> None:
    """A context as ``docker context create NAME --docker host=ENDPOINT`` stores it."""
    meta = docker_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps(
            {
                "Name": name,
                "Metadata": {"Description": ""},
                "Endpoints": {"docker": {"Host": endpoint, "SkipTLSVerify": False}},
            }
        )
    )


@pytest.fixture
def contexts(tmp_path: Path) -> Path:
    docker_dir = tmp_path / "docker"
    write_context(docker_dir, "gpubox", "ssh://me@gpubox.lab:2200")
    write_context(docker_dir, "rootless", "unix:///run/user/1000/docker.sock")
    return docker_dir


def test_docker_ssh_contexts_are_hosts(tmp_path: Path, contexts: Path) -> None:
    settings = load(tmp_path, GPU1)
    assert names(settings) == ["local", "gpu1", "gpubox"]
    box = by_name(settings)["gpubox"]
    assert box.ssh == "me@gpubox.lab:2200" and box.origin == "docker context gpubox"
    assert "rootless" not in names(settings)


def test_contexts_false_hides_docker_contexts(tmp_path: Path, contexts: Path) -> None:
    settings = load(tmp_path, "[docker]\ncontexts = false\n\n" + GPU1)
    assert names(settings) == ["local", "gpu1"]


def test_a_config_entry_wins_over_a_context_of_the_same_name(
    tmp_path: Path, contexts: Path
) -> None:
    settings = load(tmp_path, '[[hosts]]\nname = "gpubox"\nssh = "ops@10.0.0.7"\n')
    assert names(settings) == ["local", "gpubox"]
    box = by_name(settings)["gpubox"]
    assert box.ssh == "ops@10.0.0.7" and box.origin == "[[hosts]] #1 (gpubox)"


def test_ssh_options_parse(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "[ssh]\nconnect_timeout = 5\nprobe_interval = 2.5\nprobe_timeout = 1\ndown_after = 3\n",
    )
    assert settings.ssh == SshOptions(
        connect_timeout=5.0, probe_interval=2.5, probe_timeout=1.0, down_after=3
    )
    assert load(tmp_path, "").ssh == SshOptions()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("connect_timeout", "0.5"),
        ("connect_timeout", "121"),
        ("probe_interval", "0.1"),
        ("probe_interval", "301"),
        ("probe_timeout", "0"),
        ("probe_timeout", "61"),
        ("down_after", "0"),
        ("down_after", "101"),
        ("connect_timeout", '"ten"'),
        ("down_after", "2.5"),
    ],
)
def test_bad_ssh_options_name_the_key(tmp_path: Path, key: str, value: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[ssh]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"ssh.{key}" in str(info.value) and str(path) in str(info.value)


def test_an_unknown_ssh_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ssh\.keepalive"):
        load(tmp_path, "[ssh]\nkeepalive = 5\n")


def test_an_unknown_host_name_lists_the_known_ones(tmp_path: Path, clean_env: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GPU1 + "\n" + GPU2 + "enabled = false\n")
    out = run_cli(
        "--config",
        str(path),
        "ps",
        "--host",
        "nope",
        env={"HOME": str(clean_env), "DOCKER_CONFIG": str(tmp_path / "docker")},
        timeout=60,
    )
    assert out.returncode == 1
    assert "no host named 'nope'" in out.stderr
    assert "known: local, gpu1" in out.stderr
    assert out.stdout == ""

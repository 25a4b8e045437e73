"""Resolving host specs and ~/.ssh/config aliases: through the real ``ssh -G`` and through the
paramiko fallback, which must agree.

OpenSSH takes ``~`` from the password database, never from $HOME. So that ``ssh -G`` reads the
test's home (relative ``Include`` paths) and never the machine's real ~/.ssh, the tests put an
``ssh`` on PATH that runs the real client in a private mount namespace with the temporary home
mounted over the real one (``unshare -m``: root, as on the CI machine).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.ssh.config import SshConfigError, SshTarget, parse_spec, resolve_target

LOCAL_USER = pwd.getpwuid(os.getuid()).pw_name
PW_HOME = pwd.getpwuid(os.getuid()).pw_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def ssh_in_home(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An ``ssh`` on PATH: the real client, seeing the temporary home as its own."""
    real = shutil.which("ssh")
    if real is None:
        pytest.fail("the OpenSSH client is missing: apt-get install -y openssh-client")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(
            "these tests run `ssh -G` in a private mount namespace (unshare -m), which needs "
            f"root or CAP_SYS_ADMIN: {probe.stderr.strip()}"
        )
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "ssh"
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare -m sh -c "
        f'\'mount --bind "$HOME" {PW_HOME} && exec {real} "$@"\' sh "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return str(wrapper)


@pytest.fixture
def config(home: Path, tmp_path: Path) -> Path:
    """An ssh config using most of what gpuconsole reads, with relative, glob and absolute
    Includes, and Includes inside matching and non-matching Host blocks."""
    (home / ".ssh" / "conf.d").mkdir()
    (home / ".ssh" / "conf.d" / "10-fromd.conf").write_text(
        "Host fromd\n    HostName D.example\n    Port 2500\n"
    )
    (home / ".ssh" / "conf.d" / "20-fromd2.conf").write_text(
        "Host fromd2\n    Port 2600\n    IdentityAgent ~/agent.sock\n"
    )
    (tmp_path / "extra.conf").write_text(
        "Host extra\n    HostName extra.example\n    ConnectTimeout 3\n"
    )
    (tmp_path / "inner.conf").write_text("HostName inner.example\nHost other\n    Port 9\n")
    (tmp_path / "never.conf").write_text(
        "User never\nHost wrapped fromd\n    User never2\nHost *\n    User never3\n"
    )
    cfg = tmp_path / "ssh_config"
    cfg.write_text(
        f"""\
Include conf.d/*.conf
Include {tmp_path}/extra.conf

Host gpu1
    HostName GPU1.Lab.Example
    User aiuser
    Port 2200
    IdentityFile ~/.ssh/gpu1_ed25519
    IdentityFile ~/.ssh/%r@%h
    IdentitiesOnly yes
    ProxyJump bast1,admin@bast2:2022
    ConnectTimeout 7
    ServerAliveInterval 15
    ServerAliveCountMax 4
    UserKnownHostsFile ~/.ssh/kh_lab %d/.ssh/kh_%h
    StrictHostKeyChecking accept-new

Host bast1
    HostName 192.0.2.10
    User jumper
    IdentityAgent none

Host bast2
    HostName bast2.example
    ProxyJump bast1

Host viacmd
    HostName 10.1.2.3
    ProxyCommand /usr/bin/nc %h %p %r 100%%
    ProxyJump ignored-because-second

Host wrapped
    Include {tmp_path}/inner.conf
    Port 2300

Host notme
    Include {tmp_path}/never.conf

Host *
    ServerAliveInterval 30
"""
    )
    return cfg


ALIASES = [
    "gpu1",
    "bast1",
    "bast2",
    "admin@bast2:2022",
    "viacmd",
    "wrapped",
    "fromd",
    "fromd2",
    "extra",
    "other",
    "plain.example",
    "bob@plain.example:2022",
]


@pytest.mark.parametrize("alias", ALIASES)
def test_ssh_g_and_fallback_agree(alias: str, config: Path, ssh_in_home: str) -> None:
    via_ssh = resolve_target(alias, config_path=str(config))
    via_paramiko = resolve_target(alias, config_path=str(config), use_ssh_binary=False)
    assert asdict(via_ssh) == asdict(via_paramiko)


def _both(spec: str, config: Path, **kwargs: object) -> SshTarget:
    via_ssh = resolve_target(spec, config_path=str(config), **kwargs)  # type: ignore[arg-type]
    via_paramiko = resolve_target(
        spec,
        config_path=str(config),
        use_ssh_binary=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert via_ssh == via_paramiko
    return via_ssh


def test_alias_resolves_every_field(config: Path, home: Path, ssh_in_home: str) -> None:
    ssh = home / ".ssh"
    assert _both("gpu1", config) == SshTarget(
        alias="gpu1",
        hostname="gpu1.lab.example",
        port=2200,
        user="aiuser",
        identity_files=(f"{ssh}/gpu1_ed25519", f"{ssh}/aiuser@gpu1.lab.example"),
        identities_only=True,
        identity_agent=None,
        proxy_jump=("bast1", "admin@bast2:2022"),
        proxy_command=None,
        server_alive_interval=15.0,
        server_alive_count_max=4,
        connect_timeout=7.0,
        user_known_hosts_files=(f"{ssh}/kh_lab", f"{ssh}/kh_gpu1.lab.example"),
        strict_host_key_checking="accept-new",
        config_path=str(config),
    )


def test_defaults_are_those_of_ssh(config: Path, home: Path, ssh_in_home: str) -> None:
    target = _both("plain.example", config)
    ssh = home / ".ssh"
    assert (target.hostname, target.port, target.user) == ("plain.example", 22, LOCAL_USER)
    assert target.identity_files[:1] == (f"{ssh}/id_rsa",)
    assert f"{ssh}/id_ed25519" in target.identity_files
    assert target.user_known_hosts_files == (f"{ssh}/known_hosts", f"{ssh}/known_hosts2")
    assert target.identities_only is False
    assert target.proxy_jump == () and target.proxy_command is None
    assert target.connect_timeout is None
    assert target.server_alive_interval == 30.0  # from Host *
    assert target.server_alive_count_max == 3
    assert target.strict_host_key_checking == "ask"
    assert target.address == f"{LOCAL_USER}@plain.example:22"


def test_proxy_jump_chain_resolves_hop_by_hop(config: Path, ssh_in_home: str) -> None:
    target = _both("gpu1", config)
    first, second = (_both(spec, config) for spec in target.proxy_jump)
    assert (first.hostname, first.user, first.port, first.identity_agent) == (
        "192.0.2.10",
        "jumper",
        22,
        "none",
    )
    # the spec's user@ and :port win over the alias's settings; its own ProxyJump is kept
    assert (second.hostname, second.user, second.port) == ("bast2.example", "admin", 2022)
    assert second.proxy_jump == ("bast1",)


def test_proxy_command_tokens_and_first_proxy_wins(config: Path, ssh_in_home: str) -> None:
    target = _both("viacmd", config)
    assert target.proxy_command == f"/usr/bin/nc 10.1.2.3 22 {LOCAL_USER} 100%"
    assert target.proxy_jump == ()  # ProxyJump came second: ignored, as ssh does
    explicit = _both("bob@viacmd:2022", config)
    assert explicit.proxy_command == "/usr/bin/nc 10.1.2.3 2022 bob 100%"


def test_includes_relative_glob_absolute_and_in_blocks(
    config: Path, home: Path, ssh_in_home: str
) -> None:
    fromd = _both("fromd", config)
    assert (fromd.hostname, fromd.port, fromd.user) == ("d.example", 2500, LOCAL_USER)
    fromd2 = _both("fromd2", config)
    assert (fromd2.port, fromd2.identity_agent) == (2600, f"{home}/agent.sock")
    extra = _both("extra", config)
    assert (extra.hostname, extra.connect_timeout) == ("extra.example", 3.0)
    # an Include inside a matching Host block applies, and the block goes on after it
    wrapped = _both("wrapped", config)
    assert (wrapped.hostname, wrapped.port, wrapped.user) == ("inner.example", 2300, LOCAL_USER)
    # ...but its own `Host other` block is only seen when the enclosing block matched
    assert _both("other", config).port == 22
    # never.conf is included inside `Host notme` only: none of its lines ever apply
    assert _both("fromd", config).user == LOCAL_USER


def test_explicit_arguments_win(config: Path, tmp_path: Path, ssh_in_home: str) -> None:
    key = tmp_path / "my_key"
    key.write_text("not really a key\n")
    spec_wins = _both("bob@gpu1:2345", config)
    assert (spec_wins.user, spec_wins.port, spec_wins.hostname) == (
        "bob",
        2345,
        "gpu1.lab.example",
    )
    args_win = _both("bob@gpu1:2345", config, user="carol", port=2346, identity_file=str(key))
    assert (args_win.user, args_win.port) == ("carol", 2346)
    assert args_win.identity_files[0] == str(key)
    ssh = tmp_path / "home" / ".ssh"
    assert args_win.identity_files[1:] == (
        f"{ssh}/gpu1_ed25519",
        f"{ssh}/carol@gpu1.lab.example",  # %r is the user that wins
    )
    # a missing explicit key is still listed first (connect says it was not found)
    missing = _both("plain.example", config, identity_file=str(tmp_path / "absent"))
    assert missing.identity_files[0] == str(tmp_path / "absent")


@pytest.mark.parametrize("spec", ["gpu1:70000", "gpu1:0", "root@gpu1:ssh", "[::1]:99999"])
def test_bad_port_in_spec(spec: str, config: Path) -> None:
    for use_ssh in (True, False):
        with pytest.raises(SshConfigError) as info:
            resolve_target(spec, config_path=str(config), use_ssh_binary=use_ssh)
        message = str(info.value)
        assert repr(spec) in message
        assert "1 to 65535" in message and "host:port" in message
        assert isinstance(info.value, GpuconsoleError)


def test_bad_port_argument(config: Path) -> None:
    with pytest.raises(SshConfigError, match="1 to 65535"):
        resolve_target("gpu1", port=0, config_path=str(config))


def test_bad_port_in_config(tmp_path: Path, home: Path, ssh_in_home: str) -> None:
    cfg = tmp_path / "bad_config"
    cfg.write_text("Host broken\n    Port 99999\n")
    for use_ssh in (True, False):
        with pytest.raises(SshConfigError) as info:
            resolve_target("broken", config_path=str(cfg), use_ssh_binary=use_ssh)
        assert str(cfg) in str(info.value) and "'broken'" in str(info.value)


def test_include_loop_is_an_error_not_a_hang(tmp_path: Path, home: Path, ssh_in_home: str) -> None:
    cfg = tmp_path / "loop.conf"
    cfg.write_text(f"Include {cfg}\nHost a\n    Port 2\n")
    for use_ssh in (True, False):
        with pytest.raises(SshConfigError, match=r"[Ii]nclude"):
            resolve_target("a", config_path=str(cfg), use_ssh_binary=use_ssh)


def test_spec_forms() -> None:
    assert parse_spec("gpu1") == (None, "gpu1", None)
    assert parse_spec("me@gpu1.lab:2222") == ("me", "gpu1.lab", 2222)
    assert parse_spec("ssh://me@gpu1:23/") == ("me", "gpu1", 23)
    assert parse_spec("[::1]:2222") == (None, "::1", 2222)
    assert parse_spec("root@::1") == ("root", "::1", None)
    for bad in ("-oProxyCommand=touch /tmp/x", "gpu1;reboot", "a b", "", "@gpu1", "[::1"):
        with pytest.raises(SshConfigError):
            parse_spec(bad)


def test_address_brackets_ipv6(home: Path) -> None:
    target = resolve_target("me@[::1]:2200", use_ssh_binary=False)
    assert target.address == "me@[::1]:2200"


def test_missing_config_file_is_an_error(tmp_path: Path, home: Path, ssh_in_home: str) -> None:
    for use_ssh in (True, False):
        with pytest.raises(SshConfigError, match="absent"):
            resolve_target("gpu1", config_path=str(tmp_path / "absent"), use_ssh_binary=use_ssh)


def test_default_config_is_home_ssh_config(home: Path, ssh_in_home: str) -> None:
    """Without config_path: ~/.ssh/config, then /etc/ssh/ssh_config (with its Includes)."""
    (home / ".ssh" / "config").write_text("Host viahome\n    HostName home.example\n")
    via_ssh = resolve_target("viahome")
    assert via_ssh == resolve_target("viahome", use_ssh_binary=False)
    assert via_ssh.hostname == "home.example" and via_ssh.config_path is None


def test_without_an_ssh_client_the_fallback_answers(
    config: Path, home: Path, ssh_in_home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = resolve_target("gpu1", config_path=str(config))
    empty = tmp_path / "no_ssh_here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("ssh") is None
    assert resolve_target("gpu1", config_path=str(config)) == expected


def test_resolution_is_cheap(config: Path, ssh_in_home: str) -> None:
    resolve_target("gpu1", config_path=str(config), use_ssh_binary=False)  # imports paramiko
    started = time.perf_counter()
    for _ in range(10):
        resolve_target("gpu1", config_path=str(config), use_ssh_binary=False)
    assert (time.perf_counter() - started) / 10 < 0.05


def test_importing_config_and_trust_does_not_load_paramiko() -> None:
    code = (
        "import sys, gpuconsole.backend.ssh.config, gpuconsole.backend.ssh.trust, "
        "gpuconsole.backend.ssh.connect; "
        "sys.exit('paramiko' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

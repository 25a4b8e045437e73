"""``gpuconsole shell`` on a real pty, into real containers, locally and over the loopback SSH host.

What a user does: type into the shell and read its answer, resize the window, interrupt a
program with Ctrl-C, leave with an exit code; and on a remote host, the same through the host's
one SSH connection. The console's own shell key (``e``) is driven in tmux, the real thing.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import TEST_LABEL, engine_url, remote_setup, ssh_env, wait_for
from terminals import PtyProcess, TmuxConsole, console_argv

ACCEPTED = "Accepted publickey"
NOSHELL_IMAGE = "gpuconsole-test/noshell:1"
DEBIAN_IMAGE = os.environ.get("GPUCONSOLE_TEST_DEBIAN_IMAGE", "gpuconsole-test/debian:bookworm")


def _env(home: Path | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DOCKER_HOST": engine_url(),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "HOME": str(home or Path(os.environ.get("HOME", "/root"))),
    }
    if "VIRTUAL_ENV" in os.environ:
        env["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
    return env


@pytest.fixture
def shell_of() -> Iterator[Callable[..., PtyProcess]]:
    """``gpuconsole ARGS`` on a 100x30 pty; killed after the test if still running."""
    started: list[PtyProcess] = []

    def start(*args: str, home: Path | None = None) -> PtyProcess:
        proc = PtyProcess([sys.executable, "-m", "gpuconsole", *args], _env(home))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


def _prompt(term: PtyProcess) -> None:
    term.expect(r"[#$] ")


def _shell_round(term: PtyProcess) -> None:
    """The core of every shell test: arithmetic, the window size, a resize, Ctrl-C, exit."""
    _prompt(term)
    term.send("echo $((6*7))\r")
    term.expect(r"\r\n42\r\n")
    term.send("stty size\r")
    term.expect(r"\r\n30 100\r\n")
    term.resize(120, 40)
    time.sleep(0.3)  # the resize travels: SIGWINCH -> the bridge -> the engine / the channel
    term.send("stty size\r")
    term.expect(r"\r\n40 120\r\n")
    term.send("sleep 30; echo finished\r")
    time.sleep(0.5)
    started = time.monotonic()
    term.send(b"\x03")
    term.expect(r"[#$] ", timeout=5)
    assert time.monotonic() - started < 5, "Ctrl-C did not interrupt the sleep"
    term.send("echo still $((1+1))\r")
    term.expect(r"still 2")
    assert b"\r\nfinished" not in term.output, "the interrupted line went on"
    term.send("exit 7\r")
    assert term.wait() == 7, "the shell's exit code is the command's"


def test_shell_in_a_local_container(
    make_container: Callable[..., Any], shell_of: Callable[..., PtyProcess]
) -> None:
    c = make_container("sleep 3600")
    term = shell_of("shell", c.name)
    _prompt(term)
    term.send("top\r")  # a full-screen program: it draws with escapes and reads single keys
    term.expect(r"(?s)\x1b\[[0-9;]*H.*Mem:.*PID", timeout=10)
    term.send("q")
    term.send("echo back-$((2*3))\r")
    term.expect(r"back-6")
    term.send("exit 7\r")
    assert term.wait() == 7
    _shell_round(shell_of("shell", c.name))


def test_shell_picks_bash_where_the_image_has_it(
    docker_client: Any, shell_of: Callable[..., PtyProcess]
) -> None:
    c = docker_client.containers.run(
        DEBIAN_IMAGE, ["sleep", "3600"], detach=True, labels={TEST_LABEL: "1"}
    )
    try:
        term = shell_of("shell", c.name, "--workdir", "/tmp", "--user", "1234")
        _prompt(term)
        term.send('echo "bash=${BASH_VERSION:+yes} uid=$(id -u) dir=$(pwd)"\r')
        term.expect(r"bash=yes uid=1234 dir=/tmp")
        term.send("exit\r")
        assert term.wait() == 0
    finally:
        c.remove(force=True)


def test_a_stopped_container_is_named_and_nothing_hangs(
    make_container: Callable[..., Any], shell_of: Callable[..., PtyProcess]
) -> None:
    c = make_container("sleep 3600", start=False)
    from support import run_cli

    out = run_cli("shell", c.name)  # stdin is not a terminal: no question, a clear no
    assert out.returncode == 1
    assert f"container {c.name!r}" in out.stderr and "not running" in out.stderr
    assert "--start" in out.stderr

    term = shell_of("shell", c.name)  # on a terminal: asked, and "y" starts it
    term.expect(r"Start it now\? \[y/N\] ")
    term.send("y\r")
    _prompt(term)
    c.reload()
    assert c.status == "running"
    term.send("exit 4\r")
    assert term.wait() == 4


def _noshell_image(docker_client: Any) -> str:
    """An image without /bin/sh (like a distroless one): busybox alone, as /sleep."""
    try:
        docker_client.images.get(NOSHELL_IMAGE)
        return NOSHELL_IMAGE
    except Exception:
        pass
    from support import TEST_IMAGE

    donor = docker_client.containers.create(TEST_IMAGE, ["true"], labels={TEST_LABEL: "1"})
    try:
        stream, _ = donor.get_archive("/bin/busybox")
        out = io.BytesIO()
        with (
            tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as source,
            tarfile.open(fileobj=out, mode="w") as tar,
        ):
            member = source.getmember("busybox")
            data = source.extractfile(member)
            assert data is not None
            member.name = "sleep"
            tar.addfile(member, data)
        docker_client.api.import_image_from_data(
            out.getvalue(), repository=NOSHELL_IMAGE.split(":")[0], tag="1"
        )
    finally:
        donor.remove(force=True)
    return NOSHELL_IMAGE


def test_an_image_without_a_shell_says_so(
    docker_client: Any, make_container: Callable[..., Any]
) -> None:
    from support import run_cli

    image = _noshell_image(docker_client)
    c = docker_client.containers.run(
        image, ["/sleep", "3600"], detach=True, labels={TEST_LABEL: "1"}
    )
    try:
        out = run_cli("shell", c.name)
        assert out.returncode == 127
        assert "has no /bin/sh" in out.stderr and "--shell" in out.stderr
        c.reload()
        assert c.status == "running", "a failed shell leaves the container alone"
    finally:
        c.remove(force=True)
    busy = make_container("sleep 3600")
    out = run_cli("shell", busy.name, "--shell", "/opt/nothing-here")
    assert out.returncode == 127
    assert "'/opt/nothing-here' was not found" in out.stderr


def test_tilde_dot_leaves_a_session(
    make_container: Callable[..., Any], shell_of: Callable[..., PtyProcess]
) -> None:
    c = make_container("sleep 3600")
    term = shell_of("shell", c.name)
    _prompt(term)
    term.send("\r~.")
    assert term.wait() == 255
    assert b"left the shell" in term.output


# -- over the loopback SSH host -----------------------------------------------------------------


def _logins(log: Path) -> int:
    return log.read_text(errors="replace").count(ACCEPTED)


@pytest.fixture
def remote(tmp_path: Path, private_sshd: Callable[..., Any]) -> tuple[Path, Path, Any]:
    """A HOME and config whose host ``loop`` is a private sshd (its log counts logins)."""
    ssh_env()
    sshd = private_sshd()
    home = tmp_path / "home"
    config = remote_setup(home, port=sshd.port)
    return home, config, sshd


def test_shell_over_ssh_is_one_login(
    remote: tuple[Path, Path, Any],
    make_container: Callable[..., Any],
    shell_of: Callable[..., PtyProcess],
) -> None:
    home, config, sshd = remote
    c = make_container("sleep 3600")
    before = _logins(sshd.log_path)
    _shell_round(shell_of("--config", str(config), "shell", "--host", "loop", c.name, home=home))
    assert _logins(sshd.log_path) - before == 1, "the whole session rode one SSH connection"


def test_host_shell_over_ssh(
    remote: tuple[Path, Path, Any], shell_of: Callable[..., PtyProcess]
) -> None:
    home, config, sshd = remote
    term = shell_of("--config", str(config), "shell", "--host", "loop", home=home)
    _prompt(term)
    term.send("echo host-$((6*7)) $SSH_CONNECTION\r")
    term.expect(r"host-42 127\.0\.0\.1 \d+ 127\.0\.0\.1 " + str(sshd.port))
    term.send("exit 5\r")
    assert term.wait() == 5


# -- the console: e hands the terminal over and takes it back -----------------------------------


@pytest.fixture
def console() -> Iterator[Callable[..., TmuxConsole]]:
    opened: list[TmuxConsole] = []

    def open_(*args: str, home: Path | None = None) -> TmuxConsole:
        tmux = TmuxConsole(console_argv(*args), _env(home))
        opened.append(tmux)
        return tmux

    yield open_
    for tmux in opened:
        tmux.close()


def test_console_hands_the_terminal_to_a_shell_and_comes_back(
    tmp_path: Path,
    make_container: Callable[..., Any],
    console: Callable[..., TmuxConsole],
) -> None:
    c = make_container("sleep 3600")
    other = make_container("sleep 3600")
    tmux = console("--docker-host", engine_url(), home=tmp_path)
    tmux.filter_to(c.name)
    assert other.name not in tmux.screen(), "the filter shows only the chosen container"
    tmux.keys("e")
    shown = tmux.wait_for("\n/ #")
    assert "Status" not in shown, "the console's table is not drawn under the shell"
    tmux.type("echo $((6*7))")
    tmux.keys("Enter")
    tmux.wait_for("\n42\n")
    tmux.type("exit 3")
    tmux.keys("Enter")
    shown = tmux.wait_for("exited with code 3")
    assert c.name in shown and other.name not in shown, "the filter is as it was"


def _remote_console(
    remote: tuple[Path, Path, Any],
    make_container: Callable[..., Any],
    console: Callable[..., TmuxConsole],
) -> tuple[TmuxConsole, Any, int]:
    """The console on host ``loop`` (a private sshd) with a container selected; the sshd's
    login count once the console's own connection is up."""
    home, config, sshd = remote
    c = make_container("sleep 3600")
    tmux = console("--config", str(config), "--host", "loop", home=home)
    tmux.filter_to(c.name)
    wait_for(lambda: _logins(sshd.log_path) >= 1, what="the console's login")
    time.sleep(1.0)
    return tmux, sshd, _logins(sshd.log_path)


def test_console_shell_over_ssh_adds_no_login(
    remote: tuple[Path, Path, Any],
    make_container: Callable[..., Any],
    console: Callable[..., TmuxConsole],
) -> None:
    tmux, sshd, before = _remote_console(remote, make_container, console)
    tmux.keys("e")
    tmux.wait_for("\n/ #")
    tmux.type("hostname; exit 0")
    tmux.keys("Enter")
    tmux.wait_for("exited with code 0")
    assert _logins(sshd.log_path) == before, "the shell used the console's SSH connection"


def test_refusals_name_the_option_to_fix(make_container: Callable[..., Any]) -> None:
    from support import run_cli

    c = make_container("sleep 3600")
    out = run_cli("shell", c.name, "--user", "nosuchuser")
    assert out.returncode == 126
    assert "no user 'nosuchuser'" in out.stderr and "--user" in out.stderr
    out = run_cli("shell", c.name, "--workdir", "/no/such/dir")
    assert out.returncode == 126
    assert "no directory '/no/such/dir'" in out.stderr and "--workdir" in out.stderr
    # A program that exits 126 by itself is not a refusal: its code, no words of ours.
    out = run_cli("shell", c.name, "--shell", "sh -c 'exit 126'")
    assert out.returncode == 126 and "gpuconsole:" not in out.stderr
    out = run_cli("shell")
    assert out.returncode == 2 and "give a container NAME, or --host" in out.stderr


def test_console_host_shell_over_ssh_adds_no_login(
    remote: tuple[Path, Path, Any],
    make_container: Callable[..., Any],
    console: Callable[..., TmuxConsole],
) -> None:
    tmux, sshd, before = _remote_console(remote, make_container, console)
    tmux.keys("E")  # the selected container's host: a login shell there
    tmux.wait_for("root@")
    time.sleep(1.0)  # a login shell may still be reading its profile: typeahead can be dropped
    tmux.type("echo host-$((6*7)); exit 4")
    tmux.keys("Enter")
    shown = tmux.wait_for("exited with code 4")
    assert "host loop" in shown
    assert "host-42" not in shown, "the console is back over the shell's output"
    assert _logins(sshd.log_path) == before, "the host shell used the console's connection"

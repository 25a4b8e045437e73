"""``gpuconsole logs``, run as a user runs it (a subprocess), against the real engine and, as
``--host loop``, the same engine through the loopback sshd.

Output is compared as bytes with what the container wrote (printf in busybox): the command's
promise is that ``gpuconsole logs x > file`` is the container's stdout, unchanged.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from docker.types import LogConfig

from support import engine_url, remote_setup

ACCEPTED = "Accepted publickey"
#: The engine's binary-safe log driver: json-file stores text in JSON strings, so it replaces
#: bytes that are not UTF-8 with U+FFFD before anyone can read them (docker logs shows the same).
BINARY_SAFE = {"log_config": LogConfig(type="local")}

#: What the awkward container writes, in shell (busybox printf) and as the bytes expected:
#: a CRLF line, a line over the engine's 16 KiB split (it stores it in pieces), an empty line,
#: stderr between, and a last line without a newline.
AWKWARD_SH = (
    r"printf 'crlf line\r\n'; "
    "head -c 20000 /dev/zero | tr '\\0' x; printf '\\n'; "
    r"printf '\n'; "
    r"printf 'tab\there\n'; "
    r"printf 'err line\r\n' >&2; "
    r"printf 'no newline at the end'"
)
AWKWARD_OUT = b"crlf line\r\n" + b"x" * 20000 + b"\n\ntab\there\nno newline at the end"
AWKWARD_ERR = b"err line\r\n"
#: Bytes that are not UTF-8, for the binary-safe driver. (That driver drops the newline after
#: a split long line — docker logs shows the same — so the long line is json-file's test.)
BINARY_SH = (
    r"printf 'not utf-8: \377\376\200 end\r\n'; "
    r"printf 'err \377\n' >&2; "
    r"printf '\300\301 last'"
)
BINARY_OUT = b"not utf-8: \xff\xfe\x80 end\r\n\xc0\xc1 last"
BINARY_ERR = b"err \xff\n"


def gc(
    *args: str, home: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """``gpuconsole ARGS`` with its output as bytes (with ``home``: its config and HOME)."""
    return subprocess.run(_argv(args, home), capture_output=True, timeout=timeout, env=_env(home))


def gc_popen(*args: str, home: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _argv(args, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(home)
    )


def _argv(args: tuple[str, ...], home: Path | None) -> list[str]:
    config = ("--config", str(home / "gpuconsole.toml")) if home else ()
    return [sys.executable, "-m", "gpuconsole", *config, *args]


def _env(home: Path | None) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": engine_url(), **({"HOME": str(home)} if home else {})}


def exited(container: Any) -> Any:
    """The container, once it has run to its end (its logs are complete)."""
    container.wait(timeout=60)
    return container


def stamped_lines(container: Any) -> list[tuple[float, bytes]]:
    """(unix time, line) of what the engine stored, from the engine's own timestamps."""
    out = []
    for line in container.logs(timestamps=True).splitlines():
        stamp, text = line.split(b" ", 1)
        whole, _, fraction = stamp.decode().rstrip("Z").partition(".")
        when = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
        out.append((when + float(f"0.{fraction or 0}"), text))
    return out


class Arrivals:
    """Reads a child's stdout on a thread, noting when each line arrived."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self.data = b""
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.data += chunk
            now = time.monotonic()
            self.lines.extend((now, line) for line in chunk.splitlines())

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def logins(log: Path) -> int:
    return log.read_text(errors="replace").count(ACCEPTED)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME with the loopback sshd as host ``loop`` (the real ~/.ssh is never read)."""
    home = tmp_path / "home"
    remote_setup(home)
    return home


# ---------------------------------------------------------------------------------------------
# What is written


def test_tail_5_of_5000_lines_is_exactly_the_last_five(make_container: Callable[..., Any]) -> None:
    c = exited(make_container("seq 1 5000"))
    out = gc("logs", "--tail", "5", c.name)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"4996\n4997\n4998\n4999\n5000\n"
    assert out.stderr == b""


def test_everything_by_default_and_tail_all(make_container: Callable[..., Any]) -> None:
    c = exited(make_container("seq 1 5000"))
    expected = b"".join(b"%d\n" % i for i in range(1, 5001))
    assert gc("logs", c.name).stdout == expected
    assert gc("logs", "--tail", "all", c.name).stdout == expected
    assert gc("logs", "--tail", "0", c.name).stdout == b""


def test_output_is_byte_exact_and_streams_stay_apart(make_container: Callable[..., Any]) -> None:
    c = exited(make_container(AWKWARD_SH))
    out = gc("logs", c.name)
    assert out.returncode == 0
    assert out.stdout == AWKWARD_OUT  # nothing added (not even a last newline), nothing lost
    assert out.stderr == AWKWARD_ERR  # the container's stderr, and nothing of ours


def test_bytes_that_are_not_utf8_come_out_unchanged(make_container: Callable[..., Any]) -> None:
    c = exited(make_container(BINARY_SH, **BINARY_SAFE))
    out = gc("logs", c.name)
    assert (out.returncode, out.stdout, out.stderr) == (0, BINARY_OUT, BINARY_ERR)


def test_with_json_file_not_utf8_is_what_the_engine_stored(
    make_container: Callable[..., Any],
) -> None:
    c = exited(make_container(BINARY_SH))  # json-file: the engine stored U+FFFD instead
    out = gc("logs", c.name)
    assert out.stdout == c.logs(stdout=True, stderr=False)
    assert out.stderr == c.logs(stdout=False, stderr=True)
    assert "\ufffd".encode() in out.stdout


def test_tty_container_output_is_byte_exact(make_container: Callable[..., Any]) -> None:
    # With a tty the engine stores raw bytes (no frames); a pty turns \n into \r\n.
    c = exited(make_container(r"printf 'one\ntwo \377\nthree'", tty=True, **BINARY_SAFE))
    out = gc("logs", c.name)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"one\r\ntwo \xff\r\nthree"


def test_interleaved_stdout_and_stderr_keep_their_order(
    make_container: Callable[..., Any],
) -> None:
    c = exited(make_container("for i in $(seq 1 200); do echo out $i; echo err $i >&2; done"))
    out = gc("logs", c.name)
    assert out.stdout == b"".join(b"out %d\n" % i for i in range(1, 201))
    assert out.stderr == b"".join(b"err %d\n" % i for i in range(1, 201))


def test_since_excludes_earlier_lines(make_container: Callable[..., Any]) -> None:
    c = exited(make_container("echo early; sleep 2; echo late; echo later >&2"))
    stamps = dict((text, when) for when, text in stamped_lines(c))
    between = (stamps[b"early"] + stamps[b"late"]) / 2
    out = gc("logs", "--since", f"{between:.3f}", c.name)
    assert out.returncode == 0, out.stderr
    assert (out.stdout, out.stderr) == (b"late\n", b"later\n")
    iso = datetime.fromtimestamp(between, timezone.utc).isoformat()
    assert gc("logs", "--since", iso, c.name).stdout == b"late\n"
    # A duration counts back from now: an hour covers both lines.
    assert gc("logs", "--since", "1h", c.name).stdout == b"early\nlate\n"


def test_timestamps_prefix_each_line_with_rfc3339(make_container: Callable[..., Any]) -> None:
    c = exited(make_container("echo first; echo second"))
    out = gc("logs", "--timestamps", c.name)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["first", "second"]
    for line in lines:
        stamp = line.split(" ", 1)[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z", stamp), line
        when = datetime.fromisoformat(stamp[:19]).replace(tzinfo=timezone.utc).timestamp()
        assert abs(when - time.time()) < 300, f"{stamp} is not about now"


# ---------------------------------------------------------------------------------------------
# Following


def test_follow_shows_lines_as_they_come_and_exits_0_with_the_container(
    make_container: Callable[..., Any],
) -> None:
    c = make_container("for i in $(seq 1 15); do echo line $i; sleep 0.2; done; exit 3")
    proc = gc_popen("logs", "-f", c.name)
    arrivals = Arrivals(proc)
    assert proc.wait(timeout=60) == 0  # like docker logs -f, whatever the container's code
    arrivals.join(5)
    assert proc.stderr is not None and proc.stderr.read() == b""
    assert arrivals.data == b"".join(b"line %d\n" % i for i in range(1, 16))
    assert c.wait(timeout=10)["StatusCode"] == 3
    # Lines were shown as the container printed them (3 s apart), not all at the end.
    times = [when for when, _ in arrivals.lines]
    assert times[-1] - times[0] > 1.5, f"lines arrived together: {times}"


def test_ctrl_c_ends_a_follow_quietly_with_130(make_container: Callable[..., Any]) -> None:
    c = make_container("echo ready; sleep 3600")
    proc = gc_popen("logs", "-f", c.name)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 130
    assert proc.stderr is not None and proc.stderr.read() == b""  # no traceback
    assert proc.stdout.read() == b""


def test_a_closed_pipe_ends_it_quietly(make_container: Callable[..., Any]) -> None:
    # 5 MB: far more than a pipe holds, so the command is still writing when the reader goes.
    c = exited(make_container("head -c 5000000 /dev/zero | tr '\\0' x | fold -w 999"))
    proc = gc_popen("logs", c.name)
    assert proc.stdout is not None and proc.stdout.readline() == b"x" * 999 + b"\n"
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=60) == 141  # as a tool that SIGPIPE ended (docker logs too)
    assert proc.stderr is not None and proc.stderr.read() == b""


# ---------------------------------------------------------------------------------------------
# Errors


def test_unknown_container_is_named_with_its_host() -> None:
    out = gc("logs", "gpct-no-such-container")
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"no such container 'gpct-no-such-container' on 'local'" in out.stderr


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--tail", "ten", b"'all'"),
        ("--tail", "-3", b"'all'"),
        ("--since", "yesterday", b"10m"),
    ],
)
def test_bad_tail_or_since_is_a_usage_error(option: str, value: str, says: bytes) -> None:
    out = gc("logs", option, value, "anything")
    assert out.returncode == 2
    assert out.stdout == b""
    assert option.encode() in out.stderr and value.encode() in out.stderr and says in out.stderr
    assert b"Traceback" not in out.stderr


def test_unreachable_engine_is_named(tmp_path: Path) -> None:
    out = gc("--docker-host", f"unix://{tmp_path}/no.sock", "logs", "x", timeout=60)
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"cannot reach the Docker engine of 'local'" in out.stderr


# ---------------------------------------------------------------------------------------------
# Over SSH (the loopback sshd, whose engine is this one)


def test_tail_and_bytes_over_ssh_equal_what_the_container_wrote(
    home: Path, make_container: Callable[..., Any]
) -> None:
    counted = exited(make_container("seq 1 5000"))
    out = gc("logs", "--tail", "5", counted.name, "--host", "loop", home=home)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"4996\n4997\n4998\n4999\n5000\n"
    awkward = exited(make_container(AWKWARD_SH))
    # The global option form: gpuconsole --host loop logs NAME.
    out = gc("--host", "loop", "logs", awkward.name, home=home)
    assert (out.returncode, out.stdout, out.stderr) == (0, AWKWARD_OUT, AWKWARD_ERR)
    binary = exited(make_container(BINARY_SH, **BINARY_SAFE))
    out = gc("logs", binary.name, "--host", "loop", home=home)
    assert (out.returncode, out.stdout, out.stderr) == (0, BINARY_OUT, BINARY_ERR)


def test_unknown_container_over_ssh_names_the_host(home: Path) -> None:
    out = gc("logs", "gpct-no-such-container", "--host", "loop", home=home)
    assert out.returncode == 1
    assert b"no such container 'gpct-no-such-container' on 'loop'" in out.stderr


def test_follow_over_ssh_is_one_login(
    home: Path, private_sshd: Callable[..., Any], make_container: Callable[..., Any]
) -> None:
    sshd = private_sshd()
    remote_setup(home, port=sshd.port)
    c = make_container("for i in $(seq 1 10); do echo line $i; sleep 0.2; done")
    before = logins(sshd.log_path)
    proc = gc_popen("logs", "-f", c.name, "--host", "loop", home=home)
    arrivals = Arrivals(proc)
    assert proc.wait(timeout=60) == 0
    arrivals.join(5)
    assert arrivals.data == b"".join(b"line %d\n" % i for i in range(1, 11))
    assert logins(sshd.log_path) - before == 1

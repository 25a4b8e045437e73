"""docker-py's APIClient over gpuconsole's own connections (gpuconsole.backend.ssh.docker_api).

Real engine, real sshd, no mocks: each test runs over a local unix socket, over
``direct-streamlocal@openssh.com`` channels and over ``docker system dial-stdio`` sessions through
the loopback sshd that ``scripts/dev-env`` starts (``eval "$(scripts/dev-env)"`` exports what is
needed). ``pytest -s`` shows the measured latencies.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpuconsole.backend.ssh import docker_api
from gpuconsole.backend.ssh.docker_api import (
    DEFAULT_API_VERSION,
    Connection,
    api_client,
    close_stream,
    dial_stdio_opener,
    negotiate_version,
    open_error,
    unix_opener,
)

from support import TEST_IMAGE, TEST_LABEL, wait_for

OPENERS = ("unix", "streamlocal", "dial-stdio")
POOL_SIZE = 8
LATENCIES: dict[str, float] = {}


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f'{name} is not set: run the tests after `eval "$(scripts/dev-env)"`, which starts '
            "the test engine and a loopback sshd and exports it",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="module")
def engine_socket() -> str:
    host = _env("DOCKER_HOST")
    if not host.startswith("unix://"):
        pytest.fail(f"DOCKER_HOST must be a unix:// socket for these tests, not {host}")
    return host[len("unix://") :]


def _connect_ssh() -> Any:
    import paramiko

    port = int(_env("GPUCONSOLE_TEST_SSH_PORT"))
    key = _env("GPUCONSOLE_TEST_SSH_KEY")
    host_key_line = Path(_env("GPUCONSOLE_TEST_SSH_HOST_KEY")).read_text().split()
    sock = socket.create_connection(("127.0.0.1", port), 5)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=5)
    server_key = transport.get_remote_server_key()
    if (server_key.get_name(), server_key.get_base64()) != tuple(host_key_line[:2]):
        transport.close()
        pytest.fail("the loopback sshd presented a host key other than the test's", pytrace=False)
    transport.auth_publickey("root", paramiko.Ed25519Key.from_private_key_file(key))
    return transport


@pytest.fixture(scope="module")
def ssh_transport() -> Iterator[Any]:
    transport = _connect_ssh()
    yield transport
    transport.close()


class CountingOpener:
    """Counts the connections an opener makes (and passes its cap on)."""

    def __init__(self, name: str, inner: Callable[[float], Connection]) -> None:
        self.name = name
        self.inner = inner
        self.calls = 0
        self._lock = threading.Lock()
        self.max_connections = getattr(inner, "max_connections", None)

    def __call__(self, timeout: float) -> Connection:
        with self._lock:
            self.calls += 1
        return self.inner(timeout)


def _make_opener(name: str, request: pytest.FixtureRequest, path: str) -> CountingOpener:
    if name == "unix":
        return CountingOpener(name, unix_opener(path))
    transport = request.getfixturevalue("ssh_transport")
    if name == "streamlocal":
        return CountingOpener(name, docker_api.streamlocal_opener(transport, path))
    return CountingOpener(name, dial_stdio_opener(transport))


@pytest.fixture(params=OPENERS)
def opener(request: pytest.FixtureRequest, engine_socket: str) -> CountingOpener:
    return _make_opener(request.param, request, engine_socket)


@pytest.fixture
def client(opener: CountingOpener) -> Iterator[Any]:
    c = api_client(opener, timeout=10, pool_size=POOL_SIZE, base_label=f"test-{opener.name}")
    yield c
    c.close()


@pytest.fixture
def cleanup(docker_client: Any) -> Iterator[list[str]]:
    """Ids of containers a test made through the client under test; removed afterwards."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        with contextlib.suppress(Exception):
            docker_client.api.remove_container(cid, force=True)


def _create(client: Any, cleanup: list[str], command: str, **kwargs: Any) -> str:
    cid = str(
        client.create_container(
            TEST_IMAGE,
            ["sh", "-c", command],
            labels={TEST_LABEL: "1"},
            name=f"gpct-api-{uuid.uuid4().hex[:8]}",
            **kwargs,
        )["Id"]
    )
    cleanup.append(cid)
    return cid


class Reader(threading.Thread):
    """Iterates a stream in a thread, as a poller would."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.items: list[Any] = []
        self.error: BaseException | None = None
        self.changed = threading.Condition()

    def run(self) -> None:
        try:
            for item in self.stream:
                with self.changed:
                    self.items.append(item)
                    self.changed.notify_all()
        except BaseException as exc:
            self.error = exc

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.is_alive():
                    raise AssertionError(
                        f"no matching item within {timeout} s; got {self.items[-5:]!r}, "
                        f"error {self.error!r}"
                    )
                self.changed.wait(min(remaining, 0.2))


def _close_and_join(stream: Any, reader: Reader) -> float:
    started = time.monotonic()
    close_stream(stream)
    reader.join(1.0)
    elapsed = time.monotonic() - started
    assert not reader.is_alive(), "the reader thread still runs 1 s after close_stream"
    return elapsed


def _no_new_threads(before: set[threading.Thread]) -> None:
    wait_for(
        lambda: not [t for t in threading.enumerate() if t not in before and t.is_alive()],
        timeout=2.0,
        what="threads started by the test to end",
    )


# --- basics -----------------------------------------------------------------------------------


def test_the_client_is_built_without_io() -> None:
    def refuse(timeout: float) -> Connection:
        raise AssertionError("the constructor opened a connection")

    c = api_client(refuse, version="1.41")
    assert c.api_version == "1.41"
    assert c.base_url == "http+gpuconsole://ssh"
    c.close()


def test_ping_version_and_negotiation(client: Any, opener: CountingOpener) -> None:
    assert client.ping() is True
    engine = client.version(api_version=False)
    chosen = negotiate_version(client)
    from docker.utils import version_lt

    expected = (
        engine["ApiVersion"]
        if version_lt(engine["ApiVersion"], DEFAULT_API_VERSION)
        else DEFAULT_API_VERSION
    )
    assert chosen == expected == client.api_version
    assert client.version()["ApiVersion"] == engine["ApiVersion"]
    assert opener.calls == 1


def test_negotiation_keeps_ours_or_goes_down_to_the_engines(engine_socket: str) -> None:
    newer = api_client(unix_opener(engine_socket), version="1.99")
    engine = newer.version(api_version=False)
    assert negotiate_version(newer) == engine["ApiVersion"]
    older = api_client(unix_opener(engine_socket), version="1.24")
    assert negotiate_version(older) == "1.24"
    assert older.ping()
    newer.close()
    older.close()


@contextlib.contextmanager
def _canned_engine(version: dict[str, str]) -> Iterator[str]:
    """A tiny HTTP server on a unix socket answering /version as a newer engine would."""
    import http.server
    import json
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = json.dumps(version).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def get_request(self) -> Any:
            request, _ = super().get_request()
            return request, ("local", 0)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "engine.sock")
        server = Server(path, Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield path
        finally:
            server.shutdown()
            server.server_close()


def test_negotiation_goes_up_to_a_newer_engines_minimum() -> None:
    """Docker 29 speaks API 1.44 and up only: 1.41 would fail every call."""
    with _canned_engine({"ApiVersion": "1.52", "MinAPIVersion": "1.44"}) as path:
        client = api_client(unix_opener(path))
        assert negotiate_version(client) == "1.44" == client.api_version
        client.close()


def test_containers_equal_what_the_local_sdk_reports(
    client: Any, docker_client: Any, make_container: Callable[..., Any]
) -> None:
    mine = make_container()
    # Other tests may create containers on the same engine meanwhile: compare until stable.
    for _ in range(10):
        ours = {c["Id"]: c for c in client.containers(all=True)}
        theirs = {c["Id"]: c for c in docker_client.api.containers(all=True)}
        if ours.keys() == theirs.keys():
            break
        time.sleep(0.2)
    assert ours.keys() == theirs.keys()
    assert mine.id in ours
    fields = ("Id", "Names", "Image", "ImageID", "Command", "Created", "Labels", "State")
    for cid, row in ours.items():
        assert {k: row.get(k) for k in fields} == {k: theirs[cid].get(k) for k in fields}


def test_container_lifecycle(client: Any, docker_client: Any, cleanup: list[str]) -> None:
    import docker.errors

    cid = _create(client, cleanup, "sleep 3600")
    assert client.inspect_container(cid)["State"]["Status"] == "created"
    client.start(cid)
    assert client.inspect_container(cid)["State"]["Running"] is True
    assert docker_client.containers.get(cid).status == "running"
    client.stop(cid, timeout=1)
    state = client.inspect_container(cid)["State"]
    assert state["Running"] is False
    assert state["Status"] == "exited"
    client.remove_container(cid)
    with pytest.raises(docker.errors.NotFound):
        client.inspect_container(cid)


def test_logs_whole_and_streamed(client: Any, cleanup: list[str]) -> None:
    cid = _create(client, cleanup, "for i in 1 2 3 4 5; do echo line $i; done")
    client.start(cid)
    assert client.wait(cid, timeout=20)["StatusCode"] == 0
    expected = b"".join(f"line {i}\n".encode() for i in range(1, 6))
    assert client.logs(cid) == expected
    assert b"".join(client.logs(cid, stream=True)) == expected


def test_followed_logs_stop_on_close_stream(client: Any, cleanup: list[str]) -> None:
    before = set(threading.enumerate())
    cid = _create(client, cleanup, "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    client.start(cid)
    stream = client.logs(cid, stream=True, follow=True)
    reader = Reader(stream)
    reader.start()
    reader.wait_for(lambda chunk: b"tick 3" in chunk)
    assert _close_and_join(stream, reader) < 1.0
    assert reader.error is None
    assert client.ping()
    client.remove_container(cid, force=True)
    _no_new_threads(before)


def test_attach_and_exec(client: Any, cleanup: list[str]) -> None:
    cid = _create(client, cleanup, "sleep 0.5; echo hello; sleep 0.3; echo bye; sleep 3600")
    stream = client.attach(cid, stream=True, logs=True)
    reader = Reader(stream)
    reader.start()
    client.start(cid)
    reader.wait_for(lambda _: b"bye\n" in b"".join(reader.items))
    assert b"".join(reader.items) == b"hello\nbye\n"
    _close_and_join(stream, reader)
    exec_id = client.exec_create(cid, ["sh", "-c", "echo out; echo err >&2"])["Id"]
    assert sorted(client.exec_start(exec_id).splitlines()) == [b"err", b"out"]
    exec_id = client.exec_create(cid, ["sh", "-c", "echo out; echo err >&2"])["Id"]
    assert client.exec_start(exec_id, demux=True) == (b"out\n", b"err\n")
    exec_id = client.exec_create(cid, ["sh", "-c", "for i in 1 2 3; do echo $i; done"])["Id"]
    assert b"".join(client.exec_start(exec_id, stream=True)) == b"1\n2\n3\n"
    client.remove_container(cid, force=True)


def test_build_progress_streams(client: Any, docker_client: Any) -> None:
    tag = f"gpuconsole-test/api-build:{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {TEST_IMAGE}\nLABEL {TEST_LABEL}=1\n".encode()
    try:
        progress = list(client.build(fileobj=io.BytesIO(dockerfile), tag=tag, decode=True))
        text = "".join(p.get("stream", "") for p in progress)
        assert "Successfully tagged " + tag in text, progress
        assert client.inspect_image(tag)["Config"]["Labels"][TEST_LABEL] == "1"
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)


def test_close_stream_ends_a_plain_generator(client: Any, docker_client: Any) -> None:
    """Build progress is a bare generator (no CancellableStream): close_stream finds its
    response through the generator's frame."""
    tag = f"gpuconsole-test/api-build:{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {TEST_IMAGE}\nRUN echo started; sleep 5\n".encode()
    progress = client.build(fileobj=io.BytesIO(dockerfile), tag=tag, decode=True, forcerm=True)
    reader = Reader(progress)
    reader.start()
    try:
        reader.wait_for(lambda p: "started" in p.get("stream", ""))
        _close_and_join(progress, reader)
        assert reader.error is None or "Connection broken" in str(reader.error)
        assert client.ping()
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True)


# --- events -----------------------------------------------------------------------------------


def test_events_see_a_start_and_stop_within_1s_of_close_stream(
    client: Any, cleanup: list[str]
) -> None:
    before = set(threading.enumerate())
    stream = client.events(decode=True, filters={"type": "container", "label": TEST_LABEL})
    reader = Reader(stream)
    reader.start()
    cid = _create(client, cleanup, "sleep 3600")
    client.start(cid)
    event = reader.wait_for(lambda e: e.get("status") == "start" and e.get("id") == cid)
    assert event["Actor"]["Attributes"][TEST_LABEL] == "1"
    elapsed = _close_and_join(stream, reader)
    assert elapsed < 1.0
    assert reader.error is None
    close_stream(stream)  # idempotent
    client.remove_container(cid, force=True)
    assert client.ping()
    _no_new_threads(before)


def test_docker_pys_own_cancellable_stream_close_works_here(client: Any) -> None:
    stream = client.events(decode=True)
    reader = Reader(stream)
    reader.start()
    time.sleep(0.2)
    started = time.monotonic()
    stream.close()  # raises for docker-py's own ssh:// transport
    reader.join(1.0)
    assert not reader.is_alive()
    assert time.monotonic() - started < 1.0


# --- connection reuse and concurrency ---------------------------------------------------------


def test_200_sequential_inspects_reuse_connections(
    client: Any, opener: CountingOpener, make_container: Callable[..., Any]
) -> None:
    cid = make_container().id
    for _ in range(200):
        assert client.inspect_container(cid)["Id"] == cid
    print(f"\n{opener.name}: 200 sequential inspects opened {opener.calls} connection(s)")
    assert opener.calls <= POOL_SIZE
    assert opener.calls == 1


def test_24_parallel_inspects_with_an_event_stream(
    client: Any, opener: CountingOpener, make_container: Callable[..., Any], cleanup: list[str]
) -> None:
    ids = [make_container().id for _ in range(4)]
    stream = client.events(decode=True, filters={"type": "container", "label": TEST_LABEL})
    reader = Reader(stream)
    reader.start()
    barrier = threading.Barrier(24)
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def work(n: int) -> None:
        try:
            barrier.wait(10)
            for i in range(5):
                cid = ids[(n + i) % len(ids)]
                assert client.inspect_container(cid)["Id"] == cid
                with lock:
                    done[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert done[0] == 24 * 5
    # the event stream kept working through the burst
    cid = _create(client, cleanup, "sleep 3600")
    client.start(cid)
    reader.wait_for(lambda e: e.get("status") == "start" and e.get("id") == cid)
    _close_and_join(stream, reader)
    assert reader.error is None
    print(f"\n{opener.name}: 24 parallel threads x 5 inspects + events: {opener.calls} connections")


def test_ping_latency(client: Any, opener: CountingOpener) -> None:
    client.ping()
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - started)
    median_ms = statistics.median(samples) * 1000
    LATENCIES[opener.name] = median_ms
    print(f"\n{opener.name}: median of 200 /_ping = {median_ms:.2f} ms ({opener.calls} conn)")
    assert opener.calls == 1
    assert median_ms < 50


def test_ping_latency_of_docker_pys_own_unix_client(engine_socket: str) -> None:
    """The reference for the numbers above, measured the same way in the same run."""
    import docker

    client = docker.APIClient(base_url=f"unix://{engine_socket}", version="1.41")
    client.ping()
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - started)
    median_ms = statistics.median(samples) * 1000
    LATENCIES["docker-py unix (reference)"] = median_ms
    print(f"\ndocker-py's own unix client: median of 200 /_ping = {median_ms:.2f} ms")
    client.close()


# --- dial-stdio sessions ----------------------------------------------------------------------


def _count_processes(argv0: str) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0] == argv0.encode():
            count += 1
    return count


def test_dial_stdio_never_runs_more_than_3_sessions(
    ssh_transport: Any, make_container: Callable[..., Any]
) -> None:
    """12 parallel callers share at most 3 remote `docker system dial-stdio` processes (counted
    on the server: the sshd is local), and sshd never says "no more sessions"."""
    marker = f"gpct-dial-{uuid.uuid4().hex[:8]}"
    sshd_log = Path(_env("GPUCONSOLE_TEST_SSHD_LOG"))
    log_size = sshd_log.stat().st_size if sshd_log.exists() else 0
    stdio = dial_stdio_opener(ssh_transport, command=f"exec -a {marker} docker system dial-stdio")
    assert stdio.max_connections == 3
    client = api_client(stdio, timeout=20)
    cid = make_container().id
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _count_processes(marker))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    errors: list[BaseException] = []
    barrier = threading.Barrier(12)

    def work() -> None:
        try:
            barrier.wait(10)
            for _ in range(10):
                client.inspect_container(cid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    sampler.join(5)
    print(
        f"\ndial-stdio: 12 callers x 10 inspects: {stdio.opened} sessions opened, "
        f"{stdio.peak} at once (opener), {peak[0]} remote processes at once"
    )
    assert errors == []
    assert 1 <= peak[0] <= 3
    assert stdio.peak <= 3
    assert stdio.opened <= 3  # waiting callers reuse the sessions, no churn
    client.close()
    assert stdio.open_now == 0
    wait_for(lambda: _count_processes(marker) == 0, 5, "remote dial-stdio processes to end")
    if sshd_log.exists():
        with sshd_log.open("rb") as f:
            f.seek(log_size)
            assert b"no more sessions" not in f.read()


def test_a_capped_opener_makes_callers_wait_then_time_out(ssh_transport: Any) -> None:
    import requests.exceptions

    stdio = dial_stdio_opener(ssh_transport, max_connections=1)
    client = api_client(stdio, timeout=0.5)
    stream = client.events(decode=True)
    reader = Reader(stream)
    reader.start()
    time.sleep(0.2)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectTimeout, match="stayed busy"):
        client.ping()
    assert 0.4 < time.monotonic() - started < 3
    client.timeout = 10  # calls from now on may start a new dial-stdio process: give it time
    _close_and_join(stream, reader)
    assert stdio.open_now == 0
    assert client.ping()
    # an abandoned stream gives its slot back when it is garbage
    abandoned = client.events(decode=True)
    assert stdio.open_now == 1
    del abandoned
    gc.collect()
    assert stdio.open_now == 0
    assert client.ping()
    client.close()


def test_dial_stdio_failure_names_the_remote_error(ssh_transport: Any) -> None:
    import requests.exceptions

    from gpuconsole.backend.docker.errors_map import engine_errors
    from gpuconsole.backend.errors import HostUnreachable

    stdio = dial_stdio_opener(ssh_transport, command="echo 'docker: not found' >&2; exit 127")
    client = api_client(stdio, timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        client.ping()
    assert "docker: not found" in str(caught.value)
    assert "status 127" in str(caught.value)
    with (
        pytest.raises(HostUnreachable, match="docker: not found"),
        engine_errors("gpu1", "ssh://root@127.0.0.1", 5),
    ):
        client.ping()
    client.close()
    assert stdio.open_now == 0


# --- errors -----------------------------------------------------------------------------------


def test_a_dead_ssh_connection_is_unreachable(engine_socket: str) -> None:
    import paramiko
    import requests.exceptions

    from gpuconsole.backend.docker.errors_map import engine_errors
    from gpuconsole.backend.errors import HostUnreachable

    for kind in ("streamlocal", "dial-stdio"):
        transport = _connect_ssh()
        if kind == "streamlocal":
            opener = docker_api.streamlocal_opener(transport, engine_socket)
        else:
            opener = dial_stdio_opener(transport)
        client = api_client(opener, timeout=5)
        assert client.ping()
        stream = client.events(decode=True)
        reader = Reader(stream)
        reader.start()
        time.sleep(0.2)
        transport.close()
        reader.join(2.0)
        assert not reader.is_alive(), f"{kind}: an event stream outlived its SSH connection"
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            client.ping()
        assert isinstance(open_error(caught.value), paramiko.SSHException), caught.value
        with pytest.raises(HostUnreachable), engine_errors("gpu1", "ssh://127.0.0.1", 5):
            client.ping()
        client.close()


def test_an_engine_that_does_not_answer_is_a_timeout() -> None:
    import requests.exceptions

    from gpuconsole.backend.docker.errors_map import engine_errors
    from gpuconsole.backend.errors import HostUnreachable

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mute.sock")
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mute.bind(path)
        mute.listen(8)  # accepts connections (backlog), never answers
        client = api_client(unix_opener(path), timeout=0.5)
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            client.ping()
        assert time.monotonic() - started < 3
        with (
            pytest.raises(HostUnreachable, match=r"did not answer within 0\.5 s"),
            engine_errors("local", path, 0.5),
        ):
            client.ping()
        client.close()
        mute.close()


def test_an_opener_that_times_out_or_fails_is_mapped(tmp_path: Path) -> None:
    import requests.exceptions

    from gpuconsole.backend.docker.errors_map import engine_errors
    from gpuconsole.backend.errors import HostUnreachable

    class Refused(Exception):
        pass

    def slow(timeout: float) -> Connection:
        raise TimeoutError(f"no answer within {timeout:g} s")

    def refused(timeout: float) -> Connection:
        raise Refused("administratively prohibited")

    with pytest.raises(requests.exceptions.ConnectTimeout, match="timed out"):
        api_client(slow, timeout=1).ping()
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        api_client(refused, timeout=1).ping()
    assert isinstance(open_error(caught.value), Refused)
    assert "administratively prohibited" in str(caught.value)
    missing = api_client(unix_opener(str(tmp_path / "none.sock")), timeout=1)
    with (
        pytest.raises(HostUnreachable, match="no engine is listening"),
        engine_errors("local", "none.sock", 1),
    ):
        missing.ping()


def test_module_does_not_load_docker_or_paramiko() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gpuconsole.backend.ssh; before = set(sys.modules); "
        "import gpuconsole.backend.ssh.docker_api; new = set(sys.modules) - before; "
        "print(sorted(n for n in new if n.split('.')[0] in "
        "('docker', 'paramiko', 'requests', 'urllib3', 'textual', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def teardown_module() -> None:
    if LATENCIES:
        print(
            "\nmedian /_ping latency: " + ", ".join(f"{k} {v:.2f} ms" for k, v in LATENCIES.items())
        )

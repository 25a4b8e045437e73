"""Shared fixtures: the real Docker engine the test set-up starts, and containers on it.

Engine tests need `scripts/test` (or any reachable engine in DOCKER_HOST); without one they fail
with a message saying so, rather than skipping silently.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import TEST_IMAGE, TEST_LABEL, engine_url

#: The loopback sshd and private sshd instances (the "remote host" of the SSH tests).
pytest_plugins = ["sshfixtures"]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker
    import docker.errors

    try:
        client = docker.DockerClient(base_url=engine_url(), version="auto", timeout=30)
        client.images.get(TEST_IMAGE)
    except Exception as exc:
        pytest.fail(
            f"no usable Docker engine at {engine_url()} with image {TEST_IMAGE} ({exc}); "
            "run the suite through scripts/test, which starts one",
            pytrace=False,
        )
    yield client
    for c in client.containers.list(all=True, filters={"label": TEST_LABEL}):
        # Gone already, or being removed by its own test's teardown: either way, it goes.
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            c.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def memlock_refused(docker_client: Any) -> bool:
    """Does this engine refuse ``--ulimit memlock=-1``? Asked of the engine itself (a container
    that tries it), so tests of the adaptive defaults do not take the probe's word for it.

    True here (the CI engine has no CAP_SYS_RESOURCE), False on an engine running as root.
    """
    import docker.errors
    from docker.types import Ulimit

    for _ in range(3):  # another suite's clean-up may remove it under us: try again
        container = docker_client.containers.create(
            TEST_IMAGE,
            ["true"],
            labels={TEST_LABEL: "1", "gpct-memlock-oracle": "1"},
            ulimits=[Ulimit(name="memlock", soft=-1, hard=-1)],
        )
        try:
            container.start()
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            assert "rlimit" in str(exc), exc
            return True
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        return False
    pytest.fail("could not ask the engine whether it sets memlock=-1", pytrace=False)


@pytest.fixture
def make_container(docker_client: Any) -> Iterator[Callable[..., Any]]:
    """Create (and by default start) a labelled busybox container; removed after the test."""
    made: list[Any] = []

    def make(
        command: str | list[str] = "sleep 3600",
        name: str | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> Any:
        labels = {TEST_LABEL: "1", **kwargs.pop("labels", {})}
        name = name or f"gpct-{uuid.uuid4().hex[:8]}"
        cmd = ["sh", "-c", command] if isinstance(command, str) else command
        container = docker_client.containers.create(
            TEST_IMAGE, cmd, name=name, labels=labels, **kwargs
        )
        made.append(container)
        if start:
            container.start()
        container.reload()
        return container

    yield make
    for c in made:
        with contextlib.suppress(Exception):
            c.remove(force=True)


@pytest.fixture
def local_host() -> Iterator[Any]:
    from gpuconsole.backend.hosts.open import local_host

    host = local_host(engine_url(), gpu=False)
    yield host.engine
    host.close()


@pytest.fixture
def private_engine(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Any]:
    """A dockerd of the test's own (a test may stop, kill or freeze it) holding the test image
    and one stopped container named ``survivor``."""
    from private_engine import PrivateEngine

    why = PrivateEngine.usable()
    if why:
        pytest.skip(why)
    # A short path: unix socket paths are limited to 108 bytes.
    root = Path(tmp_path_factory.mktemp("eng", numbered=True))
    engine = PrivateEngine(root)
    engine.start()
    try:
        import docker

        private = docker.DockerClient(base_url=engine.url, version="auto", timeout=60)
        private.images.load(b"".join(docker_client.images.get(TEST_IMAGE).save(named=True)))
        private.containers.create(
            TEST_IMAGE, ["sleep", "3600"], name="survivor", network_mode="none"
        )
        private.close()
        yield engine
    finally:
        engine.stop()

"""Translate docker-py / requests exceptions into the backend's typed errors, with a fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

from gpuconsole.backend.errors import (
    ActionRejected,
    ContainerNotFound,
    DockerApiError,
    GpuconsoleError,
    HostUnreachable,
)


def unreachable(host: str, address: str, exc: BaseException, timeout: float) -> HostUnreachable:
    """Name the likely cause: no engine, no permission, or an engine that does not answer."""
    text = str(exc)
    lowered = text.lower()
    if "permission denied" in lowered:
        reason = "permission denied on the engine's socket"
        hint = (
            "add your user to the docker group (sudo usermod -aG docker $USER, then log in "
            "again) or point DOCKER_HOST at an engine you may use"
        )
    elif "timed out" in lowered or "timeout" in lowered:
        reason = f"the engine did not answer within {timeout:g} s"
        hint = "the engine may be overloaded or hung; check `systemctl status docker`"
        return HostUnreachable(host, address, reason, hint, timed_out=True)
    elif (
        "no such file" in lowered
        or "connection refused" in lowered
        or "connectionrefused" in lowered
        or "filenotfound" in lowered
    ):
        reason = "no engine is listening there"
        hint = (
            "start the engine (sudo systemctl start docker) or set DOCKER_HOST / --docker-host "
            "to the engine's address"
        )
    elif any(m in lowered for m in _CLOSED) and "on the remote host ended" not in lowered:
        # (A remote `docker system dial-stdio` that failed says why: that text, below, wins.)
        reason = "the engine closed the connection (it stopped or restarted)"
        hint = "check the engine (systemctl status docker); the console retries by itself"
    else:
        reason = text.splitlines()[0] if text else type(exc).__name__
        hint = "check that the Docker engine is running and DOCKER_HOST is right"
    return HostUnreachable(host, address, reason, hint)


#: How a connection the engine dropped mid-answer reads, across requests, urllib3 and http.client.
_CLOSED = (
    "connection aborted",
    "remotedisconnected",
    "connection reset",
    "connection broken",
    "incompleteread",
    "broken pipe",
)


def _runtime_down(message: str) -> bool:
    """dockerd answered, but its container runtime (containerd) did not."""
    # grpc's words for a runtime that is not there: dialing its socket failed, or the
    # connection to it closed ("connection closed: unavailable").
    return (
        "containerd.sock" in message
        or 'desc = "transport' in message
        or message.rstrip().endswith(": unavailable")
    )


def _explanation(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation)
    return str(exc)


@contextlib.contextmanager
def engine_errors(
    host: str, address: str, timeout: float, ref: str | None = None, action: str | None = None
) -> Iterator[None]:
    """Run one engine call; re-raise anything it throws as a GpuconsoleError."""
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    try:
        yield
    except GpuconsoleError:
        raise
    except docker.errors.NotFound as exc:
        if ref is not None and "container" in _explanation(exc).lower():
            raise ContainerNotFound(ref, host) from exc
        raise DockerApiError(_explanation(exc), 404) from exc
    except docker.errors.APIError as exc:
        status = exc.status_code
        what = f"{action} {ref}: " if action and ref else ""
        message = what + _explanation(exc)
        if status == 409 or (status == 304):
            raise ActionRejected(message, status) from exc
        if _runtime_down(message):
            message = (
                f"{what}the engine's container runtime (containerd) is not answering — dockerd "
                "restarts it within about 10 s; try again then"
            )
        raise DockerApiError(message, status) from exc
    except (
        requests.exceptions.RequestException,
        docker.errors.DockerException,
        urllib3.exceptions.HTTPError,
        OSError,
    ) as exc:
        # Over SSH the connection may fail before HTTP does (host down, key not trusted):
        # that error says more than the transport's wrapper around it.
        from gpuconsole.backend.ssh.docker_api import open_error

        cause = open_error(exc)
        if isinstance(cause, HostUnreachable):
            raise cause from exc
        raise unreachable(host, address, exc, timeout) from exc


def raise_unreachable(host: str, address: str, exc: BaseException, timeout: float) -> NoReturn:
    raise unreachable(host, address, exc, timeout) from exc

"""``gpuconsole serve`` over plain HTTP and websockets (aiohttp's client): who gets in, what
the logs keep, how many consoles run, and that each ends with its tab or its server."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from conftest import Served, alive

from support import engine_url, run_cli, wait_for

pytestmark = pytest.mark.engine


def cookie_of(served: Served) -> dict[str, str]:
    return {f"gpuconsole-{served.port}": served.token}


async def get(url: str, **kwargs: object) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        response = await http.get(url, allow_redirects=False, **kwargs)  # type: ignore[arg-type]
        await response.read()
        return response


async def open_console(served: Served, origin: str | None = None, **kwargs: object) -> object:
    """A websocket as the page opens it: the cookie, the page's own Origin."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    headers = {
        "Origin": origin or served.base,
        "Cookie": f"gpuconsole-{served.port}={served.token}",
    }
    try:
        ws = await http.ws_connect(
            f"{served.base}/ws?width=120&height=40",
            headers=headers,
            **kwargs,  # type: ignore[arg-type]
        )
    except Exception:
        await http.close()
        raise
    ws._gpuconsole_http = http  # type: ignore[attr-defined]
    return ws


async def screen_text(ws: object, needle: str, timeout: float = 20) -> str:
    """What the console drew, until ``needle`` shows in it."""
    seen = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while needle.encode() not in seen:
        message = await asyncio.wait_for(ws.receive(), deadline - loop.time())  # type: ignore[attr-defined]
        if message.type == aiohttp.WSMsgType.BINARY:
            seen += message.data
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            break
    return seen.decode("utf-8", "replace")


async def close(ws: object) -> None:
    await ws.close()  # type: ignore[attr-defined]
    await ws._gpuconsole_http.close()  # type: ignore[attr-defined]


async def test_token_becomes_a_cookie_and_nothing_opens_without_it(
    serve: Callable[..., Served],
) -> None:
    served = serve()
    # Nothing at all: 401 with what to do; a wrong token: 403.
    bare = await get(served.base + "/")
    assert bare.status == 401
    assert "open the URL with the token" in await bare.text()
    assert (await get(served.base + "/?token=not-the-token")).status == 403
    assert (await get(served.base + "/assets/textual.js")).status == 401

    # The printed URL: a cookie that scripts cannot read and other sites cannot send, and a
    # redirect to the clean URL (other query parameters kept).
    first = await get(served.url + "&fontsize=20")
    assert first.status == 303
    assert first.headers["Location"] == "/?fontsize=20"
    set_cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert served.token in set_cookie

    page = await get(served.base + "/?fontsize=20", cookies=cookie_of(served))
    assert page.status == 200
    body = await page.text()
    assert 'data-font-size="20"' in body
    assert served.token not in body
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert (
        "https://" not in body
    )  # nothing loaded from elsewhere (textual-serve's page used Google fonts)
    script = await get(served.base + "/assets/textual.js", cookies=cookie_of(served))
    assert script.status == 200 and b"window.gpuconsoleTerminal" in await script.read()

    wrong = await get(served.base + "/", cookies={f"gpuconsole-{served.port}": "x" * 43})
    assert wrong.status == 403


async def test_websocket_needs_the_cookie_and_the_pages_own_origin(
    serve: Callable[..., Served],
) -> None:
    served = serve()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_cookie:
            await http.ws_connect(f"{served.base}/ws", headers={"Origin": served.base})
        assert no_cookie.value.status == 401
    # Another site's page in the same browser sends the cookie along: refused by its Origin.
    with pytest.raises(aiohttp.WSServerHandshakeError) as elsewhere:
        await open_console(served, origin="http://evil.example")
    assert elsewhere.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as other_port:
        await open_console(served, origin=f"http://127.0.0.1:{served.port + 1}")
    assert other_port.value.status == 403
    assert served.session_pids() == []  # no console was started for any of them


async def test_a_tab_gets_the_console_and_its_end_ends_the_console(
    serve: Callable[..., Served], make_container: Callable[..., object]
) -> None:
    container = make_container(name=f"web-{os.getpid()}")
    served = serve(
        before=(
            "--gpu-replay",
            str(Path(__file__).parent.parent / "fixtures/gpu/h100/nvml-recording-h100.jsonl"),
        )
    )
    ws = await open_console(served)
    text = await screen_text(ws, container.name)  # type: ignore[attr-defined]
    assert container.name in text  # type: ignore[attr-defined]
    [pid] = served.session_pids()
    assert alive(pid)
    await close(ws)
    wait_for(lambda: not alive(pid), 10, "the console to end with its tab")
    wait_for(lambda: "closed (0 open)" in served.log(), 5, "the server to count it closed")


async def test_session_limit(serve: Callable[..., Served]) -> None:
    served = serve("--max-sessions", "1")
    first = await open_console(served)
    wait_for(lambda: len(served.session_pids()) == 1, 10, "the first console")
    with pytest.raises(aiohttp.WSServerHandshakeError) as second:
        await open_console(served)
    assert second.value.status == 503
    await close(first)
    wait_for(lambda: "closed (0 open)" in served.log(), 10, "the first console to close")
    third = await open_console(served)
    wait_for(lambda: len(served.session_pids()) == 2, 10, "a console for the next tab")
    await close(third)


async def test_the_token_is_never_logged_nor_given_to_the_console(
    serve: Callable[..., Served],
) -> None:
    served = serve("--read-only")
    await get(served.url)
    await get(served.base + "/?token=a-wrong-guess")
    ws = await open_console(served)
    wait_for(lambda: served.session_pids() != [], 10, "a console")
    [pid] = served.session_pids()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    await close(ws)
    log = served.log()
    assert "GET / 303" in log and "GET / 403" in log  # the access log is there...
    assert served.token not in log and "a-wrong-guess" not in log  # ...without any token
    assert served.token.encode() not in b" ".join(argv) + environ
    assert b"--read-only" in argv  # serve --read-only serves the read-only console


def test_server_stop_ends_every_console(serve: Callable[..., Served]) -> None:
    served = serve()

    async def two_tabs() -> list[object]:
        return [await open_console(served), await open_console(served)]

    loop = asyncio.new_event_loop()
    tabs = loop.run_until_complete(two_tabs())
    wait_for(lambda: len(served.session_pids()) == 2, 15, "two consoles")
    pids = served.session_pids()
    assert served.stop() == 0
    for pid in pids:
        assert not alive(pid), "a console outlived its server's SIGTERM"
    for ws in tabs:
        loop.run_until_complete(close(ws))
    loop.close()


def test_a_console_whose_server_is_killed_quits(serve: Callable[..., Served]) -> None:
    served = serve()
    loop = asyncio.new_event_loop()
    ws = loop.run_until_complete(open_console(served))
    loop.run_until_complete(screen_text(ws, "gpuconsole"))
    [pid] = served.session_pids()
    served.process.send_signal(signal.SIGKILL)  # no chance to stop its consoles
    served.process.wait()
    wait_for(lambda: not alive(pid), 10, "an orphaned console to quit on its own")
    loop.run_until_complete(close(ws))
    loop.close()


async def test_https_with_a_certificate(serve: Callable[..., Served], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    served = serve("--tls-cert", str(cert), "--tls-key", str(key))
    assert served.url.startswith("https://127.0.0.1:")
    first = await get(served.url, ssl=False)
    assert first.status == 303
    assert "Secure" in first.headers["Set-Cookie"]  # the cookie never travels over plain HTTP
    assert (await get(served.base + "/", ssl=False, cookies=cookie_of(served))).status == 200
    ws = await open_console(served, ssl=False)  # Origin https://..., as the page sends it
    assert "gpuconsole" in await screen_text(ws, "gpuconsole")
    await close(ws)
    half = run_cli("serve", "--tls-cert", str(cert), timeout=60)
    assert half.returncode == 2 and "--tls-cert and --tls-key go together" in half.stderr
    wrong = run_cli("serve", "--tls-cert", str(key), "--tls-key", str(key), timeout=60)
    assert wrong.returncode == 2 and "cannot use --tls-cert" in wrong.stderr


def test_exposure_beyond_loopback_is_spelled_out_and_warned() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gpuconsole", "serve", "--bind", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DOCKER_HOST": engine_url()},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.match(rf"^http://{re.escape(socket.gethostname())}:\d+/\?token=", url)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "warning: serving on 0.0.0.0" in stderr and "ssh -L" in stderr
    assert "over plain HTTP (--tls-cert/--tls-key serve HTTPS)" in stderr


def test_bad_options_say_what_to_do() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        taken = run_cli("serve", "--port", str(busy.getsockname()[1]), timeout=60)
    finally:
        busy.close()
    assert taken.returncode == 1
    assert "cannot listen on 127.0.0.1" in taken.stderr and "--port" in taken.stderr
    assert taken.stdout == ""  # no URL printed for a server that is not there
    bad = run_cli("serve", "--port", "70000", timeout=60)
    assert bad.returncode == 2 and "70000 is outside 0..65535" in bad.stderr
    missing = run_cli("serve", "--gpu-replay", "/nonexistent.jsonl", timeout=60)
    assert missing.returncode == 2 and "--gpu-replay" in missing.stderr

"""The web server: the page, its assets and one websocket per tab, all behind the token.

Every response carries headers that keep the console to itself: no framing (a framed console
could be clicked by another page), no referrer, a content policy that allows nothing from
elsewhere. The access log is our own and writes paths only — aiohttp's default logs the query
string, which holds the token on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from gpuconsole.web.assets import assets, page, refusal_page
from gpuconsole.web.auth import TOKEN_PARAM, Gate, Refusal, check_origin
from gpuconsole.web.session import ConsoleSession

log = logging.getLogger("gpuconsole.serve")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class ServeConfig:
    """What ``gpuconsole serve`` was asked for; ``console_argv`` runs one tab's console."""

    console_argv: tuple[str, ...]
    gate: Gate
    max_sessions: int
    title: str = "gpuconsole"
    #: Seconds a closing console gets to quit before it is terminated (then killed).
    stop_grace: float = 3.0


def _to_int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(text or default), low), high)
    except ValueError:
        return default


def _refused(refusal: Refusal) -> web.Response:
    return web.Response(
        status=refusal.status,
        text=refusal_page(refusal.status, refusal.reason),
        content_type="text/html",
    )


class ConsoleServer:
    """The routes and the live sessions of one ``gpuconsole serve``."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.sessions: set[ConsoleSession] = set()

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._log_and_protect])
        app.router.add_get("/", self.index)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/assets/{name}", self.asset)
        app.on_shutdown.append(self._stop_all)
        return app

    # --- middleware -----------------------------------------------------------------------------
    @web.middleware
    async def _log_and_protect(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            exc.headers.update(SECURITY_HEADERS)
            raise
        finally:
            # The path only: the query may hold the token.
            log.info(
                "%s %s %d %.0f ms",
                request.method,
                request.path,
                status,
                (time.monotonic() - started) * 1000,
            )
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    # --- routes ---------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        gate = self.config.gate
        offered = request.query.get(TOKEN_PARAM)
        if offered is not None:
            if refusal := gate.check_token(offered):
                return _refused(refusal)
            rest = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
            clean = "/" + ("?" + urlencode(rest) if rest else "")
            response = web.Response(status=303, headers={"Location": clean})
            # No script can read it, no other site can send it.
            response.set_cookie(
                gate.cookie_name,
                gate.token,
                httponly=True,
                samesite="Strict",
                path="/",
                secure=gate.secure or None,
            )
            response.headers["Cache-Control"] = "no-store"
            return response
        if refusal := gate.check_cookie(dict(request.cookies)):
            return _refused(refusal)
        font_size = _to_int(request.query.get("fontsize"), 16, 6, 48)
        response = web.Response(text=page(self.config.title, font_size), content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    async def asset(self, request: web.Request) -> web.StreamResponse:
        if refusal := self.config.gate.check_cookie(dict(request.cookies)):
            return _refused(refusal)
        found = assets().get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        response = web.Response(body=found.body, content_type=found.content_type)
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        refusal = self.config.gate.check_cookie(dict(request.cookies)) or check_origin(
            request.headers.get("Origin"), request.host, request.scheme
        )
        if refusal:
            return _refused(refusal)
        if len(self.sessions) >= self.config.max_sessions:
            return _refused(
                Refusal(
                    503,
                    f"{len(self.sessions)} consoles are open, the most this server allows "
                    "(serve --max-sessions); close a tab and reload",
                )
            )
        width = _to_int(request.query.get("width"), 80, 10, 1000)
        height = _to_int(request.query.get("height"), 24, 5, 500)
        socket = web.WebSocketResponse(heartbeat=15)
        await socket.prepare(request)
        session = ConsoleSession(
            self.config.console_argv,
            send_bytes=socket.send_bytes,
            send_text=socket.send_str,
            close=socket.close,
        )
        self.sessions.add(session)
        try:
            await session.start(width, height)
            log.info("session %s opened (%d open)", session.pid, len(self.sessions))
            await self._relay_browser(socket, session)
        except asyncio.CancelledError:
            pass
        finally:
            await session.stop(self.config.stop_grace)
            self.sessions.discard(session)
            log.info("session %s closed (%d open)", session.pid, len(self.sessions))
            with contextlib.suppress(Exception):
                await socket.close()
        return socket

    async def _relay_browser(self, socket: web.WebSocketResponse, session: ConsoleSession) -> None:
        """The tab's keys, mouse and size to the console, until the tab goes."""
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
                kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            except (ValueError, TypeError, IndexError, KeyError):
                continue  # not ours to crash on: a malformed frame is dropped
            if kind == "stdin" and isinstance(data, str):
                await session.send_input(data)
            elif kind == "resize" and isinstance(data, dict):
                await session.send_meta(
                    {
                        "type": "resize",
                        "width": _to_int(str(data.get("width")), 80, 10, 1000),
                        "height": _to_int(str(data.get("height")), 24, 5, 500),
                    }
                )
            elif kind == "ping":
                await socket.send_json(["pong", data])
            elif kind in ("focus", "blur"):
                await session.send_meta({"type": kind})

    async def _stop_all(self, _app: web.Application) -> None:
        await asyncio.gather(
            *(s.stop(self.config.stop_grace) for s in list(self.sessions)), return_exceptions=True
        )


def serve(
    make_config: Callable[[int], ServeConfig],
    bind: str,
    port: int,
    on_ready: Callable[[int], None],
    tls: ssl.SSLContext | None = None,
) -> None:
    """Listen on ``bind``:``port`` (0 picks a free port), then serve until SIGINT/SIGTERM.

    The socket is bound before anything else so the config can name its cookie after the real
    port (two servers on one machine must not overwrite each other's cookie) and ``on_ready``
    prints a URL that already answers. Raises OSError when the address cannot be bound."""
    listener = _listen(bind, port)
    asyncio.run(_serve(make_config(listener.getsockname()[1]), listener, on_ready, tls))


def _listen(bind: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError:
        listener.close()
        raise
    return listener


async def _serve(
    config: ServeConfig,
    listener: socket.socket,
    on_ready: Callable[[int], None],
    tls: ssl.SSLContext | None,
) -> None:
    server = ConsoleServer(config)
    runner = web.AppRunner(server.application(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, listener, ssl_context=tls).start()
        on_ready(listener.getsockname()[1])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()

"""One browser tab's console: a ``gpuconsole`` process under Textual's web driver.

The web driver speaks a small framed protocol over the child's stdin and stdout (textual-serve
calls it "ganglion"): after a ``__GANGLION__`` line, each packet is a type byte — ``D`` terminal
output, ``M`` JSON meta, ``P`` packed binary (file deliveries, which the console does not use) —
and a 4-byte big-endian length. The server writes ``D`` packets of keyboard and mouse input and
``M`` packets for resize, focus, blur and quit.

The session ends with its tab: ``stop`` asks the app to quit, then terminates and kills it if
it does not go — a console stuck on a dead host must not outlive the tab that opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

log = logging.getLogger("gpuconsole.serve")

PRELUDE = b"__GANGLION__\n"
#: Lines the child may print before its prelude (warnings) before it counts as not starting.
PRELUDE_LINES = 20
#: What of the child's stderr is kept to explain a failed start.
STDERR_KEEP = 16 * 1024


def encode_packet(kind: bytes, payload: bytes) -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


def child_environment(base: Mapping[str, str], width: int, height: int) -> dict[str, str]:
    """The console's environment: the server's own, with Textual told to drive a browser."""
    env = dict(base)
    env.update(
        TEXTUAL_DRIVER="textual.drivers.web_driver:WebDriver",
        TEXTUAL_FPS="60",
        TEXTUAL_COLOR_SYSTEM="truecolor",
        TERM_PROGRAM="textual",
        COLUMNS=str(width),
        ROWS=str(height),
    )
    return env


class ConsoleSession:
    """Runs ``argv`` for one websocket and relays between the two."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        send_bytes: Callable[[bytes], Awaitable[None]],
        send_text: Callable[[str], Awaitable[None]],
        close: Callable[[], Awaitable[object]],
    ) -> None:
        self.argv = list(argv)
        self._send_bytes = send_bytes
        self._send_text = send_text
        self._close = close
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._stderr = bytearray()
        self.started = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self, width: int, height: int) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(os.environ, width, height),
            start_new_session=True,  # a Ctrl-C at the server's terminal is the server's alone
        )
        self._pump = asyncio.create_task(self._relay())

    async def send_input(self, text: str) -> None:
        await self._write(encode_packet(b"D", text.encode("utf-8")))

    async def send_meta(self, meta: dict[str, object]) -> None:
        await self._write(encode_packet(b"M", json.dumps(meta).encode("utf-8")))

    async def _write(self, packet: bytes) -> None:
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            return
        try:
            process.stdin.write(packet)
            await process.stdin.drain()
        except (ConnectionError, RuntimeError):
            pass  # the console has gone; the relay notices and closes the tab

    async def _relay(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None and process.stderr is not None
        stderr_task = asyncio.create_task(self._keep_stderr(process.stderr))
        try:
            if await self._await_prelude(process.stdout):
                self.started = True
                await self._relay_packets(process.stdout)
            else:
                await process.wait()
                await stderr_task
                await self._say_failed(process.returncode)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            stderr_task.cancel()
            with contextlib.suppress(Exception):
                await self._close()

    async def _await_prelude(self, stdout: asyncio.StreamReader) -> bool:
        for _ in range(PRELUDE_LINES):
            line = await stdout.readline()
            if not line:
                return False
            if line == PRELUDE:
                return True
        return False

    async def _relay_packets(self, stdout: asyncio.StreamReader) -> None:
        while True:
            header = await stdout.readexactly(5)
            payload = await stdout.readexactly(int.from_bytes(header[1:], "big"))
            kind = header[:1]
            if kind == b"D":
                await self._send_bytes(payload)
            elif kind == b"M":
                await self._on_meta(json.loads(payload))
            # b"P": packed file deliveries — the console never delivers files to the browser

    async def _on_meta(self, meta: dict[str, object]) -> None:
        kind = meta.get("type")
        if kind == "exit":
            await self._close()
        elif kind == "open_url":
            url, new_tab = meta.get("url"), meta.get("new_tab", True)
            await self._send_text(json.dumps(["open_url", {"url": url, "new_tab": new_tab}]))

    async def _keep_stderr(self, stderr: asyncio.StreamReader) -> None:
        while chunk := await stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-STDERR_KEEP]

    async def _say_failed(self, code: int | None) -> None:
        """The console never started (bad config, a host error): show why in the tab itself."""
        text = self._stderr.decode("utf-8", "replace").strip() or f"exit code {code}"
        log.warning("a browser session's console did not start: %s", text.splitlines()[-1])
        message = "gpuconsole did not start:\r\n\r\n" + text.replace("\n", "\r\n") + "\r\n"
        with contextlib.suppress(Exception):
            await self._send_bytes(message.encode("utf-8"))

    async def stop(self, grace: float = 3.0) -> None:
        """Ask the console to quit; terminate, then kill it if it will not."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            await self.send_meta({"type": "quit"})
            for signal_it in (None, process.terminate, process.kill):
                if signal_it is not None:
                    with contextlib.suppress(ProcessLookupError):
                        signal_it()
                try:
                    await asyncio.wait_for(process.wait(), grace)
                    break
                except asyncio.TimeoutError:
                    continue
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump

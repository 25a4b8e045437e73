"""Handing the terminal to an interactive session (a container shell, a host shell, ssh) and
taking it back with the console exactly as it was.

The session is opened in a worker thread first — connecting may take seconds on a slow host,
and a refusal (container stopped, no such user, host down) is shown inline without the screen
ever flickering. Only a session that is ready gets the terminal: the monitors pause (nothing to
draw, nothing to ask the hosts), the app suspends, the bridge runs on the loop's thread, and on
the way back the monitors resume and one line says how the session ended.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from gpuconsole.backend.errors import GpuconsoleError

if TYPE_CHECKING:
    from textual.app import App

    from gpuconsole.backend.hosts.machine import Pty
    from gpuconsole.backend.shells.bridge import SessionEnd
    from gpuconsole.backend.shells.session import ShellRequest
    from gpuconsole.monitor.fleet import Fleet

NO_TERMINAL = (
    "This console has no terminal to hand over (a browser or test session) — run "
    "`gpuconsole shell` (or ssh) in a terminal instead"
)


def open_shell(app: App[object], fleet: Fleet, request: ShellRequest) -> None:
    """Open ``request`` off the loop, then hand it the terminal; errors become notifications."""
    if app.is_web:  # a browser tab has no terminal to give: say so before opening anything
        app.notify(NO_TERMINAL, title="Shell", severity="warning", timeout=8)
        return

    def body() -> None:
        from gpuconsole.backend.shells.session import open_session

        cols, rows = app.size.width, app.size.height
        try:
            session = open_session(request, max(cols, 20), max(rows, 5))
        except GpuconsoleError as exc:
            app.call_from_thread(app.notify, str(exc), title="Shell", severity="error")
            return
        app.call_from_thread(hand_over, app, fleet, request, session)

    app.notify(f"Opening a shell in {request.where}…", timeout=2)
    app.run_worker(body, thread=True, group="shell", exit_on_error=False)


def hand_over(app: App[object], fleet: Fleet, request: ShellRequest, session: Pty) -> None:
    """On the loop's thread: give the terminal to ``session`` until it ends, then say how."""
    from gpuconsole.backend.shells.bridge import attach
    from gpuconsole.backend.shells.session import describe_end, refusal

    end = run_suspended(app, fleet, lambda: attach(session), session.close)
    if end is None:
        return
    refused = refusal(request, session)
    if refused is not None:
        app.notify(str(refused), title="Shell", severity="error", timeout=10)
        return
    ok = end.exit_code == 0
    app.notify(
        describe_end(request, end), title="Shell", severity="information" if ok else "warning"
    )


def run_suspended(
    app: App[object],
    fleet: Fleet,
    interactive: Callable[[], SessionEnd],
    cleanup: Callable[[], None] = lambda: None,
) -> SessionEnd | None:
    """Run ``interactive`` with the app suspended and the monitors paused; None (and a
    notification) where there is no terminal to give."""
    from textual.app import SuspendNotSupported

    fleet.pause()
    try:
        with app.suspend():
            return interactive()
    except SuspendNotSupported:
        app.notify(NO_TERMINAL, title="Shell", severity="warning", timeout=8)
        return None
    except Exception as exc:  # the bridge itself failed (a terminal error): never crash
        app.notify(f"the session failed: {exc}", title="Shell", severity="error")
        return None
    finally:
        # Closing may hang up a program still running (API calls, a /proc read on the host):
        # never on the loop, whose host may be the one that stopped answering.
        threading.Thread(target=_quietly, args=(cleanup,), name="shell-close", daemon=True).start()
        fleet.resume()


def _quietly(call: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        call()

"""``o``: reach what a launch serves — its Jupyter in the browser, or an ssh session into it.

The launch is read from the engine (its labels are the source of truth) off the loop. A remote
launch is reached through the host's tunnel; the ssh session gets the terminal the same way a
shell does (``handover``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpuconsole.backend.errors import GpuconsoleError

if TYPE_CHECKING:
    from textual.app import App

    from gpuconsole.backend.hosts.host import Host
    from gpuconsole.backend.launch.launcher import LaunchResult
    from gpuconsole.backend.shells.bridge import SessionEnd
    from gpuconsole.backend.shells.ssh_launch import SshLaunch
    from gpuconsole.monitor.fleet import Fleet


def open_launch(
    app: App[object],
    fleet: Fleet,
    host: Host,
    container_id: str,
    name: str,
    launch: LaunchResult | None = None,
) -> None:
    """Open ``launch`` (read from the engine when not given) the way its variant is reached."""

    def body() -> None:
        from gpuconsole.backend.launch import describe_launch

        found = launch
        try:
            if found is None:
                found = describe_launch(host.engine, container_id)
        except GpuconsoleError as exc:
            app.call_from_thread(app.notify, str(exc), title="Open", severity="error")
            return
        if found.url:
            _open_url(app, host, container_id, found.url)
        elif found.ssh_command:
            _ssh_into(app, fleet, host, container_id, found)
        else:
            app.call_from_thread(
                app.notify,
                f"{name} is not a Jupyter or SSH launch: nothing to open — e opens a shell in it",
                title="Open",
                severity="warning",
            )

    app.run_worker(body, thread=True, group="open", exit_on_error=False)


def local_port(host: Host, container_id: str, port: int) -> int:
    """The port to use here for ``port`` on the host's loopback (a tunnel for a remote host)."""
    if host.is_local:
        return port
    return host.tunnels.open(f"{container_id}:{port}", port).local_port


def _open_url(app: App[object], host: Host, container_id: str, url: str) -> None:
    from urllib.parse import urlsplit

    from gpuconsole.backend.launch.desktop import open_in_browser

    remote = urlsplit(url).port
    if remote is not None and not host.is_local:
        try:
            here = local_port(host, container_id, remote)
        except OSError as exc:
            app.call_from_thread(app.notify, f"no tunnel: {exc}", title="Open", severity="error")
            return
        url = url.replace(f":{remote}/", f":{here}/", 1)
    if app.is_web:
        # Served to a browser (gpuconsole serve): the tab opens it, not a browser where the
        # console runs. The port is on that machine's loopback, as the console's own is.
        app.call_from_thread(app.open_url, url)
        app.call_from_thread(
            app.notify,
            f"Opened in a new tab; from another machine, forward port {urlsplit(url).port} "
            "with ssh -L as you did for the console",
            title="Open",
        )
        return
    if not open_in_browser(url):
        app.call_from_thread(
            app.notify,
            "No browser can be started here; enter shows the URL (c copies it)",
            title="Open",
            severity="warning",
        )


def _ssh_into(
    app: App[object], fleet: Fleet, host: Host, container_id: str, launch: LaunchResult
) -> None:
    from gpuconsole.backend.shells.ssh_launch import ssh_launch, system_ssh

    target = ssh_launch(host.name, launch)
    if target is None:
        app.call_from_thread(
            app.notify, "cannot read the launch's ssh port", title="Open", severity="error"
        )
        return
    try:
        port = local_port(host, container_id, target.port)
    except OSError as exc:
        app.call_from_thread(app.notify, f"no tunnel: {exc}", title="Open", severity="error")
        return
    ssh = system_ssh()
    app.call_from_thread(_hand_over_ssh, app, fleet, host, target, port, ssh)


def _hand_over_ssh(
    app: App[object], fleet: Fleet, host: Host, target: SshLaunch, port: int, ssh: str | None
) -> None:
    from gpuconsole.backend.shells.bridge import Ending, SessionEnd, attach, terminal_size
    from gpuconsole.backend.shells.ssh_launch import paramiko_session, system_ssh_argv
    from gpuconsole.ui.handover import run_suspended

    failure: list[str] = []

    def with_system_ssh() -> SessionEnd:
        import subprocess

        code = subprocess.run(system_ssh_argv(ssh or "ssh", target, port), check=False).returncode
        return SessionEnd(Ending.EXITED, code)

    def with_paramiko() -> SessionEnd:
        try:
            connection = host.machine.connect_tcp(target.address, target.port, 10.0)
            session = paramiko_session(connection, target, *terminal_size())
        except (GpuconsoleError, OSError) as exc:
            failure.append(str(exc))
            return SessionEnd(Ending.LOST, None, str(exc))
        try:
            return attach(session)
        finally:
            session.close()

    end = run_suspended(app, fleet, with_system_ssh if ssh else with_paramiko)
    if end is None:
        return
    title = f"SSH {target.user}@{target.alias}"
    if failure:
        app.notify(failure[0], title=title, severity="error", timeout=10)
    elif end.exit_code == 255:
        app.notify("ssh failed (exit 255)", title=title, severity="error")
    else:
        app.notify(f"session ended (exit {end.exit_code})", title=title)

"""The console over several hosts: the local engine plus the loopback sshd as a remote host.

What a user sees: one table with a host column, one host at a time with [ and ], a dead or
untrusted host named in the header while the others work, trusting a new host key after seeing
its fingerprint, rows of a host that stops answering greyed with their age, and the launch
form's host picker.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from gpuconsole.backend.hosts.open import local_host
from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.confirm import ConfirmScreen
from gpuconsole.ui.screens.hosts import HostsScreen
from gpuconsole.ui.screens.launch_form import LaunchForm
from gpuconsole.ui.widgets.containers_table import ContainersTable
from gpuconsole.ui.widgets.help_panel import HelpPanel
from gpuconsole.ui.widgets.host_line import HostLine

from sshfixtures import loop_host, trust_port
from support import remote_setup, ssh_env
from uihelpers import notifications, text_of, until


def header(app: GpuconsoleApp) -> str:
    lines = app.containers_screen.query(HostLine)
    return text_of(lines.first(), 220) if lines else ""


async def table_of(app: GpuconsoleApp, pilot: Any) -> ContainersTable:
    screen = app.containers_screen
    await until(pilot, lambda: bool(screen.query(ContainersTable)), what="the table")
    return screen.query_one(ContainersTable)


def hosts_of(table: ContainersTable, container_id: str) -> set[str]:
    return {key.rpartition("/")[0] for key in table.rows_shown if key.endswith(container_id)}


async def test_one_table_for_the_fleet_and_one_host_at_a_time(
    ssh_home: Path, make_container: Any
) -> None:
    c = make_container("sleep 3600")
    app = GpuconsoleApp([local_host(gpu=False), loop_host()], refresh_seconds=0.5)
    async with app.run_test(size=(160, 40)) as pilot:
        table = await table_of(app, pilot)
        await until(pilot, lambda: hosts_of(table, c.id) == {"local", "loop"}, 30, "both hosts")
        assert table.with_host and "Host" in [str(col.label) for col in table.columns.values()]
        assert "all hosts" in header(app) and "local" in header(app) and "loop" in header(app)

        await pilot.press("right_square_bracket")
        await until(pilot, lambda: hosts_of(table, c.id) == {"local"}, what="local alone")
        assert not table.with_host  # one host: no host column
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: hosts_of(table, c.id) == {"loop"}, what="loop alone")
        assert app.containers_screen.scope == "loop"
        await pilot.press("left_square_bracket", "left_square_bracket")
        await until(pilot, lambda: hosts_of(table, c.id) == {"local", "loop"}, what="all again")

        # Acting on a row acts on that row's host: stop it through the SSH host.
        await pilot.press("right_square_bracket", "right_square_bracket")
        await until(pilot, lambda: table.select_id(c.id, "loop"), what="the row on loop")
        await until(pilot, lambda: (table.selected or ("", None))[0] == "loop", what="selected")
        await pilot.press("x")
        await until(
            pilot,
            lambda: (
                subprocess.run(
                    ["docker", "inspect", "-f", "{{.State.Running}}", c.id],
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                == "false"
            ),
            30,
            f"the container stopped through the remote host ({notifications(app)})",
        )


async def test_a_dead_host_is_named_and_the_others_work(
    ssh_home: Path, make_container: Any
) -> None:
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    c = make_container("sleep 3600")
    app = GpuconsoleApp(
        [local_host(gpu=False), loop_host("gone", port=closed)], refresh_seconds=0.5
    )
    async with app.run_test(size=(160, 40)) as pilot:
        table = await table_of(app, pilot)
        await until(pilot, lambda: hosts_of(table, c.id) == {"local"}, 30, "the local rows")
        await until(pilot, lambda: "gone down" in header(app), 30, "the dead host in the header")
        await pilot.press("question_mark")
        help_panel = app.screen.query_one(HelpPanel)
        await until(pilot, lambda: help_panel.is_open, what="help still opens")
        await pilot.press("escape")
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen), what="the host list")
        rows = dict(app.screen.rows())  # type: ignore[attr-defined]
        assert text_of(rows["gone"][2]).strip() == "down"
        assert "refused" in text_of(rows["gone"][-1]).lower()
        assert text_of(rows["local"][2]).strip() == "up"


async def test_trusting_an_unknown_host_key_after_seeing_its_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_container: Any
) -> None:
    home = tmp_path / "home"
    remote_setup(home, trusted=False)
    monkeypatch.setenv("HOME", str(home))
    known = home / ".ssh" / "known_hosts"
    c = make_container("sleep 3600")
    expected = subprocess.run(
        ["ssh-keygen", "-lf", ssh_env()["GPUCONSOLE_TEST_SSH_HOST_KEY"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    app = GpuconsoleApp([local_host(gpu=False), loop_host()], refresh_seconds=0.5)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: "needs trust" in header(app), 30, "the key to be asked about")
        assert not known.exists(), "nothing is trusted without asking"
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HostsScreen), what="the host list")
        await pilot.press("down")  # the second host: loop
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert expected in text_of(app.screen.query_one("#dialog-body"), 200)
        await pilot.press("y")
        # Back from the host list (which covers the table: rows are drawn when it shows).
        await until(pilot, lambda: isinstance(app.screen, HostsScreen), what="the host list")
        await pilot.press("escape")
        table = await table_of(app, pilot)
        machine = app.hosts[1].machine
        await until(
            pilot,
            lambda: "loop" in hosts_of(table, c.id),
            30,
            f"the trusted host's rows ({machine.status}, {notifications(app)}, "  # type: ignore[attr-defined]
            f"{app.containers_screen.statuses['loop']})",
        )
        assert (
            known.read_text().count("\n") == 1
            and f"]:{ssh_env()['GPUCONSOLE_TEST_SSH_PORT']} " in known.read_text()
        )


async def test_rows_of_a_host_that_stops_answering_are_greyed_with_their_age(
    ssh_home: Path, make_container: Any, private_sshd: Any
) -> None:
    server = private_sshd()
    trust_port(ssh_home, server.port)
    c = make_container("sleep 3600")
    app = GpuconsoleApp(
        [local_host(gpu=False), loop_host("far", port=server.port)], refresh_seconds=0.5
    )
    async with app.run_test(size=(180, 40)) as pilot:
        screen = app.containers_screen
        screen.fleet["far"].down_interval = 0.5
        table = await table_of(app, pilot)
        await until(pilot, lambda: hosts_of(table, c.id) == {"local", "far"}, 30, "both hosts")
        frozen = server.freeze_sshd()  # the server stops answering
        try:

            def far_status() -> str:
                key = table.key_of(c.id, "far")
                return "" if key is None else text_of(table.get_row(key)[3], 200)

            await until(pilot, lambda: "no answer for" in far_status(), 15, "the greyed rows")
            local_key = table.key_of(c.id, "local")
            assert local_key is not None
            assert "no answer" not in text_of(table.get_row(local_key)[3], 200)
            assert "far down" in header(app)
        finally:
            server.thaw(frozen)
        await until(pilot, lambda: "no answer" not in far_status(), 30, "the host back")


async def test_the_launch_form_picks_a_host(ssh_home: Path) -> None:
    app = GpuconsoleApp(
        [local_host(gpu=False), loop_host()], refresh_seconds=0.5, config_path=ssh_home / "c.toml"
    )
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, LaunchForm), what="the form")
        form = app.screen
        assert isinstance(form, LaunchForm)
        from textual.widgets import Select, Static

        picker = form.query_one("#host", Select)
        assert form.target.name == "local"
        picker.value = "loop"
        await until(pilot, lambda: form.target.name == "loop", what="the host switch")
        assert "on loop" in text_of(form.query_one("#launch-title", Static))
        assert form.host is form.target.engine

"""The `n` launch form against the real engine: a real Jupyter server comes up with its token;
bad input is marked under its field and creates nothing; profiles fill the form."""

from __future__ import annotations

import os
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select, Static

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.details import DetailsScreen
from gpuconsole.ui.screens.launch_form import LaunchForm
from gpuconsole.ui.widgets.containers_table import ContainersTable

from support import host_at
from uihelpers import engine_until, text_of, until

JUPYTER_IMAGE = os.environ.get("GPUCONSOLE_TEST_JUPYTER_IMAGE", "gpuconsole-test/jupyter:bookworm")


@pytest.fixture
def launched_name(docker_client: Any) -> Any:
    name = f"gpct-form-{uuid.uuid4().hex[:8]}"
    yield name
    for c in docker_client.containers.list(all=True, filters={"name": name}):
        c.remove(force=True)


def console_app(tmp_path: Path, config: Path | None = None) -> GpuconsoleApp:
    return GpuconsoleApp(
        host_at(),
        refresh_seconds=0.5,
        config_path=config or tmp_path / "config.toml",
    )


async def open_form(app: GpuconsoleApp, pilot: Any) -> LaunchForm:
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, LaunchForm))
    form = app.screen
    assert isinstance(form, LaunchForm)
    return form


async def fill(pilot: Any, form: LaunchForm, **values: str) -> None:
    for field, value in values.items():
        form.query_one(f"#f-{field}", Input).value = value
    await pilot.pause(0.1)


async def test_launch_jupyter_from_the_form(
    launched_name: str, docker_client: Any, memlock_refused: bool, tmp_path: Path
) -> None:
    app = console_app(tmp_path)
    async with app.run_test(size=(140, 50)) as pilot:
        form = await open_form(app, pilot)
        form.query_one("#variant", Select).value = "jupyter"
        await fill(
            pilot,
            form,
            image=JUPYTER_IMAGE,
            name=launched_name,
            memory="512m",
            cpus="1",
            shm_size="256m",
        )
        form.query_one("#f-volumes").text = f"{tmp_path}:/workspace"  # type: ignore[attr-defined]
        # No limits typed: the defaults this engine can set, and a line for the one it cannot.
        box = form.query_one("#launch-warnings", Static)
        hint = form.query_one("#f-ulimits", Input)
        if memlock_refused:
            await until(
                pilot,
                lambda: "left out the default ulimit memlock=-1" in text_of(box),
                what="the note about the default the engine cannot set",
            )
            assert hint.placeholder.startswith("default stack=67108864;")
        else:
            await until(
                pilot, lambda: "memlock=-1" in hint.placeholder and "where" not in hint.placeholder
            )
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: isinstance(app.screen, DetailsScreen),
            timeout=120,
            what="the launch to finish and show the details",
        )
        details = app.screen
        assert isinstance(details, DetailsScreen) and details.launch is not None
        url = details.launch.url
        assert url and url.startswith("http://127.0.0.1:") and "token=" in url
        reach = details.query_one("#details-reach", Static)
        await until(
            pilot,
            lambda: url in text_of(reach).replace("\n", ""),
            what="the URL with its token on the details screen",
        )
        with urllib.request.urlopen(url, timeout=10) as resp:  # the real server, with its token
            assert resp.status == 200
        if memlock_refused:  # the details say which default the container did not get
            body = details.query_one("#details-body", Static)
            await until(pilot, lambda: "Left out" in text_of(body), what="the left-out default")
            assert "memlock=-1" in text_of(body)
        (container,) = docker_client.containers.list(filters={"name": launched_name})
        hc = container.attrs["HostConfig"]
        assert hc["Memory"] == 512 * 1024 * 1024 and hc["NanoCpus"] == 1_000_000_000
        assert hc["ShmSize"] == 256 * 1024 * 1024
        assert all(b["HostIp"] == "127.0.0.1" for bs in hc["PortBindings"].values() for b in bs)
        assert details.launch.token not in " ".join(container.attrs["Args"] or [])
        await pilot.press("escape")
        table = app.screen.query_one(ContainersTable)
        await until(
            pilot,
            lambda: table.selected_id == container.id,
            what="the new container to be selected",
        )


async def test_bad_input_is_marked_and_creates_nothing(
    launched_name: str, docker_client: Any, tmp_path: Path
) -> None:
    app = console_app(tmp_path)
    async with app.run_test(size=(140, 50)) as pilot:
        form = await open_form(app, pilot)
        await fill(pilot, form, image=JUPYTER_IMAGE, name=launched_name, memory="12XB", cpus="4096")
        mem_error = form.query_one("#error-memory", Static)
        cpu_error = form.query_one("#error-cpus", Static)
        await until(
            pilot,
            lambda: mem_error.display and cpu_error.display,
            what="inline errors under memory and CPUs",
        )
        assert "12XB" in text_of(mem_error)
        assert "CPU" in text_of(cpu_error) or "cpus" in text_of(cpu_error).lower()
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: "Nothing was created" in text_of(form.query_one("#launch-status", Static)),
            timeout=30,
        )
        assert isinstance(app.screen, LaunchForm)  # still open, fields kept
        assert form.query_one("#f-memory", Input).value == "12XB"
        await engine_until(
            lambda: not docker_client.containers.list(all=True, filters={"name": launched_name}),
            what="no container",
        )


async def test_profile_fills_the_form_and_saves(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "# my settings\n[ui]\nrefresh_seconds = 2.0\n\n"
        '[profiles.pytorch-jupyter]\nvariant = "jupyter"\n'
        'image = "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"\nmemory = "32g"\n'
        'cpus = 8\nshm_size = "16g"\nvolumes = ["~/notebooks:/workspace/notebooks"]\n'
    )
    app = console_app(tmp_path, config)
    async with app.run_test(size=(140, 50)) as pilot:
        form = await open_form(app, pilot)
        form.query_one("#profile", Select).value = "pytorch-jupyter"
        await until(pilot, lambda: form.query_one("#f-memory", Input).value == "32g")
        assert form.query_one("#f-image", Input).value.endswith("2.6.0-cuda12.4-cudnn9-runtime")
        assert form.query_one("#f-cpus", Input).value == "8"
        assert "~/notebooks:/workspace/notebooks" in form.query_one("#f-volumes").text  # type: ignore[attr-defined]
        await fill(pilot, form, memory="64g")
        form.query_one("#save-name", Input).value = "big-jupyter"
        await pilot.click("#save")
        await until(
            pilot, lambda: "Saved profile" in text_of(form.query_one("#launch-status", Static))
        )
    text = config.read_text()
    assert text.startswith("# my settings")  # the rest of the file is kept
    assert "[profiles.big-jupyter]" in text and 'memory = "64g"' in text
    assert "[profiles.pytorch-jupyter]" in text
    assert oct(config.stat().st_mode & 0o777) == "0o600"


async def test_gpu_preflight_is_shown_in_the_form(tmp_path: Path) -> None:
    app = console_app(tmp_path)
    async with app.run_test(size=(140, 50)) as pilot:
        form = await open_form(app, pilot)
        await fill(pilot, form, image=JUPYTER_IMAGE, gpus="all")
        box = form.query_one("#launch-warnings", Static)
        # This engine has no NVIDIA runtime: said before anything is created, with the fix.
        await until(pilot, lambda: "GPU pre-flight" in text_of(box), what="pre-flight findings")
        assert "nvidia-container-toolkit" in text_of(box)


async def test_an_unexpected_error_does_not_wedge_the_form(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import gpuconsole.backend.launch as launch_api

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr(launch_api, "launch", broken)
    app = console_app(tmp_path)
    async with app.run_test(size=(140, 50)) as pilot:
        form = await open_form(app, pilot)
        await fill(pilot, form, image=JUPYTER_IMAGE)
        await pilot.press("ctrl+s")
        status = form.query_one("#launch-status", Static)
        await until(pilot, lambda: "something nobody planned for" in text_of(status))
        assert not form.query_one("#go").disabled  # can try again
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LaunchForm), what="esc to close")

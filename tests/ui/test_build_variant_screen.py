"""The `b` screen: a real derived-image build with its log streaming, and a clear refusal."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

from textual.widgets import Input, ProgressBar, RichLog, Select, Static

from gpuconsole.ui.app import GpuconsoleApp
from gpuconsole.ui.screens.build_variant import BuildVariantScreen

from support import TEST_IMAGE, host_at
from uihelpers import text_of, until

DEBIAN_IMAGE = os.environ.get("GPUCONSOLE_TEST_DEBIAN_IMAGE", "gpuconsole-test/debian:bookworm")


async def open_screen(app: GpuconsoleApp, pilot: Any, base: str, tag: str) -> BuildVariantScreen:
    await pilot.press("b")
    await until(pilot, lambda: isinstance(app.screen, BuildVariantScreen))
    screen = app.screen
    assert isinstance(screen, BuildVariantScreen)
    await until(pilot, lambda: bool(screen.query("#build-tag")), what="the form's fields")
    screen.query_one("#build-base", Input).value = base
    screen.query_one("#build-variant", Select).value = "ssh"
    screen.query_one("#build-tag", Input).value = tag
    await pilot.pause(0.1)
    return screen


async def test_build_ssh_variant_streams_its_log(docker_client: Any) -> None:
    tag = f"gpuconsole-test/ssh-ui:{uuid.uuid4().hex[:8]}"
    app = GpuconsoleApp(host_at(), refresh_seconds=1.0)
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            screen = await open_screen(app, pilot, DEBIAN_IMAGE, tag)
            await pilot.press("ctrl+s")
            status = screen.query_one("#build-status", Static)
            await until(
                pilot,
                lambda: "built" in text_of(status) or "fail" in text_of(status),
                timeout=300,
                what="the build to end",
            )
            assert f"built {tag}" in text_of(status)
            log = screen.query_one("#build-log", RichLog)
            assert len(log.lines) > 3  # the build log streamed into the panel
            assert screen.query_one("#build-progress", ProgressBar).progress == 1.0
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, BuildVariantScreen))
        image = docker_client.images.get(tag)
        assert image.tags == [tag]
    finally:
        for t in (tag,):
            with contextlib.suppress(Exception):
                docker_client.images.remove(t, force=True)


async def test_base_without_package_manager_is_refused(docker_client: Any) -> None:
    tag = f"gpuconsole-test/ssh-refused:{uuid.uuid4().hex[:8]}"
    app = GpuconsoleApp(host_at(), refresh_seconds=1.0)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = await open_screen(app, pilot, TEST_IMAGE, tag)
        await pilot.press("ctrl+s")
        status = screen.query_one("#build-status", Static)
        await until(pilot, lambda: "building" not in text_of(status), timeout=120)
        message = text_of(status)
        assert "apt" in message.lower() or "package manager" in message.lower()
        assert not docker_client.images.list(name=tag.split(":")[0])

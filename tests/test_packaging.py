"""The wheel carries its styles: installed into a fresh venv and run from elsewhere, the TUI is
styled. (A source checkout and the editable install are what every other test runs.)"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STYLED_CHECK = textwrap.dedent(
    """
    import asyncio, sys
    import gpuconsole
    from gpuconsole.ui.resources import stylesheet
    from gpuconsole.backend.hosts.open import local_host
    from gpuconsole.ui.app import GpuconsoleApp

    print(stylesheet())
    async def main():
        app = GpuconsoleApp(local_host("unix:///nonexistent/docker.sock", gpu=False, timeout=1))
        async with app.run_test() as pilot:
            panel = app.screen.query_one("#engine-down")
            for _ in range(50):
                if panel.display:
                    break
                await pilot.pause(0.1)
            # 'heavy' comes from styles/app.tcss, not from any Textual default.
            print(panel.display, panel.styles.border_top[0])
    asyncio.run(main())
    """
)


def test_wheel_installed_elsewhere_finds_its_styles(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("gpuconsole-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gpuconsole/styles/app.tcss" in names
    assert {"gpuconsole/web/assets/page.html", "gpuconsole/web/assets/page.js"} <= set(names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300
    )
    # Dependencies come from the test venv (no network needed); the package itself only from
    # the wheel, so nothing can be found in the source tree by accident.
    site = subprocess.run(
        [str(py), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = subprocess.run(
        [str(venv / "bin" / "gpuconsole"), "--version"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0 and version.stdout.startswith("gpuconsole ")

    styled = subprocess.run(
        [str(py), "-c", STYLED_CHECK], cwd=elsewhere, capture_output=True, text=True, timeout=120
    )
    assert styled.returncode == 0, styled.stderr
    path, state = styled.stdout.strip().splitlines()[-2:]
    assert path.startswith(site) and path.endswith("gpuconsole/styles/app.tcss")
    assert not path.startswith(str(ROOT))
    assert state == "True heavy"

    # The browser page (gpuconsole serve) comes from the wheel too, whole.
    served = subprocess.run(
        [
            str(py),
            "-c",
            "from gpuconsole.web import assets as a; print(a.HERE); "
            "print(sorted(a.assets())); print('/assets/page.js' in a.page('x', 16))",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 0, served.stderr
    here, names_served, linked = served.stdout.strip().splitlines()
    assert here.startswith(site)
    assert "page.js" in names_served and "textual.js" in names_served and linked == "True"

"""Layering rules that keep the backend headless and start-up fast."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_backend_never_imports_textual_or_rich() -> None:
    out = _run(
        "import importlib, pkgutil, sys, gpuconsole.backend as b\n"
        "for m in pkgutil.walk_packages(b.__path__, 'gpuconsole.backend.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('textual', 'rich')\n"
        "             or n.startswith('gpuconsole.ui'))\n"
        "print(len([n for n in sys.modules if n.startswith('gpuconsole.backend.')]))\n"
        "print(bad)\n"
    )
    assert out.returncode == 0, out.stderr
    count, bad = out.stdout.splitlines()
    assert int(count) >= 8  # really walked the backend
    assert bad == "[]"


def test_import_linter_contract_holds() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a test extra: pip install -e '.[test]'"
    out = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 kept, 0 broken" in out.stdout


def test_version_and_help_do_not_load_heavy_modules() -> None:
    out = _run(
        "import sys\n"
        "from gpuconsole.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & "
        "{'textual', 'docker', 'paramiko', 'pynvml', 'rich', 'requests'}))\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")

"""Where the packaged .tcss styles live, in a wheel, an editable install or a source checkout."""

from __future__ import annotations

from pathlib import Path


def styles_dir() -> Path:
    """The wheel carries ``gpuconsole/styles``; a checkout (or editable install) has ``styles/``
    beside the package. Both are tried, in that order."""
    package = Path(__file__).resolve().parent.parent
    here = package
    for candidate in (package / "styles", package.parent / "styles"):
        if (candidate / "app.tcss").is_file():
            return candidate
    raise FileNotFoundError(
        f"gpuconsole's styles are missing (looked in {here / 'styles'} and "
        f"{here.parent / 'styles'}); reinstall the package"
    )


def stylesheet(name: str = "app.tcss") -> Path:
    return styles_dir() / name

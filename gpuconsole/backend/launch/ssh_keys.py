"""Which public key an SSH launch installs for ``aiuser``.

Only public keys travel: they go into the container by environment (never argv), and the
container's sshd accepts nothing but that key. A private-key path is taken to mean its ``.pub``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
_KEY_TYPES = ("ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-")


class KeyNotFound(ValueError):
    """No usable public key; ``str()`` says where we looked and how to make one."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    path: Path
    text: str
    #: The private key next to it, for ``ssh -i`` when it is not one ssh tries by itself.
    identity: Path | None

    @property
    def is_default(self) -> bool:
        return self.path.name in DEFAULT_KEYS and self.path.parent == Path.home() / ".ssh"


def _read(path: Path) -> str:
    text = path.read_text(encoding="utf-8").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines or not all(ln.startswith(_KEY_TYPES) and len(ln.split()) >= 2 for ln in lines):
        raise KeyNotFound(
            f"{path} is not an OpenSSH public key (expected 'ssh-ed25519 AAAA…') — "
            "pass the .pub file"
        )
    return "\n".join(lines)


def find_public_key(configured: str | None = None) -> PublicKey:
    """The configured key, else the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub."""
    if configured:
        path = Path(configured).expanduser()
        if path.suffix != ".pub" and Path(str(path) + ".pub").is_file():
            path = Path(str(path) + ".pub")
        if not path.is_file():
            raise KeyNotFound(
                f"{path} does not exist — pass an existing public key, or create one with "
                f"ssh-keygen -t ed25519 -f {path.with_suffix('')}"
            )
        candidates = [path]
    else:
        ssh_dir = Path.home() / ".ssh"
        candidates = [ssh_dir / name for name in DEFAULT_KEYS if (ssh_dir / name).is_file()]
        if not candidates:
            raise KeyNotFound(
                f"no public key in {ssh_dir} (looked for {', '.join(DEFAULT_KEYS)}) — create one "
                "with ssh-keygen -t ed25519, or pass --ssh-key PATH"
            )
    path = candidates[0]
    try:
        text = _read(path)
    except OSError as exc:
        raise KeyNotFound(f"cannot read {path}: {exc.strerror or exc}") from exc
    private = path.with_suffix("") if path.suffix == ".pub" else None
    return PublicKey(path, text, private if private is not None and private.is_file() else None)

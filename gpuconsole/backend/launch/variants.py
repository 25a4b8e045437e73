"""What each variant runs inside the container: small shell launchers, never secrets in argv.

The launchers are the container's command (``sh -c SCRIPT``). The script text holds no secret:
the Jupyter token arrives as JUPYTER_TOKEN (both JupyterLab and the classic Notebook read it),
the SSH public key as GPUCONSOLE_AUTHORIZED_KEYS, so ``ps`` and ``docker inspect``'s Cmd show
nothing worth stealing. Picking the server inside the container avoids a probe container per
launch: JupyterLab when the image has it, the classic Notebook otherwise. jupyter_server (Lab,
Notebook 7) scrubs tokens from its request log; the classic Notebook 6 does not, so it runs at
log level WARN (errors still show, and they are what a failed launch reports).
"""

from __future__ import annotations

from gpuconsole.backend.launch.spec import KEYS_ENV, SSH_USER

JUPYTER_PORT = 8888

JUPYTER_LAUNCHER = f"""\
opts="--ip=0.0.0.0 --port={JUPYTER_PORT} --no-browser --allow-root"
if command -v jupyter-lab >/dev/null 2>&1; then
  exec jupyter lab $opts
elif command -v jupyter-notebook >/dev/null 2>&1; then
  exec jupyter notebook $opts --log-level=WARN
fi
echo "gpuconsole: this image has no Jupyter server (jupyter-lab or jupyter-notebook) -" \
  "build one with: gpuconsole build-variant --variant jupyter --base IMAGE" >&2
exit 127
"""

#: sshd flags that win over any sshd_config in the image: key authentication only, no root.
SSHD_OPTIONS = (
    "-o PasswordAuthentication=no -o PermitRootLogin=no -o PermitEmptyPasswords=no "
    "-o PubkeyAuthentication=yes -o AuthenticationMethods=publickey"
)

SSH_LAUNCHER = f"""\
set -e
sshd=$(command -v sshd || echo /usr/sbin/sshd)
if [ ! -x "$sshd" ]; then
  echo "gpuconsole: this image has no sshd - build one with:" \
    "gpuconsole build-variant --variant ssh --base IMAGE" >&2
  exit 127
fi
if ! id {SSH_USER} >/dev/null 2>&1; then
  useradd -m -s /bin/bash {SSH_USER} 2>/dev/null || adduser -D -s /bin/sh {SSH_USER}
  usermod -p '*' {SSH_USER} 2>/dev/null || true
fi
home=$(getent passwd {SSH_USER} | cut -d: -f6)
mkdir -p /run/sshd "$home/.ssh"
ssh-keygen -A >/dev/null
printf '%s\\n' "${KEYS_ENV}" > "$home/.ssh/authorized_keys"
chown -R {SSH_USER}: "$home/.ssh"
chmod 700 "$home/.ssh"
chmod 600 "$home/.ssh/authorized_keys"
exec "$sshd" -D -e {SSHD_OPTIONS}
"""


def variant_command(variant: str, plain_command: tuple[str, ...] = ()) -> list[str] | None:
    """The container command for a variant; None keeps the image's own (plain)."""
    if variant == "jupyter":
        return ["/bin/sh", "-c", JUPYTER_LAUNCHER]
    if variant == "ssh":
        return ["/bin/sh", "-c", SSH_LAUNCHER]
    return list(plain_command) or None

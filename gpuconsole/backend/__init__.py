"""Headless backend: Docker hosts, GPU sources, launches. Never imports Textual or Rich.

Everything here is plain Python so it can be driven by the CLI, the TUI or a test alike.
"""

import sys

# docker-py imports its own SSH transport (and with it paramiko, ~0.3 s) whenever it is
# imported, only to offer ``ssh://`` engine URLs, which gpuconsole never hands it: remote
# engines go through gpuconsole's own SSH connection (backend/ssh/docker_api.py). docker-py
# guards that import, so marking the module absent skips it; a process that already imported
# it keeps it.
sys.modules.setdefault("docker.transport.sshconn", None)  # type: ignore[arg-type]

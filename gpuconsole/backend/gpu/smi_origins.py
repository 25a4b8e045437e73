"""The GPU process list and each process's cgroup in ONE command on the GPU host.

Over SSH a second command per refresh to read ``/proc/<pid>/cgroup`` would double the remote
processes; instead a small shell script runs the compute-apps query and, for every PID it lists,
prints that PID's cgroup and comm with shell builtins only (no process per file). The result
travels in the GpuSnapshot (``origins``) so attribution reads nothing more.
"""

from __future__ import annotations

from gpuconsole.backend.hosts.machine import CommandError

Origins = tuple[tuple[int, str | None, str | None], ...]

#: ``sh -c ORIGINS_SCRIPT nvidia-smi ARGS...``: $0 is the executable, "$@" the query arguments.
ORIGINS_SCRIPT = r"""
out=$("$0" "$@" 2>&1); rc=$?
printf '\036apps %s\n' "$rc"
printf '%s\n' "$out"
[ "$rc" = 0 ] || exit 0
while IFS=', ' read -r pid rest; do
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  for f in cgroup comm; do
    if [ -r "/proc/$pid/$f" ]; then
      printf '\036%s %s\n' "$f" "$pid"
      while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "/proc/$pid/$f"
    fi
  done
done <<END_OF_APPS
$out
END_OF_APPS
"""


def origins_argv(executable: str, query_args: list[str]) -> list[str]:
    return ["sh", "-c", ORIGINS_SCRIPT, executable, *query_args]


def parse_origins_output(output: str) -> tuple[str, Origins]:
    """Split the script's output into the apps CSV and (pid, cgroup, comm) triples.

    A failing nvidia-smi raises CommandError with its first line, as a plain run would.
    """
    sections: list[tuple[str, list[str]]] = []
    # Not splitlines(): it also splits at \x1e, the marker itself.
    for line in output.split("\n"):
        if line.startswith("\036"):
            sections.append((line[1:], []))
        elif sections:
            sections[-1][1].append(line)
    if not sections or not sections[0][0].startswith("apps "):
        raise CommandError("the GPU process query printed nothing")
    head, apps_lines = sections[0]
    rc = head.split(" ", 1)[1].strip()
    if rc != "0":
        first = next((ln for ln in apps_lines if ln.strip()), f"nvidia-smi exited {rc}")
        raise CommandError(first.strip())
    found: dict[int, dict[str, str]] = {}
    for head, lines in sections[1:]:
        kind, _, pid = head.partition(" ")
        if pid.isdigit():
            while lines and not lines[-1]:
                lines.pop()
            found.setdefault(int(pid), {})[kind] = "\n".join(lines) + "\n"
    origins = tuple(
        (pid, texts.get("cgroup"), texts.get("comm")) for pid, texts in sorted(found.items())
    )
    return "\n".join(apps_lines), origins


#: ``sh -c QUERY_SERVER_SCRIPT sh nvidia-smi ARGS...``: ORIGINS_SCRIPT once per line read on
#: stdin, each answer ended by ``END_MARK``. One session kept open instead of a command per
#: process list: over SSH a command is a channel opened and closed and a login shell (~3 ms of
#: the client's CPU, ten packets); a question on the open session is one packet each way.
QUERY_SERVER_SCRIPT = (
    "exe=$1; shift\nq() {\n"
    + ORIGINS_SCRIPT.replace('"$0"', '"$exe"').replace("exit 0", "return 0")
    + "}\nwhile IFS= read -r _; do q \"$@\" </dev/null; printf '\\036end\\n'; done\n"
)
END_MARK = "\036end"


def query_server_argv(executable: str, query_args: list[str]) -> list[str]:
    return ["sh", "-c", QUERY_SERVER_SCRIPT, "sh", executable, *query_args]

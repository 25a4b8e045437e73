"""How to reach a host over SSH: ``user@host[:port]``, ``host[:port]`` or an ~/.ssh/config alias.

Where the OpenSSH client exists, ``ssh -G HOST`` answers (it knows every keyword, ``Include``,
``Match`` and ProxyJump); elsewhere paramiko's ``SSHConfig`` does, after a pre-pass that inlines
``Include`` directives (paramiko has none) and with the defaults ssh applies. Both ways give the
same :class:`SshTarget` (the tests compare them).

``~`` is the home directory of ``$HOME`` (as everywhere in Python). OpenSSH itself takes the home
directory from the password database; where the two differ (a service with its own HOME, a test),
``ssh -G`` would read the other home's ~/.ssh/config, so the fallback answers instead.

Nothing is cached: one resolution costs one ``ssh -G`` process (a few ms) or one parse.
paramiko is imported only when the fallback runs.
"""

from __future__ import annotations

import getpass
import glob
import hashlib
import os
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpuconsole.backend.errors import GpuconsoleError

DEFAULT_PORT = 22
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
SYSTEM_CONFIG_DIR = "/etc/ssh"
# The identity files ssh tries when no IdentityFile is configured (OpenSSH 9.x, in its order).
DEFAULT_IDENTITY_FILES = (
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
)
DEFAULT_USER_KNOWN_HOSTS = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
SSH_G_TIMEOUT = 5.0
MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH

# Characters OpenSSH refuses in host and user names (they could reach a shell via ProxyCommand).
_BAD_NAME_CHARS = set("'`\"$\\;&<>|(){}")
_INCLUDE_RE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.*?)\s*$", re.IGNORECASE)
_BLOCK_RE = re.compile(r"^\s*(host|match)(?:\s*=\s*|\s+)(.*?)\s*$", re.IGNORECASE)
# paramiko expands some %-tokens and "~" itself, with the config's port and user rather than
# the explicit ones and without "%%": values are shielded from it and expanded here instead.
_PCT, _TILDE = "\ue000", "\ue001"


class SshConfigError(GpuconsoleError):
    """A host spec or the SSH configuration for it cannot be used; ``str()`` says how to fix it."""


def _default_known_hosts() -> tuple[str, ...]:
    return tuple(os.path.expanduser(p) for p in DEFAULT_USER_KNOWN_HOSTS.split())


def local_user() -> str:
    """The local user name, as ssh takes it (password database, then the environment)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return getpass.getuser()


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Everything needed to open one SSH connection, resolved from a spec and ~/.ssh/config.

    ``identity_agent``: a socket path, None for ``$SSH_AUTH_SOCK``, or ``"none"`` (no agent).
    ``proxy_jump``: the jump hosts in order, each itself a spec to resolve (with ``config_path``).
    ``config_path``: the ssh config file this was resolved from (None: the user's and system's
    defaults), so that jump hosts are resolved the same way.
    """

    alias: str
    hostname: str
    port: int = DEFAULT_PORT
    user: str = field(default_factory=local_user)
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    identity_agent: str | None = None
    proxy_jump: tuple[str, ...] = ()
    proxy_command: str | None = None
    server_alive_interval: float | None = None
    server_alive_count_max: int = 3
    connect_timeout: float | None = None
    user_known_hosts_files: tuple[str, ...] = field(default_factory=_default_known_hosts)
    strict_host_key_checking: str | None = None
    config_path: str | None = None

    @property
    def address(self) -> str:
        """``user@host:port`` for messages (IPv6 addresses in brackets)."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"


# ---------------------------------------------------------------------------------------------
# The spec


@dataclass(frozen=True, slots=True)
class _Spec:
    user: str | None
    host: str
    port: int | None


def _parse_port(text: str, spec: str) -> int:
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise SshConfigError(
        f"invalid SSH port {text!r} in {spec!r}: a port is a number from 1 to 65535 — "
        "write host:port (e.g. gpu1.lab:2222) or set Port in ~/.ssh/config"
    )


def _check_name(kind: str, name: str, spec: str) -> None:
    if (
        not name
        or name.startswith("-")
        or any(c.isspace() or not c.isprintable() or c in _BAD_NAME_CHARS for c in name)
    ):
        raise SshConfigError(
            f"invalid SSH {kind} {name!r} in {spec!r}: write user@host[:port], host[:port] "
            "or the name of a Host in ~/.ssh/config"
        )


def parse_spec(spec: str) -> tuple[str | None, str, int | None]:
    """Split ``[ssh://][user@]host[:port]`` (IPv6 as ``[addr]:port``) into (user, host, port)."""
    text = spec.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://") :].rstrip("/")
    user: str | None = None
    if "@" in text:
        user, _, text = text.rpartition("@")
        _check_name("user name", user, spec)
    port_text: str | None = None
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else "x"
        if end < 0 or (rest and not rest.startswith(":")):
            raise SshConfigError(
                f"invalid SSH host {spec!r}: write an IPv6 address as [addr] or [addr]:port"
            )
        host, port_text = text[1:end], (rest[1:] if rest else None)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, or a bare IPv6 address
    _check_name("host", host, spec)
    port = _parse_port(port_text, spec) if port_text is not None else None
    return user, host, port


# ---------------------------------------------------------------------------------------------
# Expansion shared by both ways


def _home() -> str:
    return os.path.expanduser("~")


def _passwd_home() -> str | None:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError, AttributeError):
        return None


def home_moved() -> bool:
    """``$HOME`` is not the password database's home: ``ssh -G`` would read the other
    ~/.ssh/config, so the fallback (which reads ``$HOME``'s) answers instead."""
    pw_home = _passwd_home()
    return bool(pw_home) and os.path.realpath(pw_home or "") != os.path.realpath(_home())


def _rehome(path: str) -> str:
    """Move a path ssh expanded below the password database's home below ``$HOME``."""
    pw_home, home = _passwd_home(), _home()
    if not pw_home or pw_home == home or pw_home == "/":
        return path
    if path == pw_home or path.startswith(pw_home.rstrip("/") + "/"):
        return home + path[len(pw_home.rstrip("/")) :]
    return path


def _expand_tokens(value: str, tokens: Mapping[str, str]) -> str:
    return re.sub(
        r"%(.)",
        lambda m: "%" if m.group(1) == "%" else tokens.get(m.group(1), m.group(0)),
        value,
    )


def _tilde(value: str) -> str:
    return os.path.expanduser(value) if value.startswith("~") else value


def _tokens(alias: str, hostname: str, port: int, user: str) -> dict[str, str]:
    local = socket.gethostname()
    return {
        "d": _home(),
        "h": hostname,
        "p": str(port),
        "r": user,
        "u": local_user(),
        "n": alias,
        "k": alias,
        "l": local,
        "L": local.split(".")[0],
        "i": str(os.getuid()) if hasattr(os, "getuid") else "0",
        "C": hashlib.sha1(f"{local}{hostname}{port}{user}".encode()).hexdigest(),
    }


def _env_expand(value: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: os.environ.get(m.group(1), ""), value)


# ---------------------------------------------------------------------------------------------
# Way 1: ssh -G


def _ssh_g(
    ssh: str,
    host: str,
    *,
    spec: str,
    config_path: str | None,
    port: int | None,
    user: str | None,
    identity_file: str | None,
) -> dict[str, list[str]] | None:
    argv = [ssh, "-G"]
    if config_path:
        argv += ["-F", config_path]
    if port is not None:
        argv += ["-p", str(port)]
    if user:
        argv += ["-l", user]
    if identity_file and os.path.exists(identity_file):
        argv += ["-i", identity_file]  # ssh drops -i files that do not exist
    argv += ["--", host]
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SSH_G_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SshConfigError(
            f"`ssh -G {host}` gave no answer within {SSH_G_TIMEOUT:g} s while resolving {spec!r} "
            "— look for a slow `Match exec` in ~/.ssh/config"
        ) from exc
    if proc.returncode != 0 and re.search(r"(illegal|unknown) option", proc.stderr):
        return None  # an ssh without -G (OpenSSH < 6.8): use the fallback
    if proc.returncode != 0:
        lines = [
            ln.strip()
            for ln in proc.stderr.splitlines()
            if ln.strip() and "Pseudo-terminal" not in ln and "not accessible" not in ln
        ]
        detail = "; ".join(lines[-3:]) or f"ssh -G exited with status {proc.returncode}"
        raise SshConfigError(
            f"the SSH configuration for {spec!r} cannot be used: {detail} — "
            f"fix {config_path or '~/.ssh/config'} (`ssh -G {host}` shows the same error)"
        )
    options: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).append(value.strip())
    # Paths ssh expanded with the password database's home: move them below $HOME.
    for key in ("identityfile", "identityagent"):
        if key in options:
            options[key] = [_rehome(v) for v in options[key]]
    options["userknownhostsfile"] = [
        " ".join(_rehome(p) for p in v.split()) for v in options.get("userknownhostsfile", [])
    ]
    return options


# ---------------------------------------------------------------------------------------------
# Way 2: paramiko's SSHConfig, with Include inlined


def _host_line_matches(patterns: str, host: str) -> bool:
    """OpenSSH ``Host`` semantics: any positive pattern matches and no negated one does."""
    import fnmatch

    matched = False
    for pattern in shlex.split(patterns):
        negated = pattern.startswith("!")
        if fnmatch.fnmatchcase(host, pattern[1:] if negated else pattern):
            if negated:
                return False
            matched = True
    return matched


def _inline_includes(
    path: str, *, user_config: bool, host: str, stack: tuple[str, ...] = ()
) -> list[str]:
    """The lines of a config file with every ``Include`` replaced by the included files' lines.

    Relative include paths are relative to ~/.ssh (user config) or /etc/ssh (system config);
    globs expand in sorted order. After an included file that opens its own Host/Match blocks,
    the including block's header is repeated so that the lines after the Include stay in it.
    An Include inside a ``Host`` block that does not match ``host`` contributes nothing (OpenSSH
    never matches the included blocks then); inside a ``Match`` block it is inlined as is.
    """
    real = os.path.realpath(path)
    if len(stack) >= MAX_INCLUDE_DEPTH or real in stack:
        raise SshConfigError(
            f"too many nested Include directives in the SSH configuration at {path} "
            f"(a file including itself?) — fix the Include lines in {stack[0] if stack else path}"
        )
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    out: list[str] = []
    header: str | None = None
    active = True
    for line in text.splitlines():
        block = _BLOCK_RE.match(line)
        if block:
            header = line.strip()
            keyword, value = block.group(1).lower(), block.group(2)
            active = keyword == "match" or _host_line_matches(value, host)
            out.append(line)
            continue
        include = _INCLUDE_RE.match(line)
        if not include:
            out.append(line)
            continue
        if not active:
            continue
        base = os.path.join(_home(), ".ssh") if user_config else SYSTEM_CONFIG_DIR
        for pattern in shlex.split(include.group(1)):
            pattern = _tilde(pattern)
            if not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            for included in sorted(glob.glob(pattern)):
                if not os.path.isfile(included):
                    continue
                lines = _inline_includes(
                    included, user_config=user_config, host=host, stack=(*stack, real)
                )
                out.extend(lines)
                if any(_BLOCK_RE.match(ln) for ln in lines):
                    out.append(header or "Host *")
    return out


def _shield(lines: Sequence[str]) -> str:
    out = []
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _BLOCK_RE.match(line):
            out.append(line)
            continue
        match = re.match(r"^(\s*\w+(?:\s*=\s*|\s+))(.*)$", line)
        if match:
            line = match.group(1) + match.group(2).replace("%", _PCT).replace("~", _TILDE)
        out.append(line)
    return "\n".join(out) + "\n"


def _unshield(value: str) -> str:
    return value.replace(_PCT, "%").replace(_TILDE, "~")


def _normalise_flag(value: str) -> str:
    lowered = value.lower()
    return {"true": "yes", "false": "no"}.get(lowered, lowered)


def _normalise_strict(value: str) -> str:
    lowered = value.lower()
    return {"yes": "true", "no": "false", "off": "false"}.get(lowered, lowered)


def _paramiko_lookup(
    host: str,
    *,
    spec: str,
    config_path: str | None,
    port: int | None,
    user: str | None,
    identity_file: str | None,
) -> dict[str, list[str]]:
    import paramiko

    files: list[tuple[str, bool]] = []
    if config_path:
        if not os.path.isfile(config_path):
            raise SshConfigError(
                f"the SSH configuration for {spec!r} cannot be used: "
                f"cannot open {config_path} — give an existing ssh config file"
            )
        files.append((config_path, True))
    else:
        user_config = os.path.join(_home(), ".ssh", "config")
        files += [(p, u) for p, u in ((user_config, True), (SYSTEM_CONFIG, False))]
    lines: list[str] = []
    for path, is_user in files:
        if not os.path.isfile(path):
            continue
        lines.append("Host *")  # each file starts outside any block
        try:
            lines += _inline_includes(path, user_config=is_user, host=host)
        except OSError as exc:
            raise SshConfigError(
                f"cannot read the SSH configuration {path}: {exc.strerror or exc}"
            ) from exc
    try:
        found = paramiko.SSHConfig.from_text(_shield(lines)).lookup(host)
    except Exception as exc:  # ConfigParseError, Match exec failures, bad values
        raise SshConfigError(
            f"the SSH configuration for {spec!r} cannot be used: {exc} — fix "
            f"{config_path or '~/.ssh/config'}"
        ) from exc

    raw: dict[str, str | list[str] | None] = {}
    for key, value in found.items():
        if isinstance(value, list):
            raw[key] = [_unshield(v) for v in value]
        else:
            raw[key] = _unshield(value) if isinstance(value, str) else value

    def one(key: str, default: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else default

    options: dict[str, list[str]] = {}
    hostname = _expand_tokens(one("hostname", host), {"h": host}).lower()
    options["hostname"] = [hostname]
    final_user = user or one("user", "") or local_user()
    options["user"] = [final_user]
    if port is not None:
        final_port = port
    else:
        port_text = one("port", str(DEFAULT_PORT))
        if not (port_text.isdigit() and 1 <= int(port_text) <= 65535):
            raise SshConfigError(
                f"the SSH configuration for {spec!r} cannot be used: bad Port {port_text!r} — "
                f"fix {config_path or '~/.ssh/config'} (a port is a number from 1 to 65535)"
            )
        final_port = int(port_text)
    options["port"] = [str(final_port)]

    identities = list(raw.get("identityfile") or [])
    if identity_file and os.path.exists(identity_file):
        identities.insert(0, identity_file)
    options["identityfile"] = identities or list(DEFAULT_IDENTITY_FILES)
    options["identitiesonly"] = [_normalise_flag(one("identitiesonly", "no"))]

    tokens = _tokens(host, hostname, final_port, final_user)
    agent = one("identityagent", "")
    if agent and agent != "SSH_AUTH_SOCK":
        if agent.lower() != "none" and not agent.startswith("$"):
            agent = _expand_tokens(_env_expand(_tilde(agent)), tokens)
        options["identityagent"] = [agent]

    # ProxyJump and ProxyCommand exclude each other: the first one obtained wins.
    for key in raw:
        if key in ("proxyjump", "proxycommand"):
            proxy = raw[key]
            options[key] = [proxy if isinstance(proxy, str) else "none"]
            break
    options["serveraliveinterval"] = [one("serveraliveinterval", "0")]
    options["serveralivecountmax"] = [one("serveralivecountmax", "3")]
    options["connecttimeout"] = [one("connecttimeout", "none")]
    options["stricthostkeychecking"] = [_normalise_strict(one("stricthostkeychecking", "ask"))]
    known = one("userknownhostsfile", DEFAULT_USER_KNOWN_HOSTS)
    options["userknownhostsfile"] = [
        " ".join(_expand_tokens(_tilde(p), tokens) for p in shlex.split(known))
    ]
    return options


# ---------------------------------------------------------------------------------------------
# Both ways end here


def _number(value: str | None, what: str, spec: str) -> float | None:
    if value is None or value.lower() == "none":
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise SshConfigError(
            f"the SSH configuration for {spec!r} has a bad {what} {value!r} — give a number "
            "of seconds in ~/.ssh/config"
        ) from exc
    return number if number > 0 else None


def _build(
    spec: str,
    host: str,
    options: Mapping[str, list[str]],
    *,
    identity_file: str | None,
    config_path: str | None,
) -> SshTarget:
    def one(key: str) -> str | None:
        values = options.get(key)
        return values[-1] if values else None

    hostname = one("hostname") or host
    _check_name("host name", hostname, spec)
    user = one("user") or local_user()
    port = _parse_port(one("port") or str(DEFAULT_PORT), spec)
    tokens = _tokens(host, hostname, port, user)

    identities: list[str] = []
    if identity_file:
        identities.append(identity_file)
    for raw in options.get("identityfile", []):
        path = _expand_tokens(_tilde(raw), tokens)
        if path not in identities:
            identities.append(path)

    agent = one("identityagent")
    if agent is not None and agent.startswith("$") and "/" not in agent:
        agent = os.environ.get(agent[1:].strip("{}")) or None

    jump = one("proxyjump")
    jumps = (
        tuple(j.strip() for j in jump.split(",") if j.strip())
        if jump and jump.lower() != "none"
        else ()
    )
    command = one("proxycommand")
    proxy_command = (
        _expand_tokens(command, tokens) if command and command.lower() != "none" else None
    )
    known = " ".join(options.get("userknownhostsfile", [])) or DEFAULT_USER_KNOWN_HOSTS
    count_max = one("serveralivecountmax") or "3"
    return SshTarget(
        alias=spec,
        hostname=hostname,
        port=port,
        user=user,
        identity_files=tuple(identities),
        identities_only=(one("identitiesonly") or "no").lower() in ("yes", "true"),
        identity_agent=agent,
        proxy_jump=jumps,
        proxy_command=proxy_command,
        server_alive_interval=_number(one("serveraliveinterval"), "ServerAliveInterval", spec),
        server_alive_count_max=int(count_max) if count_max.isdigit() else 3,
        connect_timeout=_number(one("connecttimeout"), "ConnectTimeout", spec),
        user_known_hosts_files=tuple(_tilde(p) for p in known.split()),
        strict_host_key_checking=one("stricthostkeychecking"),
        config_path=config_path,
    )


def resolve_target(
    spec: str,
    *,
    identity_file: str | None = None,
    port: int | None = None,
    user: str | None = None,
    config_path: str | None = None,
    use_ssh_binary: bool = True,
) -> SshTarget:
    """Resolve ``spec`` (``user@host[:port]``, ``host[:port]`` or a Host alias) to a target.

    The keyword arguments win over the spec's ``user@`` and ``:port``, which win over the
    config. ``config_path`` replaces ~/.ssh/config and /etc/ssh/ssh_config (as ``ssh -F``).
    ``use_ssh_binary=False`` forces the paramiko fallback. Raises :class:`SshConfigError`.
    """
    spec_user, host, spec_port = parse_spec(spec)
    if port is not None and not 1 <= port <= 65535:
        raise SshConfigError(
            f"invalid SSH port {port!r} for {spec!r}: a port is a number from 1 to 65535"
        )
    if user is not None:
        _check_name("user name", user, spec)
    final_user = user or spec_user
    final_port = port if port is not None else spec_port
    ident = os.path.expanduser(identity_file) if identity_file else None
    cfg = os.path.expanduser(config_path) if config_path else None
    ssh = shutil.which("ssh") if use_ssh_binary and not home_moved() else None
    options: dict[str, list[str]] | None = None
    if ssh:
        try:
            options = _ssh_g(
                ssh,
                host,
                spec=spec,
                config_path=cfg,
                port=final_port,
                user=final_user,
                identity_file=ident,
            )
        except OSError:  # not executable after all: use the fallback
            options = None
    if options is None:
        options = _paramiko_lookup(
            host, spec=spec, config_path=cfg, port=final_port, user=final_user, identity_file=ident
        )
    return _build(spec, host, options, identity_file=ident, config_path=cfg)

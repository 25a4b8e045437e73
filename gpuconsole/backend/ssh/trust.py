"""Host keys against known_hosts files, with OpenSSH's semantics.

A host is looked up as ``host`` on port 22 and as ``[host]:port`` otherwise, against plain,
wildcard (``*``, ``?``, ``!negated``) and hashed (``|1|salt|hash``) host patterns, comma
separated. A key on a matching ``@revoked`` line is refused whatever else the files say.
``@cert-authority`` lines are ignored: gpuconsole (paramiko) does not verify host certificates,
so such a line neither makes a key known nor marks it changed.

known_hosts is parsed here (paramiko's HostKeys drops line numbers and markers); paramiko only
decodes the keys. paramiko is imported lazily, never when this module is imported.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.machine import MachineUnreachable

if TYPE_CHECKING:
    import paramiko

GLOBAL_KNOWN_HOSTS_FILES = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"

# RSA host keys are announced under their signature algorithms but stored as ssh-rsa.
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")


class Trust(enum.Enum):
    KNOWN = "known"
    UNKNOWN = "unknown"
    CHANGED = "changed"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class TrustVerdict:
    """The answer for one host key. ``path``/``line`` (1-based) name the deciding entry: the
    entry holding the other key for CHANGED, the matching entry for KNOWN and REVOKED."""

    status: Trust
    key_type: str
    fingerprint: str
    path: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class KnownHostsEntry:
    path: str
    line: int
    marker: str | None  # "@revoked", "@cert-authority" or None
    patterns: str
    key_type: str
    key_blob: bytes

    def matches(self, name: str) -> bool:
        return host_matches(self.patterns, name)


def known_hosts_name(hostname: str, port: int) -> str:
    """The name a host has in known_hosts: ``host`` on port 22, ``[host]:port`` otherwise."""
    host = hostname.lower()
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint_sha256(blob: bytes) -> str:
    """``SHA256:...`` as ``ssh-keygen -lf`` prints it (base64 without padding)."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    return "SHA256:" + digest.rstrip("=")


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    parts = ("." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _hashed_matches(entry: str, name: str) -> bool:
    fields = entry.split("|")
    if len(fields) != 4 or fields[1] != "1":
        return False
    try:
        salt = base64.b64decode(fields[2], validate=True)
        wanted = base64.b64decode(fields[3], validate=True)
    except (binascii.Error, ValueError):
        return False
    got = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(got, wanted)


def host_matches(patterns: str, name: str) -> bool:
    """Whether a known_hosts host field matches ``name`` (as :func:`known_hosts_name` gives)."""
    if patterns.startswith("|"):
        return _hashed_matches(patterns, name)
    name = name.lower()
    matched = False
    for pattern in patterns.lower().split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if pattern and _glob_to_regex(pattern).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


def _blob_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    size = int.from_bytes(blob[:4], "big")
    if size > len(blob) - 4:
        return None
    try:
        return blob[4 : 4 + size].decode("ascii")
    except UnicodeDecodeError:
        return None


def read_known_hosts(path: str) -> Iterator[KnownHostsEntry]:
    """The well-formed entries of one known_hosts file (none if it does not exist)."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
        return
    for number, raw in enumerate(lines, start=1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0].lower(), fields[1:]
        if len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        if _blob_type(blob) != fields[1]:
            continue
        yield KnownHostsEntry(path, number, marker, fields[0], fields[1], blob)


def _decodes(entry: KnownHostsEntry) -> bool:
    """Whether paramiko can decode the entry's key (OpenSSH skips lines it cannot parse)."""
    import paramiko

    try:
        paramiko.PKey.from_type_string(entry.key_type, entry.key_blob)
    except Exception:
        return False
    return True


def _matching(hostname: str, port: int, files: Iterable[str]) -> Iterator[KnownHostsEntry]:
    name = known_hosts_name(hostname, port)
    for path in files:
        for entry in read_known_hosts(path):
            if entry.marker != "@cert-authority" and entry.matches(name):
                yield entry


def check_host_key(
    hostname: str, port: int, key: paramiko.PKey, files: Iterable[str]
) -> TrustVerdict:
    """Look ``key`` up for ``hostname``/``port`` in ``files`` (in order; missing files are empty).

    REVOKED: a matching ``@revoked`` entry holds this key. KNOWN: a matching entry holds it.
    CHANGED: no entry holds it, but a matching entry holds another key of the same type.
    UNKNOWN: otherwise (including when only keys of other types are known).
    """
    blob = key.asbytes()
    key_type = _blob_type(blob) or key.get_name()
    fingerprint = fingerprint_sha256(blob)
    known: KnownHostsEntry | None = None
    other: KnownHostsEntry | None = None
    for entry in _matching(hostname, port, files):
        if entry.key_blob == blob:
            if entry.marker == "@revoked":
                return TrustVerdict(Trust.REVOKED, key_type, fingerprint, entry.path, entry.line)
            if entry.marker is None and known is None:
                known = entry
        elif (
            entry.marker is None
            and other is None
            and entry.key_type == key_type
            and _decodes(entry)
        ):
            other = entry
    if known is not None:
        return TrustVerdict(Trust.KNOWN, key_type, fingerprint, known.path, known.line)
    if other is not None:
        return TrustVerdict(Trust.CHANGED, key_type, fingerprint, other.path, other.line)
    return TrustVerdict(Trust.UNKNOWN, key_type, fingerprint)


def known_key_types(hostname: str, port: int, files: Iterable[str]) -> tuple[str, ...]:
    """The host key algorithms to prefer for this host: those of its known keys, in file order.

    OpenSSH does the same, so that a host known by its RSA key is not offered Ed25519 first
    (which would look unknown)."""
    types: list[str] = []
    for entry in _matching(hostname, port, files):
        if entry.marker is not None:
            continue
        algorithms = _RSA_ALGORITHMS if entry.key_type == "ssh-rsa" else (entry.key_type,)
        types += [a for a in algorithms if a not in types]
    return tuple(types)


def remember_host_key(hostname: str, port: int, key: paramiko.PKey, path: str) -> None:
    """Append ``[host]:port keytype base64`` (``host ...`` on port 22) to ``path``.

    Creates the directory (0700) and the file (0600) when missing; never truncates: the file is
    opened for appending, and a newline is added first if it does not end with one.
    """
    path = os.path.expanduser(path)
    parent = os.path.dirname(path)
    line = f"{known_hosts_name(hostname, port)} {key.get_name()} {key.get_base64()}\n".encode()
    try:
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
            os.chmod(parent, 0o700)
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            os.fchmod(fd, 0o600)  # whatever the umask
        except FileExistsError:
            fd = os.open(path, flags)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise GpuconsoleError(
            f"cannot add the host key of {known_hosts_name(hostname, port)} to {path}: "
            f"{exc.strerror or exc} — check that file's permissions"
        ) from exc


# ---------------------------------------------------------------------------------------------
# Errors: all are MachineUnreachable (a host whose key is not trusted is not reached).


def _where(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"{hostname} port {port}"


class HostKeyError(MachineUnreachable):
    """The host's SSH key is not trusted; nothing was sent to it."""

    def __init__(
        self,
        host: str,
        address: str,
        reason: str,
        hint: str,
        *,
        hostname: str,
        port: int,
        key: paramiko.PKey,
        verdict: TrustVerdict,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.key = key
        self.verdict = verdict
        self.fingerprint = verdict.fingerprint
        self.key_type = verdict.key_type
        super().__init__(host, address, reason, hint)


class HostKeyUnknown(HostKeyError):
    """The host's key is in no known_hosts file. Accepting appends it to ``known_hosts_path``."""

    def __init__(
        self,
        hostname: str,
        port: int,
        key: paramiko.PKey,
        known_hosts_path: str,
        *,
        host: str | None = None,
        address: str | None = None,
        verdict: TrustVerdict | None = None,
    ) -> None:
        self.known_hosts_path = known_hosts_path
        verdict = verdict or TrustVerdict(
            Trust.UNKNOWN, key.get_name(), fingerprint_sha256(key.asbytes())
        )
        super().__init__(
            host or hostname,
            address or known_hosts_name(hostname, port),
            f"its SSH host key is not known yet: {_where(hostname, port)} offers the "
            f"{verdict.key_type} key {verdict.fingerprint}",
            "if that is the host's key (compare with `ssh-keygen -lf "
            "/etc/ssh/ssh_host_*_key.pub` on the host), accept it with --accept-new-host-key "
            f"or by answering yes in the console; it is then added to {known_hosts_path}",
            hostname=hostname,
            port=port,
            key=key,
            verdict=verdict,
        )


class HostKeyChanged(HostKeyError):
    """The host offers another key than the one known_hosts holds for it: maybe an attack."""

    def __init__(
        self,
        hostname: str,
        port: int,
        key: paramiko.PKey,
        verdict: TrustVerdict,
        *,
        host: str | None = None,
        address: str | None = None,
    ) -> None:
        self.known_hosts_path = verdict.path or DEFAULT_KNOWN_HOSTS
        self.line = verdict.line
        name = known_hosts_name(hostname, port)
        default = os.path.expanduser(DEFAULT_KNOWN_HOSTS)
        file_option = "" if self.known_hosts_path == default else f" -f {self.known_hosts_path}"
        super().__init__(
            host or hostname,
            address or name,
            f"ITS SSH HOST KEY HAS CHANGED: {_where(hostname, port)} now offers the "
            f"{verdict.key_type} key {verdict.fingerprint}, but {self.known_hosts_path} line "
            f"{self.line} holds another key for it. Someone may be intercepting the connection "
            "(an attack), or the host was reinstalled",
            "if you know the new key is legitimate, remove the old entry with "
            f"`ssh-keygen -R '{name}'{file_option}` and connect again",
            hostname=hostname,
            port=port,
            key=key,
            verdict=verdict,
        )


class HostKeyRevoked(HostKeyError):
    """The host offers a key marked ``@revoked`` in a known_hosts file."""

    def __init__(
        self,
        hostname: str,
        port: int,
        key: paramiko.PKey,
        verdict: TrustVerdict,
        *,
        host: str | None = None,
        address: str | None = None,
    ) -> None:
        self.known_hosts_path = verdict.path
        self.line = verdict.line
        super().__init__(
            host or hostname,
            address or known_hosts_name(hostname, port),
            f"its SSH host key is REVOKED: {_where(hostname, port)} offers the "
            f"{verdict.key_type} key {verdict.fingerprint}, marked @revoked in "
            f"{verdict.path} line {verdict.line}",
            "the host must get a new key; gpuconsole never connects with a revoked one",
            hostname=hostname,
            port=port,
            key=key,
            verdict=verdict,
        )

"""Host keys against known_hosts files: OpenSSH's lookups, and appending without damage.

Keys are made here (cryptography / paramiko); hashed entries and fingerprints are checked
against what ``ssh-keygen`` writes and prints.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gpuconsole.backend.errors import GpuconsoleError
from gpuconsole.backend.hosts.machine import MachineUnreachable
from gpuconsole.backend.ssh.trust import (
    HostKeyChanged,
    HostKeyRevoked,
    HostKeyUnknown,
    Trust,
    check_host_key,
    fingerprint_sha256,
    known_hosts_name,
    known_key_types,
    remember_host_key,
)


def ed25519() -> paramiko.PKey:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    blob = paramiko.Message()
    blob.add_string("ssh-ed25519")
    blob.add_string(raw)
    return paramiko.PKey.from_type_string("ssh-ed25519", blob.asbytes())


def line(hosts: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker + ' ' if marker else ''}{hosts} {key.get_name()} {key.get_base64()}\n"


def ssh_keygen() -> str:
    path = shutil.which("ssh-keygen")
    if path is None:
        pytest.fail("ssh-keygen is missing: apt-get install -y openssh-client")
    return path


def test_known_unknown_and_port_forms(tmp_path: Path) -> None:
    key, other_host_key = ed25519(), ed25519()
    kh = tmp_path / "known_hosts"
    kh.write_text(
        "# a comment\n\n"
        + line("gpu1.lab", key)
        + line("[gpu2.lab]:2222", other_host_key)
        + "garbage line\n"
    )
    verdict = check_host_key("gpu1.lab", 22, key, [str(kh)])
    assert (verdict.status, verdict.path, verdict.line) == (Trust.KNOWN, str(kh), 3)
    assert verdict.key_type == "ssh-ed25519"
    # port 22 is written without brackets; any other port only as [host]:port
    assert check_host_key("GPU1.lab", 22, key, [str(kh)]).status is Trust.KNOWN
    assert check_host_key("gpu1.lab", 2222, key, [str(kh)]).status is Trust.UNKNOWN
    assert check_host_key("gpu2.lab", 2222, other_host_key, [str(kh)]).status is Trust.KNOWN
    assert check_host_key("gpu2.lab", 22, other_host_key, [str(kh)]).status is Trust.UNKNOWN
    # missing files are empty, and later files are looked at too
    later = tmp_path / "later"
    later.write_text(line("[new.lab]:2200", key))
    files = [str(tmp_path / "absent"), str(kh), str(later)]
    assert check_host_key("new.lab", 2200, key, files).status is Trust.KNOWN
    unknown = check_host_key("nowhere.lab", 22, key, files)
    assert unknown.status is Trust.UNKNOWN and unknown.path is None


def test_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path) -> None:
    key = ed25519()
    pub = tmp_path / "key.pub"
    pub.write_text(f"ssh-ed25519 {key.get_base64()} test\n")
    printed = subprocess.run(
        [ssh_keygen(), "-lf", str(pub)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint_sha256(key.asbytes()) == printed
    assert check_host_key("h", 22, key, []).fingerprint == printed


def test_changed_names_file_and_line(tmp_path: Path) -> None:
    key, old = ed25519(), ed25519()
    ecdsa = paramiko.ECDSAKey.generate()
    kh = tmp_path / "known_hosts"
    kh.write_text(
        line("elsewhere", key) + line("[gpu1.lab]:2222", ecdsa) + line("x,[gpu1.lab]:2222", old)
    )
    verdict = check_host_key("gpu1.lab", 2222, key, [str(kh)])
    assert (verdict.status, verdict.path, verdict.line) == (Trust.CHANGED, str(kh), 3)

    err = HostKeyChanged("gpu1.lab", 2222, key, verdict, host="gpu1", address="me@gpu1.lab:2222")
    message = str(err)
    assert f"{kh} line 3" in message
    assert "attack" in message
    assert "ssh-keygen -R '[gpu1.lab]:2222'" in message and f"-f {kh}" in message
    assert verdict.fingerprint in message and "accept-new" not in message
    assert isinstance(err, MachineUnreachable) and isinstance(err, GpuconsoleError)
    assert (err.known_hosts_path, err.line) == (str(kh), 3)

    # only a key of another type known: not "changed" (OpenSSH asks, as for a new host)
    only_ecdsa = tmp_path / "only_ecdsa"
    only_ecdsa.write_text(line("[gpu1.lab]:2222", ecdsa))
    assert check_host_key("gpu1.lab", 2222, key, [str(only_ecdsa)]).status is Trust.UNKNOWN
    assert known_key_types("gpu1.lab", 2222, [str(only_ecdsa)]) == (ecdsa.get_name(),)


def test_hashed_entries_match(tmp_path: Path) -> None:
    key, old = ed25519(), ed25519()
    kh = tmp_path / "known_hosts"
    kh.write_text(line("gpu1.lab", key) + line("[10.0.0.7]:2200", old))
    subprocess.run([ssh_keygen(), "-H", "-f", str(kh)], capture_output=True, check=True)
    text = kh.read_text()
    assert "gpu1.lab" not in text and text.startswith("|1|")
    assert check_host_key("gpu1.lab", 22, key, [str(kh)]).status is Trust.KNOWN
    assert check_host_key("gpu1.lab", 2200, key, [str(kh)]).status is Trust.UNKNOWN
    changed = check_host_key("10.0.0.7", 2200, key, [str(kh)])
    assert (changed.status, changed.line) == (Trust.CHANGED, 2)


def test_patterns_lists_wildcards_and_negation(tmp_path: Path) -> None:
    key = ed25519()
    kh = tmp_path / "known_hosts"
    kh.write_text(line("gpu?.lab,*.cluster,!bad.cluster,[jump]:2022", key))
    files = [str(kh)]
    for host, port in (("gpu1.lab", 22), ("node7.cluster", 22), ("jump", 2022)):
        assert check_host_key(host, port, key, files).status is Trust.KNOWN, host
    for host, port in (("gpu10.lab", 22), ("bad.cluster", 22), ("jump", 22)):
        assert check_host_key(host, port, key, files).status is Trust.UNKNOWN, host


def test_revoked_key_is_refused_whatever_else_says(tmp_path: Path) -> None:
    key = ed25519()
    kh = tmp_path / "known_hosts"
    kh.write_text(line("gpu1.lab", key))
    revoked = tmp_path / "revoked"
    revoked.write_text("# revoked keys\n" + line("*", key, "@revoked"))
    verdict = check_host_key("gpu1.lab", 22, key, [str(kh), str(revoked)])
    assert (verdict.status, verdict.path, verdict.line) == (Trust.REVOKED, str(revoked), 2)
    message = str(HostKeyRevoked("gpu1.lab", 22, key, verdict))
    assert "REVOKED" in message and f"{revoked} line 2" in message
    # a revoked *other* key does not matter
    assert check_host_key("gpu1.lab", 22, ed25519(), [str(revoked)]).status is Trust.UNKNOWN


def test_cert_authority_lines_are_ignored(tmp_path: Path) -> None:
    key = ed25519()
    kh = tmp_path / "known_hosts"
    kh.write_text(line("*", key, "@cert-authority"))
    assert check_host_key("gpu1.lab", 22, key, [str(kh)]).status is Trust.UNKNOWN
    assert check_host_key("gpu1.lab", 22, ed25519(), [str(kh)]).status is Trust.UNKNOWN


def test_unknown_error_says_how_to_accept(tmp_path: Path) -> None:
    key = ed25519()
    path = str(tmp_path / "known_hosts")
    err = HostKeyUnknown("gpu1.lab", 2222, key, path, host="gpu1", address="me@gpu1.lab:2222")
    message = str(err)
    for part in ("gpu1.lab", "2222", "ssh-ed25519", fingerprint_sha256(key.asbytes())):
        assert part in message
    assert "--accept-new-host-key" in message and "yes" in message and path in message
    assert (err.hostname, err.port, err.key, err.known_hosts_path) == ("gpu1.lab", 2222, key, path)
    assert err.fingerprint.startswith("SHA256:") and not err.fingerprint.endswith("=")


def test_remember_creates_private_dir_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    key = ed25519()
    path = tmp_path / "home" / ".ssh" / "known_hosts"
    remember_host_key("gpu1.lab", 2222, key, "~/.ssh/known_hosts")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"[gpu1.lab]:2222 ssh-ed25519 {key.get_base64()}\n"
    assert check_host_key("gpu1.lab", 2222, key, [str(path)]).status is Trust.KNOWN
    # ssh-keygen finds it too
    found = subprocess.run(
        [ssh_keygen(), "-F", "[gpu1.lab]:2222", "-f", str(path)], capture_output=True, text=True
    )
    assert found.returncode == 0 and key.get_base64() in found.stdout


def test_remember_appends_and_never_truncates(tmp_path: Path) -> None:
    key, other = ed25519(), ed25519()
    path = tmp_path / "known_hosts"
    before = line("old.lab", other).rstrip("\n")  # no newline at the end of the file
    path.write_text(before)
    path.chmod(0o644)
    remember_host_key("gpu1.lab", 22, key, str(path))
    remember_host_key("10.0.0.7", 2200, key, str(path))
    assert path.read_text() == (
        before + "\n" + f"gpu1.lab ssh-ed25519 {key.get_base64()}\n"
        f"[10.0.0.7]:2200 ssh-ed25519 {key.get_base64()}\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # an existing file keeps its mode
    assert check_host_key("old.lab", 22, other, [str(path)]).status is Trust.KNOWN


def test_remember_failure_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GpuconsoleError, match="cannot add the host key"):
        remember_host_key("gpu1.lab", 22, ed25519(), str(blocker / "known_hosts"))


def test_known_hosts_name() -> None:
    assert known_hosts_name("GPU1.lab", 22) == "gpu1.lab"
    assert known_hosts_name("gpu1.lab", 2222) == "[gpu1.lab]:2222"


def test_rsa_known_prefers_rsa_algorithms(tmp_path: Path) -> None:
    rsa = paramiko.RSAKey.generate(1024)
    kh = tmp_path / "known_hosts"
    kh.write_text(line("gpu1.lab", rsa))
    assert known_key_types("gpu1.lab", 22, [str(kh)]) == ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
    assert check_host_key("gpu1.lab", 22, rsa, [str(kh)]).status is Trust.KNOWN

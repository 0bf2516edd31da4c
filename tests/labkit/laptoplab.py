"""The laptop side of the ssh lab: a laptop user with its own ~/.ssh/config alias, and a login node that asks
for a key and a password (a second sshd), with an SSH_ASKPASS script that answers and counts the prompts."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.sshlab import LAB_DIR, LOGIN, SshLab
from labkit.user import LabError, TestUser, ensure_user, lab_lock

# The laptop user is not the cluster user: ssh reads ~/.ssh/config from the passwd entry's home, never from
# $HOME, so a laptop with its own config needs its own user. hoptest's ~/.ssh stays for the other tests.
LAPTOP_USER = "hoplaptop"
ALIAS = "hpc"  # what the laptop user types after `ssh`
WORKSTATION = "ws"  # the compute node as a workstation the laptop reaches through the login node (ProxyJump)
TWO_FACTOR_PORT = 2222  # the login node's key+password sshd; port 22 stays key-only for every other test
PASSWORD = "lab-Pass-4-hop"  # the cluster user's password on the key+password sshd (a throwaway test account)
WRONG_PASSWORD = "not-the-password"
BASE = LAB_DIR / "laptop"  # removed with the ssh lab
# The cluster user's shadow password field before the lab set one, kept outside LAB_DIR so that a lab rebuilt
# after a crash still restores it.
SHADOW_BEFORE = Path("/run/jupyter-hop-laptoplab.shadow-before")
PROFILE_BEGIN = "# BEGIN jupyter-hop laptop lab (tests/labkit/laptoplab.py)"
PROFILE_END = "# END jupyter-hop laptop lab"
LOGIN_ONLY_COMMAND = "hop-lab-login-only"  # on PATH only in the cluster user's login shell

ASKPASS = """#!/bin/sh
# jupyter-hop laptop lab: answers every ssh prompt with the file's content, and logs the prompt
printf '%s\\n' "$1" >> "$HOP_ASKPASS_LOG"
cat "$HOP_ASKPASS_ANSWER"
"""


@dataclass(frozen=True)
class LaptopLab:
    """The laptop user, its alias for the key+password login node, and per-test prompt counters."""

    ssh: SshLab
    laptop: TestUser
    alias: str = ALIAS

    @property
    def remote_user(self) -> TestUser:
        return self.ssh.user

    def askpass(self, name: str, answer: str = PASSWORD) -> Askpass:
        """A fresh prompt log and answer for one test (owned by the laptop user, in its home)."""
        directory = self.laptop.home / ".hop-lab" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        (directory / "answer").write_text(answer + "\n", encoding="utf-8")
        (directory / "prompts").write_text("", encoding="utf-8")
        for path in (directory, directory / "answer", directory / "prompts"):
            os.chown(path, self.laptop.uid, self.laptop.gid)
        (directory / "answer").chmod(0o600)
        return Askpass(directory)

    def env(self, askpass: Askpass, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The laptop user's environment with ssh's prompts going to the askpass script."""
        return {
            "SSH_ASKPASS": str(BASE / "askpass"),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": ":0",  # older clients want one before they use SSH_ASKPASS; "force" does not
            "HOP_ASKPASS_LOG": str(askpass.directory / "prompts"),
            "HOP_ASKPASS_ANSWER": str(askpass.directory / "answer"),
            **(extra or {}),
        }

    def run(self, args: Sequence[str], env: Mapping[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.laptop.run(args, env, **kwargs)

    def popen(self, args: Sequence[str], env: Mapping[str, str], **kwargs: object) -> subprocess.Popen[str]:
        return self.laptop.popen(args, env, **kwargs)


@dataclass(frozen=True)
class Askpass:
    directory: Path

    def prompts(self) -> list[str]:
        return (self.directory / "prompts").read_text(encoding="utf-8").splitlines()


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _sshd_config(address: str) -> str:
    return "\n".join([
        "# jupyter-hop laptop lab: the login node asking for a key and then a password",
        f"ListenAddress {address}:{TWO_FACTOR_PORT}",
        f"HostKey {LAB_DIR}/host_ed25519",
        f"PidFile {BASE}/sshd.pid",
        f"AuthorizedKeysFile {LAB_DIR}/authorized_keys",
        "UsePAM no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "AuthenticationMethods publickey,password",
        "PermitRootLogin no",
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",
        "X11Forwarding no",
        "PrintMotd no",
        "StrictModes yes",
        "LogLevel VERBOSE",
        "",
    ])


def _laptop_ssh_config(remote: str) -> str:
    # BatchMode no: the lab's system-wide drop-in sets BatchMode yes for login and compute, and the user's own
    # file is read first, so its value wins, as a real user's would.
    def as_remote(*, batch_mode_no: bool = True) -> list[str]:
        return [f"    User {remote}", *(["    BatchMode no"] if batch_mode_no else []),
                "    IdentityFile ~/.ssh/id_ed25519", "    IdentitiesOnly yes",
                "    UserKnownHostsFile ~/.ssh/known_hosts", "    StrictHostKeyChecking yes"]

    return "\n".join([
        "# jupyter-hop laptop lab: the laptop user's own ssh config",
        f"Host {ALIAS}",
        f"    HostName {LOGIN}",
        f"    Port {TWO_FACTOR_PORT}",
        *as_remote(),
        f"Host {WORKSTATION}",
        "    HostName compute",
        f"    ProxyJump {ALIAS}",
        *as_remote(),
        "Host compute",
        *as_remote(batch_mode_no=False),
        "",
    ])


def _shadow_field(name: str) -> str:
    return _sh("getent", "shadow", name).stdout.split(":")[1]


def _lab_hash() -> str:
    """A fixed salt, so a hash the lab set is recognised as ours in a later run."""
    return _sh("openssl", "passwd", "-6", "-salt", "jupyterhoplab", PASSWORD).stdout.strip()


def _set_password(user: TestUser) -> None:
    current, ours = _shadow_field(user.name), _lab_hash()
    if current != ours:
        SHADOW_BEFORE.write_text(current, encoding="utf-8")
        SHADOW_BEFORE.chmod(0o600)
    elif not SHADOW_BEFORE.exists():
        SHADOW_BEFORE.write_text("*", encoding="utf-8")  # what the ssh lab itself leaves: no password, not locked
    _sh("usermod", "-p", ours, user.name)


def _restore_password(user: TestUser) -> None:
    if SHADOW_BEFORE.exists() and _shadow_field(user.name) == _lab_hash():
        _sh("usermod", "-p", SHADOW_BEFORE.read_text(encoding="utf-8").strip() or "*", user.name)
    SHADOW_BEFORE.unlink(missing_ok=True)


def _edit_profile(user: TestUser, add: bool) -> None:
    """The cluster user's ~/.profile gets a PATH entry only a login shell sees (a marked block, removed after)."""
    profile = user.home / ".profile"
    text = profile.read_text(encoding="utf-8") if profile.exists() else ""
    kept, inside = [], False
    for line in text.splitlines():
        if line == PROFILE_BEGIN:
            inside = True
        elif line == PROFILE_END and inside:
            inside = False
        elif not inside:
            kept.append(line)
    if add:
        kept += [PROFILE_BEGIN, f'PATH="{BASE}/login-bin:$PATH"', PROFILE_END]
    new = "\n".join(kept) + "\n" if kept else ""
    if new != text:
        profile.write_text(new, encoding="utf-8")
        os.chown(profile, user.uid, user.gid)


def _write(path: Path, text: str, owner: TestUser, mode: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.chown(path, owner.uid, owner.gid)
    path.chmod(mode)


def _sshd_alive() -> bool:
    try:
        pid = int((BASE / "sshd.pid").read_text().strip())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sshd"
    except (OSError, ValueError):
        return False


def setup(lab: SshLab) -> LaptopLab:
    laptop = ensure_user(LAPTOP_USER)
    remote = lab.user
    with lab_lock():
        BASE.mkdir(mode=0o755, exist_ok=True)
        _write(BASE / "askpass", ASKPASS, laptop, 0o755)
        (BASE / "login-bin").mkdir(mode=0o755, exist_ok=True)
        _write(BASE / "login-bin" / LOGIN_ONLY_COMMAND, "#!/bin/sh\necho login-shell-ok\n", remote, 0o755)
        _edit_profile(remote, add=True)
        _set_password(remote)
        ssh_dir = laptop.home / ".ssh"
        shutil.rmtree(ssh_dir, ignore_errors=True)
        ssh_dir.mkdir(mode=0o700)
        os.chown(ssh_dir, laptop.uid, laptop.gid)
        client = LAB_DIR / "client" / "id_ed25519"
        _write(ssh_dir / "id_ed25519", client.read_text(), laptop, 0o600)
        _write(ssh_dir / "id_ed25519.pub", client.with_suffix(".pub").read_text(), laptop, 0o644)
        host_pub = " ".join((LAB_DIR / "host_ed25519.pub").read_text().split()[:2])
        names = f"[{LOGIN}]:{TWO_FACTOR_PORT},[{lab.addresses[LOGIN]}]:{TWO_FACTOR_PORT},{LOGIN},compute"
        _write(ssh_dir / "known_hosts", f"{names} {host_pub}\n", laptop, 0o600)
        _write(ssh_dir / "config", _laptop_ssh_config(remote.name), laptop, 0o600)
        if not _sshd_alive():
            conf = BASE / "sshd.conf"
            conf.write_text(_sshd_config(lab.addresses[LOGIN]), encoding="utf-8")
            _sh("/usr/sbin/sshd", "-t", "-f", str(conf))
            start = 'hostname "$0" && exec /usr/sbin/sshd -f "$1" -E "$2"'
            _sh("ip", "netns", "exec", LOGIN, "unshare", "--uts", "sh", "-c", start, LOGIN, str(conf),
                str(BASE / "sshd.log"))
        _wait_listening(lab.addresses[LOGIN])
    return LaptopLab(lab, laptop)


def _wait_listening(address: str, timeout: float = 10.0) -> None:
    code = ("import socket,sys; s=socket.socket(); s.settimeout(1); "
            "sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))")
    deadline = time.monotonic() + timeout
    while subprocess.run(["python3", "-c", code, address, str(TWO_FACTOR_PORT)]).returncode != 0:
        if time.monotonic() > deadline:
            log = BASE / "sshd.log"
            raise LabError(f"the key+password sshd did not listen: {log.read_text() if log.exists() else ''}")
        time.sleep(0.02)


def teardown(lab: LaptopLab) -> None:
    with lab_lock():
        teardown_locked(lab)


def teardown_locked(lab: LaptopLab) -> None:
    """teardown() for a caller that holds the lab lock already (the ssh lab's last user, before it goes)."""
    with suppress(OSError, ValueError):
        os.kill(int((BASE / "sshd.pid").read_text().strip()), signal.SIGTERM)
    _restore_password(lab.remote_user)
    _edit_profile(lab.remote_user, add=False)
    shutil.rmtree(lab.laptop.home / ".ssh", ignore_errors=True)
    shutil.rmtree(lab.laptop.home / ".hop-lab", ignore_errors=True)
    shutil.rmtree(lab.laptop.home / ".config" / "jupyter-hop", ignore_errors=True)
    shutil.rmtree(BASE, ignore_errors=True)


@pytest.fixture(scope="session")
def laptop_lab(ssh_lab: SshLab) -> Iterator[LaptopLab]:
    try:
        lab = setup(ssh_lab)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"the laptop side of the ssh lab could not be set up: {exc}")
    try:
        yield lab
    finally:
        teardown(lab)

"""A real ssh double hop in network namespaces: laptop (root namespace) -> login -> compute, real sshd's."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from labkit.user import LabError, TestUser, lab_lock

LOGIN, COMPUTE = "login", "compute"
NAMESPACES = (LOGIN, COMPUTE)
LAB_DIR = Path("/run/jupyter-hop-sshlab")
# Sessions using the lab hold a shared lock on this file; the last one out tears the lab down.
USERS_LOCK = Path("/run/jupyter-hop-sshlab.users")
DROPIN = Path("/etc/ssh/ssh_config.d/jupyter-hop-lab.conf")
ETC_HOSTS = Path("/etc/hosts")
NETNS_ETC = Path("/etc/netns")
HOSTS_BEGIN = "# BEGIN jupyter-hop ssh lab (tests/lab/sshlab.py)"
HOSTS_END = "# END jupyter-hop ssh lab"
# veths: hoplab0 (laptop) <-> hoplab1 (login), hoplab2 (login) <-> hoplab3 (compute)
VETHS = ("hoplab0", "hoplab1", "hoplab2", "hoplab3")
# Candidate /16s, in order; the first that overlaps nothing on this machine is used.
CANDIDATES = ("10.231.0.0/16", "10.232.0.0/16", "10.233.0.0/16", "172.31.231.0/24")
SSHD = "/usr/sbin/sshd"
PRIVSEP = Path("/run/sshd")


@dataclass(frozen=True)
class SshLab:
    """What tests need: the hosts, how to run things as the test user in them, and tunnels from the laptop."""

    user: TestUser
    addresses: Mapping[str, str]  # laptop, login, login-back (login's side towards compute), compute -> IPv4
    compute_subnet: str
    setup_seconds: float

    login_host: str = LOGIN
    compute_host: str = COMPUTE

    def prefix(self, ns: str) -> list[str]:
        """Put in front of any argv (e.g. test_user.argv(...)) to run it in `ns`, where `hostname` prints `ns`;
        every part execs, so the process started is the command itself."""
        if ns not in NAMESPACES:
            raise ValueError(f"no namespace {ns!r} in the lab")
        return ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', ns]

    def argv_in(self, ns: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
        """argv that runs `args` as the test user inside namespace `ns`."""
        return [*self.prefix(ns), *self.user.argv(args, env)]

    def run_in(
        self, ns: str, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 120)
        kwargs.setdefault("cwd", str(self.user.home))
        return subprocess.run(self.argv_in(ns, args, env), **kwargs)  # type: ignore[call-overload,no-any-return]

    def popen_in(
        self, ns: str, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[str]:
        """The process is the command itself (ip netns exec, unshare, sh, setpriv and env all exec)."""
        kwargs.setdefault("text", True)
        kwargs.setdefault("cwd", str(self.user.home))
        return subprocess.Popen(self.argv_in(ns, args, env), **kwargs)  # type: ignore[call-overload,no-any-return]

    def run_laptop(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        """Run as the test user on the laptop (the root namespace)."""
        return self.user.run(args, env, **kwargs)

    @contextmanager
    def tunnel(
        self, command: str, local_port: int, env: Mapping[str, str] | None = None, timeout: float = 20.0
    ) -> Iterator[subprocess.Popen[str]]:
        """Run a printed `ssh ...` line exactly as printed, as the test user on the laptop, until the local
        port listens; closed when the block ends."""
        argv = shlex.split(command)
        if not argv or argv[0] != "ssh":
            raise AssertionError(f"not an ssh command: {command!r}")
        with tempfile.TemporaryFile(mode="w+") as log:
            proc = self.user.popen(argv, env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_listening(local_port, timeout, proc, log)
                yield proc
            finally:
                stop_process(proc)


def wait_listening(
    port: int, timeout: float, proc: subprocess.Popen[str] | None = None, log: IO[str] | None = None
) -> None:
    """Poll until 127.0.0.1:port accepts a connection; fail early with the output if `proc` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"process exited with {proc.returncode} before port {port} listened:\n{_read(log)}"
            )
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"port {port} did not listen within {timeout} s:\n{_read(log)}")
        time.sleep(0.02)


def _read(log: IO[str] | None) -> str:
    if log is None:
        return ""
    log.seek(0)
    return log.read()


def stop_process(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def free_port() -> int:
    """A TCP port free on the laptop's loopback right now (the tunnel's local end)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------- set-up


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _ours(line: str) -> bool:
    return any(v in line for v in VETHS)


def pick_subnet() -> ipaddress.IPv4Network:
    """The first candidate that overlaps no address or route of this machine (ours are gone by now)."""
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in _sh("ip", "-4", "-o", "addr").stdout.splitlines():
        if not _ours(line):
            used.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in _sh("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        words = line.split()
        if not words or _ours(line):
            continue
        for dest in words[:2]:  # "10.0.0.0/8 via ..." or "local 127.0.0.0/8 ..."
            try:
                used.append(ipaddress.ip_network(dest, strict=False))
                break
            except ValueError:
                continue
    for candidate in CANDIDATES:
        net = ipaddress.ip_network(candidate)
        if not any(net.overlaps(u) for u in used):
            return net  # type: ignore[return-value]
    raise LabError(f"every candidate lab subnet {CANDIDATES} overlaps this machine's networks")


def _layout(net: ipaddress.IPv4Network) -> tuple[dict[str, str], str, str]:
    """Addresses of laptop/login/compute, the laptop<->login /24 and the login<->compute /24."""
    if net.prefixlen < 24:
        _, front, back = list(net.subnets(new_prefix=24))[:3]
    else:
        front, back = list(net.subnets(prefixlen_diff=1))
    hosts_front, hosts_back = list(front.hosts()), list(back.hosts())
    addrs = {
        "laptop": str(hosts_front[0]),
        "login": str(hosts_front[1]),
        "login-back": str(hosts_back[0]),
        "compute": str(hosts_back[1]),
    }
    return addrs, str(front), str(back)


def teardown_leftovers() -> None:
    """Remove everything the lab creates, whether from this run or a crashed earlier one."""
    for ns in NAMESPACES:
        if _netns_exists(ns):
            for pid in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
    if _sh("ip", "link", "show", VETHS[0], check=False).returncode == 0:
        _sh("ip", "link", "del", VETHS[0], check=False)
    for line in _sh("ip", "-4", "route", "show", "type", "unreachable").stdout.splitlines():
        dest = line.split()[1] if line.startswith("unreachable") else line.split()[0]
        if any(ipaddress.ip_network(dest, strict=False).subnet_of(ipaddress.ip_network(c))  # type: ignore[arg-type]
               for c in CANDIDATES):
            _sh("ip", "route", "del", "unreachable", dest, check=False)
    _edit_hosts_block(None)
    DROPIN.unlink(missing_ok=True)
    if (LAB_DIR / "created-privsep-dir").exists():
        with suppress(OSError):
            PRIVSEP.rmdir()
    shutil.rmtree(LAB_DIR, ignore_errors=True)
    with suppress(OSError):
        NETNS_ETC.rmdir()  # only when empty: other namespaces' files stay


def _netns_exists(ns: str) -> bool:
    return ns in [line.split()[0] for line in _sh("ip", "netns", "list").stdout.splitlines() if line.strip()]


def _edit_hosts_block(lines: list[str] | None) -> None:
    """Replace (or with None remove) our marked block in /etc/hosts, in place: it may be a bind mount."""
    text = ETC_HOSTS.read_text(encoding="utf-8")
    kept: list[str] = []
    inside = False
    for line in text.splitlines():
        if line == HOSTS_BEGIN:
            inside = True
        elif line == HOSTS_END and inside:
            inside = False
        elif not inside:
            kept.append(line)
    if lines:
        kept += [HOSTS_BEGIN, *lines, HOSTS_END]
    new = "\n".join(kept) + "\n"
    if new != text:
        with open(ETC_HOSTS, "r+", encoding="utf-8") as f:
            f.write(new)
            f.truncate()


def _sshd_config(ns: str, address: str) -> str:
    return "\n".join([
        f"# jupyter-hop test lab: sshd for {ns}",
        f"ListenAddress {address}:22",
        f"HostKey {LAB_DIR}/host_ed25519",
        f"PidFile {LAB_DIR}/sshd-{ns}.pid",
        f"AuthorizedKeysFile {LAB_DIR}/authorized_keys",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin no",
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",
        "X11Forwarding no",
        "PrintMotd no",
        "StrictModes yes",
        "LogLevel VERBOSE",
        "",
    ])


def build(user: TestUser) -> SshLab:
    started = time.monotonic()
    teardown_leftovers()
    net = pick_subnet()
    addrs, front, back = _layout(net)
    LAB_DIR.mkdir(mode=0o755)
    LAB_DIR.chmod(0o755)
    # network: laptop <-> login <-> compute; login does not route, and the laptop has no way to compute
    for ns in NAMESPACES:
        _sh("ip", "netns", "add", ns)
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        if "::1/128" not in _sh("ip", "-n", ns, "-6", "addr", "show", "dev", "lo").stdout:
            _sh("ip", "-n", ns, "addr", "add", "::1/128", "dev", "lo")  # kernels that leave lo IPv4-only
    _sh("ip", "link", "add", VETHS[0], "type", "veth", "peer", "name", VETHS[1], "netns", LOGIN)
    _sh("ip", "-n", LOGIN, "link", "add", VETHS[2], "type", "veth",
        "peer", "name", VETHS[3], "netns", COMPUTE)
    plen = front.split("/")[1]
    _sh("ip", "addr", "add", f"{addrs['laptop']}/{plen}", "dev", VETHS[0])
    _sh("ip", "-n", LOGIN, "addr", "add", f"{addrs['login']}/{plen}", "dev", VETHS[1])
    _sh("ip", "-n", LOGIN, "addr", "add", f"{addrs['login-back']}/{plen}", "dev", VETHS[2])
    _sh("ip", "-n", COMPUTE, "addr", "add", f"{addrs['compute']}/{plen}", "dev", VETHS[3])
    _sh("ip", "link", "set", VETHS[0], "up")
    _sh("ip", "-n", LOGIN, "link", "set", VETHS[1], "up")
    _sh("ip", "-n", LOGIN, "link", "set", VETHS[2], "up")
    _sh("ip", "-n", COMPUTE, "link", "set", VETHS[3], "up")
    _sh("ip", "netns", "exec", LOGIN, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
    _sh("ip", "route", "add", "unreachable", back)
    # names: the laptop knows only the login node; each node knows the other. `localhost` is ::1 as well as
    # 127.0.0.1, as Debian and RHEL ship it: sshd then tries [::1] first, where another user may listen.
    _edit_hosts_block([f"{addrs['login']} {LOGIN}"])
    node_hosts = (
        f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
        f"{addrs['login']} {LOGIN}\n{addrs['compute']} {COMPUTE}\n"
    )
    for ns in NAMESPACES:
        (NETNS_ETC / ns).mkdir(parents=True, exist_ok=True)
        (NETNS_ETC / ns / "hosts").write_text(node_hosts, encoding="utf-8")
    # keys: one host key for both sshd's, one client key owned by the test user
    keygen = ("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jupyter-hop-lab")
    _sh(*keygen, "-f", f"{LAB_DIR}/host_ed25519")
    client = LAB_DIR / "client"
    client.mkdir(mode=0o700)
    _sh(*keygen, "-f", f"{client}/id_ed25519")
    for path in (client, client / "id_ed25519", client / "id_ed25519.pub"):
        os.chown(path, user.uid, user.gid)
    (LAB_DIR / "authorized_keys").write_text((client / "id_ed25519.pub").read_text(), encoding="utf-8")
    host_pub = " ".join((LAB_DIR / "host_ed25519.pub").read_text().split()[:2])
    names = ",".join([LOGIN, COMPUTE, addrs["login"], addrs["compute"], addrs["login-back"]])
    (LAB_DIR / "known_hosts").write_text(f"{names} {host_pub}\n", encoding="utf-8")
    for path in (LAB_DIR / "authorized_keys", LAB_DIR / "known_hosts"):
        path.chmod(0o644)
    _unlock_account(user)
    # sshd needs its privilege-separation directory; Debian's package creates it only at boot
    if not PRIVSEP.exists():
        PRIVSEP.mkdir(mode=0o755)
        (LAB_DIR / "created-privsep-dir").touch()
    for ns in NAMESPACES:
        address = addrs[ns]
        conf = LAB_DIR / f"sshd-{ns}.conf"
        conf.write_text(_sshd_config(ns, address), encoding="utf-8")
        _sh(SSHD, "-t", "-f", str(conf))
        start = 'hostname "$0" && exec "$1" -f "$2" -E "$3"'
        _sh("ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", start,
            ns, SSHD, str(conf), str(LAB_DIR / f"sshd-{ns}.log"))
    DROPIN.write_text(
        "# jupyter-hop test lab (tests/lab/sshlab.py): removed when the lab is torn down\n"
        f"Match host {LOGIN},{COMPUTE}\n"
        f"    IdentityFile {client}/id_ed25519\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {LAB_DIR}/known_hosts\n"
        "    StrictHostKeyChecking yes\n"
        "    BatchMode yes\n"
        "    ConnectTimeout 5\n",
        encoding="utf-8",
    )
    DROPIN.chmod(0o644)
    for ns in NAMESPACES:
        _wait_sshd(ns, addrs[ns])
    public = {k: addrs[k] for k in ("laptop", LOGIN, "login-back", COMPUTE)}
    return SshLab(user, public, back, time.monotonic() - started)


def _unlock_account(user: TestUser) -> None:
    """Without PAM, sshd refuses key logins to a locked account ('!'); '*' is no password but not locked."""
    entry = _sh("getent", "shadow", user.name).stdout.split(":")
    if len(entry) > 1 and entry[1].startswith("!"):
        _sh("usermod", "-p", "*", user.name)


def _wait_sshd(ns: str, address: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    code = "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex((sys.argv[1], 22)))"
    probe = ["ip", "netns", "exec", ns, "python3", "-c", code, address]
    while _sh(*probe, check=False).returncode != 0:
        if time.monotonic() > deadline:
            log = LAB_DIR / f"sshd-{ns}.log"
            said = log.read_text() if log.exists() else ""
            raise LabError(f"sshd in {ns} did not listen on {address}:22: {said}")
        time.sleep(0.02)


def _state_ok() -> bool:
    """The lab another session built is still whole: both sshd's alive."""
    for ns in NAMESPACES:
        pid_file = LAB_DIR / f"sshd-{ns}.pid"
        try:
            pid = int(pid_file.read_text().strip())
            if Path(f"/proc/{pid}/comm").read_text().strip() != "sshd":
                return False
        except (OSError, ValueError):
            return False
    return DROPIN.exists()


def _load_existing(user: TestUser) -> SshLab:
    addrs = {}
    for line in (NETNS_ETC / LOGIN / "hosts").read_text().splitlines():
        ip, name = line.split()[:2]
        addrs.setdefault(name, ip)
    laptop = _sh("ip", "-4", "-o", "addr", "show", "dev", VETHS[0]).stdout.split()[3].split("/")[0]
    back = str(ipaddress.ip_interface(
        _sh("ip", "-n", COMPUTE, "-4", "-o", "addr", "show", "dev", VETHS[3]).stdout.split()[3]).network)
    login_back = _sh("ip", "-n", LOGIN, "-4", "-o", "addr", "show", "dev", VETHS[2]).stdout.split()[3].split("/")[0]
    public = {"laptop": laptop, LOGIN: addrs[LOGIN], "login-back": login_back, COMPUTE: addrs[COMPUTE]}
    return SshLab(user, public, back, 0.0)


@dataclass
class Lease:
    """A process's share of the lab: a shared lock on USERS_LOCK, held until `release`."""

    lab: SshLab
    fd: int


def acquire(user: TestUser) -> Lease:
    """Build the lab, or join the one another session has up; raises LabError (the lab is then torn down)."""
    users_fd = os.open(USERS_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        with lab_lock():
            try:
                fcntl.flock(users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            try:
                lab = build(user) if alone or not _state_ok() else _load_existing(user)
            except (LabError, OSError, subprocess.SubprocessError):
                teardown_leftovers()
                raise
            fcntl.flock(users_fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(users_fd)
        raise
    return Lease(lab, users_fd)


def release(lease: Lease, before_teardown: Callable[[], object] = lambda: None) -> None:
    """Drop the lease; the last session out runs `before_teardown` and tears the lab down."""
    try:
        with lab_lock():
            try:
                fcntl.flock(lease.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another session still uses it
            try:
                before_teardown()
            finally:
                teardown_leftovers()
    finally:
        os.close(lease.fd)


@pytest.fixture(scope="session")
def ssh_lab(test_user: TestUser) -> Iterator[SshLab]:
    """The lab, built once per session (shared with a concurrent session if one has it up), torn down by the
    last session using it."""
    try:
        lease = acquire(test_user)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"the ssh lab could not be set up: {exc}")
    try:
        yield lease.lab
    finally:
        release(lease)

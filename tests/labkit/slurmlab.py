"""A real single-node Slurm (slurmctld + slurmd, auth/none) bound to 127.0.0.1, for jobs run by the test user."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.user import LabError, TestUser, lab_lock

BASE = Path("/tmp/jupyter-hop-slurm-lab")
CTLD_PORT = 16817  # away from the default 6817, so a site's own Slurm on the same machine is never hit
SLURMD_PORT = 16818
START_TIMEOUT = 30.0
DAEMONS = ("slurmctld", "slurmd")
CLUSTER = "hoplab"  # job records are keyed by it: records/job-JOBID@hoplab.json


def _node_line(host: str) -> str:
    """The node's hardware as slurmd sees it, so the controller never drains it for a mismatch."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0].split()
    fields = [f for f in first if f.split("=")[0] in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket",
                                                       "ThreadsPerCore", "RealMemory")]
    return f"NodeName={host} NodeAddr=127.0.0.1 {' '.join(fields)} State=UNKNOWN"


def slurm_conf(base: Path, host: str) -> str:
    return "\n".join([
        "# jupyter-hop test lab: one node, loopback only, no accounting",
        f"ClusterName={CLUSTER}",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={CTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        # without these the daemons also listen on every other interface
        "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
        "AuthType=auth/none",
        "CredType=cred/none",
        "SlurmUser=root",
        "SlurmdUser=root",
        # batch_sched_delay=0: otherwise every job start waits about 1.5 s
        "SchedulerParameters=batch_sched_delay=0",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "TaskPlugin=task/none",
        # cgroup: scancel and the time limit also reach children that escaped the batch shell's process group
        "ProctrackType=proctrack/cgroup",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        "KillWait=5",
        "MinJobAge=300",
        f"StateSaveLocation={base}/state",
        f"SlurmdSpoolDir={base}/spool",
        f"SlurmctldPidFile={base}/slurmctld.pid",
        f"SlurmdPidFile={base}/slurmd.pid",
        f"SlurmctldLogFile={base}/slurmctld.log",
        f"SlurmdLogFile={base}/slurmd.log",
        _node_line(host),
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


CGROUP_CONF = "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\n"


@dataclass
class SlurmLab:
    base: Path
    conf: Path
    host: str
    started_here: bool

    def env(self) -> dict[str, str]:
        """What the test user's environment needs to talk to this Slurm (jobs inherit it)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env()})

    def queue(self) -> list[str]:
        """Ids of every job the controller still has pending or running."""
        out = self.run("squeue", "-h", "-o", "%i").stdout
        return out.split()

    @contextlib.contextmanager
    def cancelled_at_end(self, state_dir: Path) -> Iterator[list[str]]:
        """Job ids a test submitted (it appends them): cancelled at the end whatever happened, so no job outlives
        its test, with every job jupyter-hop noted under `state_dir`, in case a test failed before it learned
        the id (records and notes are named job-ID@CLUSTER.json)."""
        ids: list[str] = []
        yield ids
        noted = state_dir.rglob("job-*.json")
        ids = sorted(set(ids) | {p.name[4:-5].split("@")[0] for p in noted if p.parent.name in ("jobs", "records")})
        if ids:
            self.run("scancel", *ids)
            deadline = time.monotonic() + 60
            while set(ids) & set(self.queue()) and time.monotonic() < deadline:
                time.sleep(0.1)

    def cancel_all(self, timeout: float = 30) -> None:
        ids = self.queue()
        if ids:
            self.run("scancel", *ids)
        deadline = time.monotonic() + timeout
        while self.queue():
            if time.monotonic() > deadline:
                raise LabError(f"jobs {self.queue()} still in the queue {timeout} s after scancel")
            time.sleep(0.1)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _ours(pid: int, conf: Path) -> bool:
    """A daemon of this lab: started with our configuration file (pid files outlive their processes)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(conf).encode() in cmdline


def _stop_daemons(base: Path, conf: Path) -> None:
    for name in reversed(DAEMONS):
        pid = _pid(base / f"{name}.pid")
        if pid and _ours(pid, conf):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _ours(pid, conf) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _ours(pid, conf):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _node_state(lab: SlurmLab) -> str:
    try:
        out = lab.run("sinfo", "-h", "-o", "%T", timeout=5)
    except subprocess.TimeoutExpired:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _healthy(lab: SlurmLab) -> bool:
    """Up and able to run jobs; busy is healthy (other test sessions may be running jobs on it)."""
    state = _node_state(lab)
    bad = ("down", "drain", "fail", "unknown", "not_responding", "invalid", "*")
    return bool(state) and not any(word in state for word in bad)


def _running(base: Path, conf: Path) -> bool:
    return all((pid := _pid(base / f"{n}.pid")) is not None and _ours(pid, conf) for n in DAEMONS)


def start(base: Path = BASE) -> SlurmLab:
    """Start the lab, or reuse one that runs with exactly this configuration (another test run's, or ours)."""
    if os.getuid() != 0:
        raise LabError("the Slurm lab needs root (slurmd runs jobs as the test user)")
    for tool in ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo"):
        if not shutil.which(tool):
            raise LabError(f"{tool} is not installed: apt-get install slurmctld slurmd slurm-client (tests/run.sh)")
    host = socket.gethostname().split(".")[0]
    conf = base / "slurm.conf"
    text = slurm_conf(base, host)
    lab = SlurmLab(base, conf, host, started_here=False)
    with lab_lock():
        if _running(base, conf) and _same_conf(conf, text) and _healthy(lab):
            return lab
        _stop_daemons(base, conf)
        # leftovers of an earlier run: old job state would bring back jobs of users' deleted homes
        shutil.rmtree(base, ignore_errors=True)
        for sub in ("state", "spool"):
            (base / sub).mkdir(parents=True, mode=0o755)
        base.chmod(0o755)
        # Job ids never repeat across restarts: another session's clean-up cancels its jobs by id, and must
        # not hit a job of this lab that got the same number.
        conf.write_text(text + f"FirstJobId={int(time.time() * 10) % 50_000_000 + 1000}\n")
        (base / "cgroup.conf").write_text(CGROUP_CONF)
        for path in (conf, base / "cgroup.conf"):
            path.chmod(0o644)
        # -c: start from a clean state (no jobs of an earlier controller)
        _daemon(["slurmctld", "-c", "-f", str(conf)], base / "slurmctld.log")
        _daemon(["slurmd", "-f", str(conf)], base / "slurmd.log")
        lab.started_here = True
        deadline = time.monotonic() + START_TIMEOUT
        while _node_state(lab) != "idle":
            if time.monotonic() > deadline:
                raise LabError(f"Slurm lab not idle within {START_TIMEOUT} s: {_log_tails(base)}")
            time.sleep(0.05)
    return lab


def _same_conf(conf: Path, text: str) -> bool:
    try:
        current = conf.read_text()
    except OSError:
        return False
    return "\n".join(line for line in current.splitlines() if not line.startswith("FirstJobId=")) + "\n" == text


def _daemon(argv: list[str], log: Path) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "SLURM_CONF": argv[-1]})
    if result.returncode != 0:
        raise LabError(f"{argv[0]} failed to start ({result.returncode}): {result.stderr.strip()} "
                       f"{_log_tails(log.parent)}")


def _log_tails(base: Path) -> str:
    parts = []
    for name in DAEMONS:
        with contextlib.suppress(OSError):
            lines = (base / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            parts.append(f"\n--- {name}.log ---\n" + "\n".join(lines))
    return "".join(parts)


def stop(lab: SlurmLab) -> None:
    with lab_lock():
        _teardown(lab)


def _teardown(lab: SlurmLab) -> None:
    """Cancel every job (stopping slurmd does not kill jobs), then the daemons; remove only our files."""
    if _healthy(lab):
        with contextlib.suppress(LabError):
            lab.cancel_all()
    _stop_daemons(lab.base, lab.conf)
    shutil.rmtree(lab.base, ignore_errors=True)
    with contextlib.suppress(OSError):
        _leases(lab.base).rmdir()
    _remove_cgroups(lab.host)


def _remove_cgroups(host: str) -> None:
    """proctrack/cgroup leaves its (empty) slurm_<node> tree in each v1 hierarchy; rmdir is all a cgroup
    takes, and it fails harmlessly on one that still holds a process."""
    for top in Path("/sys/fs/cgroup").glob(f"*/slurm_{host}"):
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _leases(base: Path) -> Path:
    return base.parent / (base.name + ".users")


def _live_leases(base: Path) -> list[Path]:
    """Test sessions (pids) that use the lab now; leases of sessions that died are dropped."""
    live = []
    for lease in _glob(_leases(base)):
        try:
            os.kill(int(lease.name), 0)
            live.append(lease)
        except (ValueError, ProcessLookupError):
            lease.unlink(missing_ok=True)
        except PermissionError:
            live.append(lease)
    return live


def _glob(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def acquire() -> SlurmLab:
    """Start or join the lab, holding a lease for this process until `release`."""
    with lab_lock():
        _leases(BASE).mkdir(mode=0o755, exist_ok=True)
        (_leases(BASE) / str(os.getpid())).touch()
    return start()


def release(lab: SlurmLab) -> None:
    """Drop this process's lease; the last one to leave stops the lab."""
    with lab_lock():
        (_leases(lab.base) / str(os.getpid())).unlink(missing_ok=True)
        if not _live_leases(lab.base):
            _teardown(lab)


@pytest.fixture(scope="session")
def slurm_lab(test_user: TestUser) -> Iterator[SlurmLab]:
    """Shared by every test session on the machine at the time (engineers run suites side by side): each
    session holds a lease, and the last one to leave stops the lab."""
    try:
        lab = acquire()
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"the Slurm lab could not be set up: {exc}")
    yield lab
    release(lab)


@pytest.fixture
def slurm_user_env(user_home: dict[str, str], slurm_lab: SlurmLab) -> dict[str, str]:
    """The test user's fresh XDG dirs plus what talks to this Slurm: what `jupyter-hop slurm ...` runs with."""
    return {**user_home, **slurm_lab.env()}


@pytest.fixture
def slurm_jobs(slurm_lab: SlurmLab, slurm_user_env: dict[str, str]) -> Iterator[list[str]]:
    """Job ids a test submitted, cancelled at its end with every job noted in its state dir."""
    with slurm_lab.cancelled_at_end(Path(slurm_user_env["XDG_STATE_HOME"])) as ids:
        yield ids

"""Slurm inside the ssh lab: slurmctld on `login`, slurmd on `compute`, so jobs submitted on login run on compute."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.sshlab import COMPUTE, LAB_DIR, LOGIN, SshLab
from labkit.user import LabError, lab_lock

BASE = LAB_DIR / "slurm"  # removed with the ssh lab, whose teardown also ends every process in its namespaces
CTLD_PORT = 26817  # neither the default nor the loopback Slurm lab's ports
SLURMD_PORT = 26818
START_TIMEOUT = 30.0
CLUSTER = "hopssh"  # job records are keyed by it: records/job-JOBID@hopssh.json


def _hardware() -> str:
    first = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.split()
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return " ".join(f for f in first if f.split("=")[0] in keep)


def slurm_conf(login_address: str, compute_address: str) -> str:
    return "\n".join([
        "# jupyter-hop ssh lab: controller on login, one node `compute`, no accounting",
        f"ClusterName={CLUSTER}",
        f"SlurmctldHost={LOGIN}({login_address})",
        f"SlurmctldPort={CTLD_PORT}",
        f"SlurmdPort={SLURMD_PORT}",
        # no NoCtldInAddrAny: slurmctld would bind what `login` resolves to (the laptop side); "any" inside
        # the namespaces is only the lab's own addresses
        "AuthType=auth/none",
        "CredType=cred/none",
        "SlurmUser=root",
        "SlurmdUser=root",
        "SchedulerParameters=batch_sched_delay=0",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "TaskPlugin=task/none",
        # by ancestry: proctrack/cgroup would share cgroup paths with the loopback Slurm lab's slurmd
        "ProctrackType=proctrack/linuxproc",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MailProg=/bin/true",
        "ReturnToService=2",
        "KillWait=5",
        "MinJobAge=300",
        f"StateSaveLocation={BASE}/state",
        f"SlurmdSpoolDir={BASE}/spool",
        f"SlurmctldPidFile={BASE}/slurmctld.pid",
        f"SlurmdPidFile={BASE}/slurmd.pid",
        f"SlurmctldLogFile={BASE}/slurmctld.log",
        f"SlurmdLogFile={BASE}/slurmd.log",
        f"NodeName={COMPUTE} NodeAddr={compute_address} {_hardware()} State=UNKNOWN",
        f"PartitionName=lab Nodes={COMPUTE} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


@dataclass(frozen=True)
class SshSlurm:
    """Submit and watch jobs as the test user on the login node; the jobs run on compute."""

    lab: SshLab
    conf: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf), **(extra or {})}

    def on_login(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return self.lab.run_in(LOGIN, args, self.env(env), **kwargs)

    def root(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", LOGIN, *args], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "SLURM_CONF": str(self.conf)})

    def job_state(self, job_id: str) -> str:
        out = self.root("scontrol", "show", "job", "-o", job_id).stdout
        for word in out.split():
            if word.startswith("JobState="):
                return word.split("=", 1)[1]
        return ""

    def cancel(self, job_id: str, timeout: float = 30) -> str:
        """scancel as the user, then wait until the job has left the running states; returns the last state."""
        self.on_login(["scancel", job_id])
        deadline = time.monotonic() + timeout
        while (state := self.job_state(job_id)) in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {state} {timeout} s after scancel")
            time.sleep(0.05)
        return state


def daemon_prefix(ns: str) -> list[str]:
    """Like `ip netns exec NS` (network, /etc/hosts, host name) but keeping /sys as it is: slurmd needs the cgroup
    mounts that `ip netns exec` hides by remounting /sys. Jobs inherit all of it from slurmd."""
    script = 'mount --bind "/etc/netns/$0/hosts" /etc/hosts && hostname "$0" && exec "$@"'
    return ["nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--uts", "sh", "-c", script, ns]


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("slurmctld", "slurmd")
    except (OSError, ValueError, IndexError):
        return False


def _idle(slurm: SshSlurm) -> bool:
    try:
        out = slurm.root("sinfo", "-h", "-o", "%T")
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated")


def start(lab: SshLab) -> SshSlurm:
    conf = BASE / "slurm.conf"
    slurm = SshSlurm(lab, conf)
    with lab_lock():
        if _alive(BASE / "slurmctld.pid") and _alive(BASE / "slurmd.pid") and _idle(slurm):
            return slurm
        if BASE.exists():
            raise LabError(f"{BASE} holds a broken Slurm of an earlier run; the ssh lab rebuild removes it")
        for sub in ("state", "spool"):
            (BASE / sub).mkdir(parents=True, mode=0o755)
        conf.write_text(slurm_conf(lab.addresses["login-back"], lab.addresses[COMPUTE]))
        conf.chmod(0o644)
        (BASE / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\n")
        (BASE / "cgroup.conf").chmod(0o644)
        for ns, argv in ((LOGIN, ["slurmctld", "-c", "-f", str(conf)]), (COMPUTE, ["slurmd", "-f", str(conf)])):
            result = subprocess.run(
                [*daemon_prefix(ns), *argv], capture_output=True, text=True, timeout=30,
                env={**os.environ, "SLURM_CONF": str(conf)},
            )
            if result.returncode != 0:
                raise LabError(f"{argv[0]} in {ns} failed: {result.stderr.strip()}")
        deadline = time.monotonic() + START_TIMEOUT
        while not _idle(slurm):
            if time.monotonic() > deadline:
                logs = "".join((BASE / f"{d}.log").read_text(errors="replace")[-2000:]
                               for d in ("slurmctld", "slurmd") if (BASE / f"{d}.log").exists())
                raise LabError(f"Slurm in the ssh lab not idle within {START_TIMEOUT} s: {logs}")
            time.sleep(0.05)
    return slurm


@pytest.fixture(scope="session")
def ssh_slurm(ssh_lab: SshLab) -> SshSlurm:
    try:
        return start(ssh_lab)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"Slurm in the ssh lab could not be started: {exc}")

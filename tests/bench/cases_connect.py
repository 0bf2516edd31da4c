"""`jupyter hop connect` until its tunnel answers, against the same steps by hand in the same round (issue 13):
`ssh hpc jupyter-hop slurm submit PROFILE --json`, then the object's own `ssh -N -J hpc -L ...` until the first
200. Both as the ssh lab's laptop user, against its key+password login node with real Slurm behind it (the lab
kit brings it all up, as the lab tests do, and the last one out tears it down). The job's start dominates both."""

from __future__ import annotations

import atexit
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from run import Bench, Case

NAME = "connect until the tunnel answers"
BY_HAND = "by hand: ssh submit, then ssh -N -J -L"
PROFILE = "cbench"
TIMEOUT = 180.0


def cases(bench: Bench) -> list[Case]:
    if os.getuid() != 0:
        raise RuntimeError("the connect cases need root (they start the ssh lab with Slurm in it)")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from labkit import laptoplab, sshlab, sshslurm
    from labkit.launch import init_profile
    from labkit.user import ensure_user

    from jupyter_hop.laptop import probe

    lease = sshlab.acquire(ensure_user())
    try:
        lab = laptoplab.setup(lease.lab)
        slurm = sshslurm.start(lease.lab)
    except BaseException:
        sshlab.release(lease)
        raise
    atexit.register(sshlab.release, lease, lambda: laptoplab.teardown_locked(lab))
    user, laptop = lab.remote_user, lab.laptop
    area = bench.base / "connect"
    home = {"XDG_CONFIG_HOME": str(area / "config"), "XDG_STATE_HOME": str(area / "state"),
            "WORK_DIR": str(area / "work")}
    for path in (area, *map(Path, home.values())):
        path.mkdir(exist_ok=True)
        os.chown(path, user.uid, user.gid)
    bench.base.chmod(0o755)
    init_profile(user, home, PROFILE, "--app", "server", "--local-port", str(sshlab.free_port()),
                 password="bench password")
    remote = shlex.join(["env", f"XDG_CONFIG_HOME={home['XDG_CONFIG_HOME']}",
                         f"XDG_STATE_HOME={home['XDG_STATE_HOME']}", f"SLURM_CONF={slurm.conf}",
                         str(user.venv_bin / "jupyter-hop")])
    config = laptop.home / ".config" / "jupyter-hop"
    config.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (config.parent, config):
        os.chown(path, laptop.uid, laptop.gid)
    hosts = config / "hosts.toml"
    hosts.write_text(f"[hosts.{laptoplab.ALIAS}]\nremote_command = {json.dumps(remote)}\n", encoding="utf-8")
    os.chown(hosts, laptop.uid, laptop.gid)
    atexit.register(hosts.unlink, missing_ok=True)
    rounds = iter(range(1_000_000))

    def cancel_jobs() -> None:
        """Outside the timed part: a job left running would hold the lab's one node for the next round."""
        out = slurm.root("squeue", "-h", "-o", "%i", "-u", user.name).stdout
        for job_id in out.split():
            slurm.cancel(job_id)

    atexit.register(cancel_jobs)

    def by_hand() -> float | None:
        env = lab.env(lab.askpass(f"bench-hand-{next(rounds)}"))
        start = time.perf_counter()
        try:
            submitted = lab.run(["ssh", laptoplab.ALIAS, f"{remote} slurm submit {PROFILE} --json"], env,
                                timeout=TIMEOUT)
            if submitted.returncode != 0:
                print(f"  ! ssh ... slurm submit exited {submitted.returncode}: {submitted.stderr.strip()[-300:]}")
                return None
            obj = json.loads(submitted.stdout)
            # the object's own tunnel, with the jump as this laptop reaches the login node (its alias)
            argv = [laptoplab.ALIAS if word == obj["tunnel"]["jump"] else word for word in obj["tunnel"]["argv"]]
            tunnel = lab.popen(argv, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                login_page = obj["url"].replace("localhost", "127.0.0.1").rstrip("/") + "/login"
                while probe.status(login_page, timeout=1.0) != 200:
                    if tunnel.poll() is not None or time.perf_counter() - start > TIMEOUT:
                        print(f"  ! the tunnel by hand did not answer (ssh exit {tunnel.poll()})")
                        return None
                    time.sleep(0.005)
                return time.perf_counter() - start
            finally:
                tunnel.terminate()
                tunnel.wait(10)
        finally:
            cancel_jobs()

    def connect() -> float | None:
        env = lab.env(lab.askpass(f"bench-connect-{next(rounds)}"))
        hop = str(laptop.venv_bin / "jupyter-hop")
        start = time.perf_counter()
        run = lab.popen([hop, "connect", laptoplab.ALIAS, PROFILE, "--no-browser"], env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
        assert run.stdout is not None
        try:
            while time.perf_counter() - start < TIMEOUT:
                ready, _, _ = select.select([run.stdout], [], [], 1)
                line = run.stdout.readline() if ready else ""
                if line.startswith("Jupyter is ready"):
                    return time.perf_counter() - start
                if run.poll() is not None:
                    break
            print(f"  ! connect not ready (exit {run.poll()})")
            return None
        finally:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
            _, err = run.communicate(timeout=60)
            if run.returncode not in (0, 130):
                print(f"  ! connect exited {run.returncode}: {err.strip()[-300:]}")
            cancel_jobs()

    return [Case(BY_HAND, by_hand, against=None), Case(NAME, connect, against=BY_HAND)]

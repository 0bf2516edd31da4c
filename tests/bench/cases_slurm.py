"""Submit-to-instructions on the real Slurm lab, against its parts measured in the same round: the bare job start
(sbatch until the job's first command runs) and a bare `jupyter server` until its first 200; the rest is
jupyter-hop's own overhead (target: at most 0.3 s)."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from pathlib import Path

from cases_launch import as_user, free_port
from run import Bench, Case
from timing import time_until_ready

OVERHEAD_TARGET = 0.3


def _lab() -> dict[str, str]:
    """The Slurm lab's client environment, under a lease like a test session's (the last to leave stops it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from labkit import slurmlab

    lab = slurmlab.acquire()
    atexit.register(slurmlab.release, lab)
    return lab.env()


def cases(bench: Bench) -> list[Case]:
    if os.getuid() != 0:
        raise RuntimeError("the Slurm cases need root (they start the Slurm lab)")
    wrap, uid, gid = as_user(bench)
    area = bench.base / "slurm"
    for sub in ("", "config", "state", "work", "runtime"):
        (area / sub).mkdir(exist_ok=True)
        os.chown(area / sub, uid, gid)
    bench.base.chmod(0o755)
    env = {
        "HOME": str(area),
        "XDG_CONFIG_HOME": str(area / "config"),
        "XDG_STATE_HOME": str(area / "state"),
        "PATH": f"{bench.bin_dir}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        **_lab(),
    }
    hop = bench.exe("jupyter-hop")
    init = [hop, "init", "sbench", "--password-stdin", "--app", "server", "--root-dir", str(area / "work")]
    made = subprocess.run(wrap(init, env), input="bench\n", capture_output=True, text=True, cwd=area, timeout=60)
    if made.returncode != 0:
        raise RuntimeError(f"cannot create the slurm bench profile: {made.stderr.strip()}")
    config = area / "config" / "jupyter-hop" / "servers" / "sbench" / "jupyter_server_config.py"
    flag = area / "work" / "started"
    figures: dict[str, float] = {}
    wrapped: list[str] = []

    def cancel_leftovers() -> None:
        """Jobs of a round that failed or timed out must not hold the lab's CPUs for hours."""
        noted = [p.name[4:-5] for p in (area / "state" / "jupyter-hop" / "jobs").glob("job-*.json")]
        ids = [*wrapped, *noted]
        if ids:
            subprocess.run(wrap(["scancel", *ids], env), capture_output=True, cwd=area, timeout=60)
        wrapped.clear()

    atexit.register(cancel_leftovers)

    def job_start() -> float | None:
        flag.unlink(missing_ok=True)
        start = time.perf_counter()
        argv = wrap(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", f"touch {flag}"], env)
        submitted = subprocess.run(argv, capture_output=True, text=True, cwd=area, timeout=60)
        if submitted.returncode != 0:
            return None
        wrapped.append(submitted.stdout.strip().split(";")[0])
        deadline = time.monotonic() + 60
        while not flag.exists():
            if time.monotonic() > deadline:
                print("  ! the bare job did not start within 60 s (is the lab's node busy?)")
                cancel_leftovers()
                return None
            time.sleep(0.002)
        figures["job"] = time.perf_counter() - start
        return figures["job"]

    def bare_server() -> float | None:
        port = free_port()
        argv = wrap([bench.exe("jupyter"), "server", f"--config={config}", f"--ServerApp.port={port}",
                     "--ServerApp.port_retries=0"], {**env, "JUPYTER_RUNTIME_DIR": str(area / "runtime")})
        result = time_until_ready(argv, f"http://127.0.0.1:{port}/api", {"PATH": "/usr/bin:/bin"}, area)
        if result is not None:
            figures["server"] = result
        return result

    def submit() -> float | None:
        start = time.perf_counter()
        try:
            done = subprocess.run(wrap([hop, "slurm", "submit", "sbench"], env), capture_output=True, text=True,
                                  cwd=area, timeout=180)
        except subprocess.TimeoutExpired:
            print("  ! slurm submit did not finish within 180 s")
            cancel_leftovers()
            return None
        elapsed = time.perf_counter() - start
        job_id = done.stderr.split("Submitted Slurm job ", 1)[-1].split(";", 1)[0]
        if job_id.isdigit():
            subprocess.run(wrap([hop, "slurm", "cancel", job_id], env), capture_output=True, cwd=area, timeout=180)
        cancel_leftovers()
        if done.returncode != 0:
            print(f"  ! slurm submit exited {done.returncode}: {done.stderr.strip()[-300:]}")
            return None
        figures["submit"] = elapsed
        return elapsed

    def overhead() -> float | None:
        # from this round's three figures, measured just before
        if not all(k in figures for k in ("job", "server", "submit")):
            return None
        value = figures["submit"] - figures["job"] - figures["server"]
        figures.clear()
        return value

    job_name = "bare Slurm job start (sbatch to run)"
    server_name = "bare jupyter server to first 200"
    return [
        Case(job_name, job_start, against=None),
        Case(server_name, bare_server, against=None),
        Case("jupyter-hop slurm submit to printed", submit, against=None),
        Case(f"  of which: overhead (<= {OVERHEAD_TARGET} s)", overhead, against=None),
    ]

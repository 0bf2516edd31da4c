"""How often `slurm submit` asks squeue while its job pends: the real CLI against a fake squeue on PATH that logs
each call and always answers PENDING, for WAIT seconds; printed next to the old fixed 0.25 s poll, and, from
the same schedule (jobs.poll_interval), what longer waits cost. Measured once (a wait takes WAIT seconds), so
it prints figures rather than adding timed cases; runs without root and without the Slurm lab.

Usage on its own: python tests/bench/cases_polling.py [SECONDS]
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import Bench, Case

WAIT = 30.0
OLD_POLL = 0.25  # before: one squeue every 0.25 s for as long as the job pends


def schedule_calls(seconds: float) -> int:
    """squeue calls in the first `seconds` of a pending wait, by the schedule wait_ready follows."""
    from jupyter_hop.slurm import jobs

    t, calls = 0.0, 0
    while t < seconds:
        calls += 1
        t += jobs.poll_interval("queued", t)
    return calls


def measure(bench: Bench, seconds: float) -> list[float]:
    """Times (from submit) of the squeue calls of one real `slurm submit` whose job pends for `seconds`."""
    with tempfile.TemporaryDirectory(prefix="hop-poll-") as tmp:
        base = Path(tmp)
        log = base / "squeue.log"
        bin_dir = base / "bin"
        bin_dir.mkdir()
        tools = {
            "sbatch": "echo 4242\n",
            "squeue": f'date +%s.%N >> {log}\necho "4242|PENDING|Priority||N/A|4:00:00|N/A|(null)"\n',
            "scontrol": "exit 1\n",
        }
        for name, body in tools.items():
            (bin_dir / name).write_text("#!/bin/sh\n" + body)
            (bin_dir / name).chmod(0o755)
        conf = base / "slurm.conf"
        conf.write_text("ClusterName=bench\n")
        env = {**bench.env, "PATH": f"{bin_dir}:{bench.env['PATH']}", "SLURM_CONF": str(conf)}
        started = time.time()
        proc = subprocess.Popen([bench.exe("jupyter-hop"), "slurm", "submit", bench.profile], env=env,
                                cwd=bench.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        proc.send_signal(signal.SIGINT)  # what a user's Ctrl-C does: stop waiting, leave the job
        proc.wait(timeout=30)
        stamps = [float(line) for line in log.read_text().split()] if log.exists() else []
    return [stamp - started for stamp in stamps]


def report(calls: list[float], seconds: float) -> None:
    print(f"\nsqueue calls while a job pends (`slurm submit`, fake squeue, {seconds:.0f} s measured):")
    print(f"  measured: {len(calls)} calls in {seconds:.0f} s (schedule: {schedule_calls(seconds)}); "
          f"a fixed {OLD_POLL} s poll: {seconds / OLD_POLL:.0f}")
    print(f"  {'pending for':>11}  {'calls before':>12}  {'after':>6}  {'per min before':>14}  {'after':>6}")
    for span in (seconds, 60.0, 600.0, 3600.0):
        before, after = span / OLD_POLL, schedule_calls(span)
        print(f"  {span / 60:>7.1f} min  {before:>12.0f}  {after:>6d}  {before / span * 60:>14.0f}  "
              f"{after / span * 60:>6.1f}")
    late = [b - a for a, b in itertools.pairwise(calls) if a > 5.0]
    if late:
        print(f"  measured interval after the first 5 s: {min(late):.2f}-{max(late):.2f} s")


def cases(bench: Bench) -> list[Case]:
    report(measure(bench, WAIT), WAIT)
    return []


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import make_bench

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else WAIT
    parent = Path("/var/lib") if os.getuid() == 0 else Path.home()
    home = Path(tempfile.mkdtemp(prefix="jupyter-hop-bench-", dir=parent))
    try:
        report(measure(make_bench(home), seconds), seconds)
    finally:
        import shutil

        shutil.rmtree(home, ignore_errors=True)

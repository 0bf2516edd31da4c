"""Time awareness and readiness that does not trust the shared home, on the real single-node Slurm lab.

- A job that pends behind a full node: the status line gives the reason in words and, once Slurm's backfill
  scheduler has computed one, the expected start; `slurm status` and `list` show it too; squeue is asked less
  and less often while it pends.
- A job with --begin: the expected start is there at once.
- A record that the waiting side cannot see until long after the server answered (NFS-like lag, made with a
  private mount namespace for the waiter): readiness comes through the job's comment within a few seconds, and
  the instructions are printed, correct, once the record shows up.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from labkit.http_login import login
from labkit.launch import hop, init_profile
from labkit.slurmlab import CLUSTER, SlurmLab
from labkit.slurmlab import slurm_jobs as jobs  # noqa: F401 (fixtures, under the names these tests use)
from labkit.slurmlab import slurm_user_env as env  # noqa: F401
from labkit.user import TestUser

from jupyter_hop import timetext
from jupyter_hop.slurm import comment, tools
from jupyter_hop.slurm import jobs as jobs_module

pytestmark = pytest.mark.lab
PASSWORD = "pw-s3cret"




class Lines:
    """A process's stderr lines as they come, each with the monotonic time it arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.items: list[tuple[float, str]] = []
        self.done = threading.Event()
        assert proc.stderr is not None
        stream = proc.stderr

        def pump() -> None:
            for line in stream:
                self.items.append((time.monotonic(), line.rstrip("\n")))
            self.done.set()

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in list(self.items):
                if text in item[1]:
                    return item
            if self.done.is_set():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line with {text!r} within {timeout} s: {[line for _, line in self.items]}")

    def text(self) -> str:
        return "\n".join(line for _, line in self.items)


def job_id_of(lines: Lines) -> str:
    _, first = lines.wait_for("Submitted Slurm job ", 30)
    return first.split("Submitted Slurm job ", 1)[1].split(";")[0]


def set_key(env: dict[str, str], name: str, old: str, new: str) -> None:
    profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / f"{name}.toml"
    text = profile.read_text()
    assert old in text
    profile.write_text(text.replace(old, new, 1))


def squeue_field(lab: SlurmLab, job_id: str, field: str) -> str:
    return lab.run("squeue", "-h", "-j", job_id, "-o", field).stdout.strip()


def scheduled_polls(seconds: float) -> int:
    """How many squeue calls jobs.poll_interval allows while a job pends for `seconds`."""
    at, calls = 0.0, 0
    while at < seconds:
        calls += 1
        at += jobs_module.poll_interval("queued", at)
    return calls


def test_pending_behind_a_full_node_says_why_and_when(test_user: TestUser, env: dict[str, str],
                                                      slurm_lab: SlurmLab, jobs: list[str]) -> None:
    """A blocker takes every CPU of the node for two minutes; the profile's job then pends for Resources. Slurm's
    backfill scheduler (every bf_interval, 30 s by default) estimates its start: the blocker's end. The node is
    full only for this test (lab tests run one at a time) and the blocker is cancelled at once afterwards."""
    cpus = slurm_lab.run("sinfo", "-h", "-o", "%c").stdout.strip()
    blocker = test_user.run(["sbatch", "--parsable", "-o", "/dev/null", "-c", cpus, "-t", "2", "--wrap",
                             "sleep 110"], env)
    assert blocker.returncode == 0, blocker.stderr
    blocker_id = blocker.stdout.strip()
    jobs.append(blocker_id)
    deadline = time.monotonic() + 30
    while squeue_field(slurm_lab, blocker_id, "%T") != "RUNNING":
        assert time.monotonic() < deadline, "the blocker did not start"
        time.sleep(0.1)
    blocker_end = tools.parse_time(squeue_field(slurm_lab, blocker_id, "%e"))
    assert blocker_end is not None
    init_profile(test_user, env, "later", "--app", "server", password=PASSWORD)
    started = time.monotonic()
    # --debug traces each Slurm call (proc.run), so the squeue calls of the wait can be counted
    proc = test_user.popen(["jupyter-hop", "--debug", "slurm", "submit", "later"], env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    lines = Lines(proc)
    try:
        job_id = job_id_of(lines)
        jobs.append(job_id)
        lines.wait_for("PENDING: waiting for resources (nodes, CPUs, memory or GPUs) to free up (Resources)", 30)
        seen, line = lines.wait_for("expected start", 60)
        print(f"\nexpected start shown {seen - started:.1f} s after submit: {line}")
        now = time.time()
        assert f"(Resources), expected start {timetext.moment(blocker_end, now)} (in " in line, line
        rows = {r["job_id"]: r for r in json.loads(hop(test_user, env, "slurm", "status", "--json").stdout)}
        assert rows[job_id]["state"] == "PENDING" and rows[job_id]["expected_start"] == blocker_end
        table = hop(test_user, env, "slurm", "status").stdout
        assert f"PENDING (Resources), expected start {timetext.moment(blocker_end, time.time())}" in table, table
        servers = json.loads(hop(test_user, env, "list", "--json").stdout)["servers"]
        assert [s["expected_start"] for s in servers if s["job_id"] == job_id] == [blocker_end]
        assert "expected start" in hop(test_user, env, "list").stdout
        waited = time.monotonic() - started
        calls = lines.text().count("squeue -h -u")
        print(f"squeue calls while pending: {calls} in {waited:.1f} s; a fixed 0.25 s poll: {waited / 0.25:.0f}")
        # the backoff schedule's calls in that time (fast for its first seconds), and a margin for the call at
        # submit and the scheduling delays of a loaded machine
        assert calls <= scheduled_polls(waited) + 3, (calls, scheduled_polls(waited))
        assert calls < waited / 0.25, "no fewer calls than a fixed 0.25 s poll"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 130
    slurm_lab.run("scancel", blocker_id, job_id)


def test_begin_time_is_the_expected_start_at_once(test_user: TestUser, env: dict[str, str],
                                                  jobs: list[str]) -> None:
    init_profile(test_user, env, "begin", "--app", "server", password=PASSWORD)
    set_key(env, "begin", "extra_directives = []", 'extra_directives = ["--begin=now+300"]')
    proc = test_user.popen(["jupyter-hop", "slurm", "submit", "begin"], env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    lines = Lines(proc)
    try:
        job_id = job_id_of(lines)
        jobs.append(job_id)
        _, line = lines.wait_for("PENDING", 30)
        assert line.startswith(f"Slurm job {job_id}: PENDING: waiting for its earliest start time (--begin) "
                               "(BeginTime), expected start "), line
        assert " UTC (in 4 min) (" in line, line  # 300 s less the second or so since sbatch, rounded down
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


HIDDEN_FOR = 8.0  # seconds the waiting side keeps seeing an empty records dir after the record was written


def test_ready_through_the_comment_while_the_record_is_hidden(test_user: TestUser, env: dict[str, str],
                                                              slurm_lab: SlurmLab, jobs: list[str],
                                                              tmp_path: Path) -> None:
    """The waiter runs in its own mount namespace, where the records dir is an empty tmpfs until the test
    bind-mounts the real one over it, HIDDEN_FOR seconds after the launcher wrote the record (the job itself
    writes into the real dir): what a login node on NFS sees while its cached directory entries are stale."""
    init_profile(test_user, env, "nfs", "--app", "server", password=PASSWORD)
    records_dir = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records"
    made = test_user.run(["mkdir", "-p", "-m", "700", str(records_dir)], env)
    assert made.returncode == 0, made.stderr
    real_view, trigger = tmp_path / "real", tmp_path / "show-the-record"
    real_view.mkdir()
    waiter = shlex.join(test_user.argv(["jupyter-hop", "slurm", "submit", "nfs"], env))
    script = "\n".join([
        "set -e",
        f"mount --bind {shlex.quote(str(records_dir))} {shlex.quote(str(real_view))}",
        f"mount -t tmpfs -o mode=0700,uid={test_user.uid},gid={test_user.gid} hidden "
        f"{shlex.quote(str(records_dir))}",
        f"{waiter} &",
        "waiter=$!",
        f"while [ ! -e {shlex.quote(str(trigger))} ]; do sleep 0.02; done",
        f"mount --bind {shlex.quote(str(real_view))} {shlex.quote(str(records_dir))}",
        'wait "$waiter"',
    ])
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        job_id = job_id_of(lines)
        jobs.append(job_id)
        record_file = records_dir / f"job-{job_id}@{CLUSTER}.json"
        deadline = time.monotonic() + 120
        while not record_file.exists():  # this (root) namespace sees the real dir
            assert time.monotonic() < deadline and proc.poll() is None, lines.text()
            time.sleep(0.01)
        record_seen = time.monotonic()  # within 10 ms of the launcher writing it, right after GET /api answered
        record = json.loads(record_file.read_text())
        ready_at, line = lines.wait_for("Jupyter is ready there", HIDDEN_FOR - 1)
        lag = ready_at - record_seen
        print(f"\nrecord written to the waiter saying ready (record hidden from it): {lag:.2f} s")
        assert line.startswith(f"Slurm job {job_id}: RUNNING on {slurm_lab.host}, Jupyter is ready there; "
                               "waiting for its record to show up on this host"), line
        assert lag < 3.0
        note = comment.parse(squeue_field(slurm_lab, job_id, "%k"))
        assert note == comment.Announcement("ready", slurm_lab.host, int(record["port"]), False,
                                            str(record["launch_id"]))
        time.sleep(max(0.0, record_seen + HIDDEN_FOR - time.monotonic()))
        assert proc.poll() is None, lines.text()  # still waiting for the record it cannot see
        trigger.touch()
        revealed = time.monotonic()
        out, _ = proc.communicate(timeout=30)
        lines.done.wait(5)
        print(f"record shown to instructions printed: {time.monotonic() - revealed:.2f} s")
    finally:
        if proc.poll() is None:
            trigger.touch()
            proc.wait(timeout=30)
    assert proc.returncode == 0, lines.text()
    # the instructions are the record's: node, job, end, the port the launcher chose, the password login
    port = int(record["port"])
    assert f"Jupyter is ready on {slurm_lab.host} (Slurm job {job_id}, ends " in out
    assert f" -L 127.0.0.1:{record['local_port']}:127.0.0.1:{port} " in out
    assert "log in with your jupyter-hop password" in out
    assert login(f"http://127.0.0.1:{port}/", PASSWORD) == 200
    again = hop(test_user, env, "slurm", "instructions", job_id)
    assert again.returncode == 0 and again.stdout.splitlines()[1:] == out.splitlines()[1:]
    assert hop(test_user, env, "slurm", "cancel", job_id).returncode == 0
    log = (Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "jobs" / f"nfs-{job_id}.log").read_text()
    assert "could not mark the job's comment" not in log, log  # nor at the stop that scancel caused

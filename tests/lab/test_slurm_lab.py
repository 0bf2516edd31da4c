"""Batch jobs on a real single-node Slurm, submitted by the non-root test user through the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from labkit.http_login import login
from labkit.launch import hop, init_profile, port_open
from labkit.slurmlab import CLUSTER, SlurmLab
from labkit.slurmlab import slurm_jobs as jobs  # noqa: F401 (fixtures, under the names these tests use)
from labkit.slurmlab import slurm_user_env as env  # noqa: F401
from labkit.user import TestUser

from jupyter_hop.slurm import tools

pytestmark = pytest.mark.lab
PASSWORD = "pw-s3cret"




def state_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "jupyter-hop"


def record_of(env: dict[str, str], job_id: str) -> dict[str, object] | None:
    path = state_dir(env) / "records" / f"job-{job_id}@{CLUSTER}.json"
    return json.loads(path.read_text()) if path.exists() else None


def job_id_from(text: str) -> str:
    for word in text.replace(".", " ").replace(";", " ").split():
        if word.isdigit():
            return word
    raise AssertionError(f"no job id in {text!r}")


def submit(user: TestUser, env: dict[str, str], name: str, jobs: list[str], timeout: float = 120,
           ) -> tuple[subprocess.CompletedProcess[str], str, float]:
    started = time.monotonic()
    result = hop(user, env, "slurm", "submit", name, timeout=timeout)
    elapsed = time.monotonic() - started
    job_id = job_id_from(result.stderr.split("Submitted Slurm job", 1)[1]) if "Submitted Slurm job" in result.stderr \
        else ""
    if job_id:
        jobs.append(job_id)
    return result, job_id, elapsed


def without_time_left(text: str) -> str:
    return re.sub(r", in [0-9a-z ]+\)\.\n", ").\n", text, count=1)


def final_state(lab: SlurmLab, job_id: str) -> dict[str, str]:
    return tools.parse_scontrol(lab.run("scontrol", "show", "job", "-o", job_id).stdout)


def wait_gone(lab: SlurmLab, job_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while job_id in lab.queue():
        assert time.monotonic() < deadline, f"job {job_id} still queued after {timeout} s"
        time.sleep(0.1)


def test_submit_login_status_cancel(test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab,
                                    jobs: list[str]) -> None:
    init_profile(test_user, env, "nb", "--app", "server", password=PASSWORD)
    result, job_id, elapsed = submit(test_user, env, "nb", jobs)
    returned = time.time()
    assert result.returncode == 0, result.stderr
    record_file = state_dir(env) / "records" / f"job-{job_id}@{CLUSTER}.json"
    # readiness polling: the launcher's record to submit's exit (with instructions printed) is quick
    ready_latency = returned - record_file.stat().st_mtime
    print(f"\nsubmit until instructions: {elapsed:.2f} s, record written to submit done: {ready_latency:.3f} s")
    assert ready_latency < 0.5
    # the instructions name the node and the job, and its end
    assert f"Jupyter is ready on {slurm_lab.host} (Slurm job {job_id}, ends " in result.stdout
    assert "log in with your jupyter-hop password" in result.stdout
    record = record_of(env, job_id)
    assert record is not None and record["kind"] == "job" and record["job_id"] == job_id
    port = int(record["port"])  # type: ignore[call-overload]
    assert f" -L 127.0.0.1:8888:127.0.0.1:{port} " in result.stdout
    assert login(f"http://127.0.0.1:{port}/", PASSWORD) == 200
    # private files: the script and the job log 0600 in the 0700 jobs dir, nothing of the password in the log
    jobs_dir = state_dir(env) / "jobs"
    assert stat.S_IMODE(jobs_dir.stat().st_mode) == 0o700
    log = jobs_dir / f"nb-{job_id}.log"
    for path in (jobs_dir / "nb.sbatch", log):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert PASSWORD not in log.read_text()
    assert f"jupyter-hop: Slurm job {job_id} on {slurm_lab.host}" in log.read_text()

    status = hop(test_user, env, "slurm", "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert [(r["job_id"], r["profile"], r["state"], r["node"], r["ready"]) for r in rows] == [
        (job_id, "nb", "RUNNING", slurm_lab.host, True)
    ]
    table = hop(test_user, env, "slurm", "status")
    assert job_id in table.stdout and "RUNNING" in table.stdout

    again = hop(test_user, env, "slurm", "instructions", job_id)
    assert again.returncode == 0, again.stderr
    # the same, but for the time left, which may have gone down by a minute since
    assert without_time_left(again.stdout) == without_time_left(result.stdout)
    # time = 04:00:00; the date only when the job ends on another day (UTC) than today
    assert re.search(r", ends (\d{4}-\d\d-\d\d )?\d\d:\d\d UTC, in 3 h 59 min\)\.\n", result.stdout), result.stdout

    saved = record_file.read_bytes()
    started = time.monotonic()
    cancelled = hop(test_user, env, "slurm", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    print(f"cancel until gone: {time.monotonic() - started:.2f} s")
    assert "CANCELLED" in cancelled.stdout
    assert not port_open("127.0.0.1", port)
    assert record_of(env, job_id) is None
    assert not (jobs_dir / f"job-{job_id}@{CLUSTER}.json").exists()
    assert job_id not in slurm_lab.queue()
    gone = hop(test_user, env, "slurm", "instructions", job_id)
    assert gone.returncode != 0 and "is not running" in gone.stderr
    # a record left by a launcher that was killed: never shown as running, and removed
    record_file.write_bytes(saved)
    os.chown(record_file, test_user.uid, test_user.gid)
    stale = hop(test_user, env, "slurm", "instructions", job_id)
    assert stale.returncode == 1 and f"Slurm job {job_id} is not running (CANCELLED)" in stale.stderr
    assert not record_file.exists()


def test_time_limit_stops_the_server_cleanly(test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab,
                                              jobs: list[str]) -> None:
    init_profile(test_user, env, "short", "--app", "server", password=PASSWORD)
    profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / "short.toml"
    text = profile.read_text()
    # slurmctld checks time limits every 30 s and sends the --signal at the first check that is within
    # grace + 30 s of the end: with one minute and 15 s that is 15-45 s after the start, after the server is up
    text = text.replace('time = "04:00:00"', 'time = "1"').replace("signal_grace = 120", "signal_grace = 15")
    profile.write_text(text)
    result, job_id, _ = submit(test_user, env, "short", jobs)
    assert result.returncode == 0, result.stderr
    port = int(record_of(env, job_id)["port"])  # type: ignore[index, call-overload]
    started = time.monotonic()
    wait_gone(slurm_lab, job_id, 90)
    print(f"\nTERM arrived and the job ended {time.monotonic() - started:.1f} s after ready")
    fields = final_state(slurm_lab, job_id)
    # the launcher stopped the server and exited 0 before the time limit: COMPLETED, not TIMEOUT
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), fields
    assert record_of(env, job_id) is None
    assert not port_open("127.0.0.1", port)
    log = (state_dir(env) / "jobs" / f"short-{job_id}.log").read_text()
    assert "received signal 15, stopping" in log and "Shutting down" in log


def test_failing_setup_line_is_reported_with_the_log(test_user: TestUser, env: dict[str, str],
                                                      jobs: list[str]) -> None:
    init_profile(test_user, env, "broken", "--app", "server", password=PASSWORD)
    profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / "broken.toml"
    profile.write_text(profile.read_text().replace("setup = []", 'setup = ["echo loading", "no-such-module-cmd"]'))
    result, job_id, elapsed = submit(test_user, env, "broken", jobs)
    assert result.returncode == 1
    assert f"jupyter-hop: error: Slurm job {job_id} ended (FAILED, exit code 127:0" in result.stderr
    assert "no-such-module-cmd: command not found" in result.stderr  # the tail of the job log
    assert "Traceback" not in result.stderr
    assert elapsed < 30


def test_two_jobs_at_once(test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab, jobs: list[str]) -> None:
    for name in ("one", "two"):
        init_profile(test_user, env, name, "--app", "server", password=PASSWORD)
    procs = [test_user.popen(["jupyter-hop", "slurm", "submit", name], env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for name in ("one", "two")]
    ids = []
    for proc in procs:  # the ids first, so the jobs are cancelled at the end even if waiting fails
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "Submitted Slurm job" in line, line
        ids.append(job_id_from(line.split("Submitted Slurm job", 1)[1]))
        jobs.append(ids[-1])
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ports = {int(record_of(env, i)["port"]) for i in ids}  # type: ignore[index, call-overload]
    assert len(ports) == 2
    for port in ports:
        assert login(f"http://127.0.0.1:{port}/", PASSWORD) == 200
    for job_id in ids:
        assert hop(test_user, env, "slurm", "cancel", job_id).returncode == 0


def test_no_wait_then_instructions_wait_with_odd_state_dir(test_user: TestUser, env: dict[str, str],
                                                            jobs: list[str], tmp_path: Path) -> None:
    """A state dir with a space, quotes, % and $(...) reaches sbatch's --output and the job verbatim."""
    odd = Path(env["XDG_STATE_HOME"]) / "it's 100%; $(touch pwned) `id`"
    odd.mkdir()
    os.chown(odd, test_user.uid, test_user.gid)
    env = {**env, "XDG_STATE_HOME": str(odd)}
    init_profile(test_user, env, "odd", "--app", "server", password=PASSWORD)
    result = hop(test_user, env, "slurm", "submit", "odd", "--no-wait")
    assert result.returncode == 0, result.stderr
    job_id = job_id_from(result.stdout)
    jobs.append(job_id)
    assert f"jupyter hop slurm instructions {job_id}" in result.stdout
    waited = hop(test_user, env, "slurm", "instructions", job_id, "--wait", timeout=120)
    assert waited.returncode == 0, waited.stderr
    assert f"(Slurm job {job_id}, ends " in waited.stdout
    record = record_of(env, job_id)
    assert record is not None
    assert login(f"http://127.0.0.1:{record['port']}/", PASSWORD) == 200
    assert (odd / "jupyter-hop" / "jobs" / f"odd-{job_id}.log").exists()
    assert not list(test_user.home.glob("pwned")) and not (Path(env["WORK_DIR"]) / "pwned").exists()
    assert hop(test_user, env, "slurm", "cancel", job_id).returncode == 0
    assert record_of(env, job_id) is None


def test_ctrl_c_leaves_the_job_and_says_how_to_come_back(test_user: TestUser, env: dict[str, str],
                                                          slurm_lab: SlurmLab, jobs: list[str]) -> None:
    init_profile(test_user, env, "hold", "--app", "server", password=PASSWORD)
    profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / "hold.toml"
    # a setup line that waits keeps the job in the "starting" phase while we interrupt
    profile.write_text(profile.read_text().replace("setup = []", 'setup = ["sleep 30"]'))
    proc = test_user.popen(["jupyter-hop", "slurm", "submit", "hold"], env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # written once sbatch has answered
    assert first.startswith("Submitted Slurm job "), first
    job_id = job_id_from(first.split("Submitted Slurm job", 1)[1])
    jobs.append(job_id)
    deadline = time.monotonic() + 30
    while slurm_lab.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, f"job {job_id} did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert f"jupyter hop slurm instructions {job_id} --wait" in err and "Traceback" not in err
    assert job_id in slurm_lab.queue()  # the job is left alone
    pending = hop(test_user, env, "slurm", "instructions", job_id)
    assert pending.returncode == 1 and "not ready yet" in pending.stderr
    assert hop(test_user, env, "slurm", "cancel", job_id).returncode == 0
    assert job_id not in slurm_lab.queue()


def test_cancel_refuses_jobs_it_did_not_submit(test_user: TestUser, env: dict[str, str]) -> None:
    result = hop(test_user, env, "slurm", "cancel", "999999")
    assert result.returncode == 1 and "was not submitted by jupyter-hop" in result.stderr
    bad = hop(test_user, env, "slurm", "cancel", "12;id")
    assert bad.returncode == 1 and "job id '12;id' is not allowed" in bad.stderr


def test_export_none_site_still_finds_the_record(test_user: TestUser, env: dict[str, str], jobs: list[str]) -> None:
    """Sites that submit with --export=NONE give the job none of the submitter's variables: the script exports
    the XDG dirs seen at render time, so the record lands where submit waits for it."""
    init_profile(test_user, env, "noexport", "--app", "server", password=PASSWORD)
    profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / "noexport.toml"
    profile.write_text(profile.read_text().replace("extra_directives = []", 'extra_directives = ["--export=NONE"]'))
    result, job_id, _ = submit(test_user, env, "noexport", jobs)
    assert result.returncode == 0, result.stderr
    record = record_of(env, job_id)
    assert record is not None
    assert login(f"http://127.0.0.1:{record['port']}/", PASSWORD) == 200
    assert hop(test_user, env, "slurm", "cancel", job_id).returncode == 0


@pytest.mark.parametrize(("key", "bad", "named"), [
    ("time", '"4h"', "slurm.time = '4h' is not allowed: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    ("mem", '"4 GB"', "slurm.mem = '4 GB' is not allowed: a size such as 4000M, 16G or 1T"),
    ("partition", '"gpu;id"', "slurm.partition = 'gpu;id' is not allowed"),
])
def test_bad_value_is_refused_before_anything_is_written_or_submitted(
    test_user: TestUser, env: dict[str, str], key: str, bad: str, named: str
) -> None:
    init_profile(test_user, env, "bad", "--app", "server", password=PASSWORD)
    profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / "bad.toml"
    lines = profile.read_text().splitlines()
    in_slurm = False
    for i, line in enumerate(lines):
        in_slurm = line.strip() == "[slurm]" or (in_slurm and not line.startswith("["))
        if in_slurm and line.startswith(f"{key} = "):
            lines[i] = f"{key} = {bad}"
    profile.write_text("\n".join(lines) + "\n")
    for command in (["submit", "bad"], ["render", "bad"]):
        result = hop(test_user, env, "slurm", *command)
        assert result.returncode == 1
        error = result.stderr.strip()
        assert error.startswith("jupyter-hop: error: ") and "\n" not in error and named in error, error
    # submit writes the script before sbatch: no jobs dir means nothing was written and nothing submitted
    assert not (state_dir(env) / "jobs").exists()


def set_key(env: dict[str, str], name: str, old: str, new: str) -> None:
    profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / f"{name}.toml"
    text = profile.read_text()
    assert old in text
    profile.write_text(text.replace(old, new, 1))


def test_pending_is_shown_then_ready(test_user: TestUser, env: dict[str, str], slurm_lab: SlurmLab,
                                     jobs: list[str]) -> None:
    """A job that must wait says why while submit waits (pending has no time limit), then becomes ready.

    It waits on a held job, not on a full node, so test sessions sharing the lab do not block each other."""
    held = test_user.run(["sbatch", "--parsable", "--hold", "-o", "/dev/null", "--wrap", "true"], env)
    assert held.returncode == 0, held.stderr
    held_id = held.stdout.strip()
    jobs.append(held_id)
    init_profile(test_user, env, "later", "--app", "server", password=PASSWORD)
    set_key(env, "later", "extra_directives = []", f'extra_directives = ["--dependency=afterok:{held_id}"]')
    proc = test_user.popen(["jupyter-hop", "slurm", "submit", "later"], env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    job_id = job_id_from(first.split("Submitted Slurm job", 1)[1])
    jobs.append(job_id)
    pending = proc.stderr.readline()  # not a terminal: one line per change of state
    assert pending.startswith(f"Slurm job {job_id}: PENDING: waiting for the jobs it depends on to finish "
                              "(Dependency) ("), pending  # no expected start: Slurm has none for a dependency
    rows = {r["job_id"]: r for r in json.loads(hop(test_user, env, "slurm", "status", "--json").stdout)}
    assert (rows[job_id]["state"], rows[job_id]["reason"], rows[job_id]["ready"]) == ("PENDING", "Dependency", False)
    assert held_id not in rows  # not a jupyter-hop job
    released = test_user.run(["scontrol", "release", held_id], env)
    assert released.returncode == 0, released.stderr
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"Slurm job {job_id}: RUNNING on {slurm_lab.host}" in err
    assert f"(Slurm job {job_id}, ends " in out
    assert hop(test_user, env, "slurm", "cancel", job_id).returncode == 0

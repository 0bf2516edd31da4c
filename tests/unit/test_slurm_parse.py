"""Job state from literal squeue and scontrol output (captured from Slurm 22.05), and the wait loop's decisions."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.slurm import batch, jobs, progress, submissions, tools
from jupyter_hop.tracking import place, records
from jupyter_hop.tracking.records import Record

SQUEUE = """\
12|PENDING|Priority||N/A|4:00:00|N/A|(null)
13|PENDING|None||N/A|4:00:00|N/A|(null)
14|RUNNING|None|c0412|2026-11-26T18:05:00|3:59:58|2026-11-26T14:05:02|(null)
15|COMPLETING|None|c0413|2026-11-26T06:00:00|0:00|2026-11-26T02:00:00|(null)
garbage line
"""

SCONTROL_ONE_LINE = (
    "JobId=1 JobName=probe UserId=hoptest(1001) GroupId=hoptest(1001) MCS_label=N/A Priority=4294901759 Nice=0 "
    "Account=(null) QOS=(null) JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 "
    "Reboot=0 ExitCode=0:0 RunTime=00:00:01 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-11-26T05:45:03 "
    "EligibleTime=2026-11-26T05:45:03 AccrueTime=2026-11-26T05:45:03 StartTime=2026-11-26T05:45:04 "
    "EndTime=2026-11-26T05:45:05 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T05:45:04 "
    "Scheduler=Main Partition=debug AllocNode:Sid=vm:3455 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm "
    "BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 "
    "Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 "
    "Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) "
    "Command=/tmp/sb t/job.sh WorkDir=/work/main StdErr=/tmp/sb t/a b'c #d/out-1.log StdIn=/dev/null "
    "StdOut=/tmp/sb t/a b'c #d/out-1.log Power= \n"
)

SCONTROL_MULTI = """\
JobId=7 JobName=jupyter-hop
   UserId=hoptest(1001) GroupId=hoptest(1001) MCS_label=N/A
   Priority=4294901759 Nice=0 Account=(null) QOS=(null)
   JobState=FAILED Reason=NonZeroExitCode Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=1:0
   RunTime=00:00:00 TimeLimit=04:00:00 TimeMin=N/A
   StartTime=2026-11-26T05:50:01 EndTime=2026-11-26T05:50:01 Deadline=N/A
   NodeList=vm
   BatchHost=vm
   Command=/home/hoptest/.local/state/jupyter-hop/jobs/default.sbatch
"""


def test_squeue_lines() -> None:
    jobs = tools.parse_squeue(SQUEUE)
    assert [j.job_id for j in jobs] == ["12", "13", "14", "15"]
    assert jobs[0].state == "PENDING" and jobs[0].reason == "Priority" and jobs[0].end is None
    assert jobs[1].reason == ""
    running = jobs[2]
    assert running.node == "c0412" and running.time_left == "3:59:58" and not running.ended
    assert running.end == time.mktime((2026, 11, 26, 18, 5, 0, 0, 0, -1))
    assert jobs[3].ended


def test_scontrol_one_line_with_spaces_in_values() -> None:
    fields = tools.parse_scontrol(SCONTROL_ONE_LINE)
    assert fields["StdOut"] == "/tmp/sb t/a b'c #d/out-1.log"
    assert fields["Command"] == "/tmp/sb t/job.sh"
    assert fields["TRES"] == "cpu=1,node=1,billing=1"
    assert fields["AllocNode:Sid"] == "vm:3455"
    state = tools.state_from_scontrol(fields)
    assert (state.job_id, state.state, state.node, state.exit_code, state.reason) == ("1", "COMPLETED", "vm", "0:0", "")
    assert state.ended


def test_scontrol_multi_line() -> None:
    state = tools.state_from_scontrol(tools.parse_scontrol(SCONTROL_MULTI))
    assert (state.job_id, state.state, state.reason, state.exit_code) == ("7", "FAILED", "NonZeroExitCode", "1:0")


@pytest.mark.parametrize("value", ["Unknown", "N/A", "None", ""])
def test_times_that_are_not_times(value: str) -> None:
    assert tools.parse_time(value) is None


# ---- the wait loop with a scripted job state (no Slurm) ----


def make_record(job_id: str) -> Record:
    return Record(kind="job", profile="p", host="elsewhere", bind="localhost", address="127.0.0.1", port=1,
                  sock="", base_url="/", app="server", pid=1, server_pid=2, started=time.time(), local_port=8888,
                  login_host="login1", job_id=job_id)


def submission(paths: Paths, job_id: str) -> submissions.Submission:
    return submissions.Submission(job_id, "p", str(batch.log_path(paths, "p", job_id)), time.time())


def test_ready_when_the_record_appears(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    states = iter([tools.JobState("5", "PENDING", "Priority")] * 3)
    running = tools.JobState("5", "RUNNING", node="c1", end=1e9)

    def state(job_id: str) -> tools.JobState:
        return next(states, running)

    writer = threading.Timer(0.8, lambda: records.write(paths, make_record("5")))
    writer.start()
    err = io.StringIO()
    started = time.monotonic()
    record, job = jobs.wait_ready(paths, submission(paths, "5"), 10, progress.StatusLine(err), job_state=state)
    waited = time.monotonic() - started
    assert record.job_id == "5" and job == running
    assert 0.8 <= waited < 0.8 + 0.2  # readiness seen within the record poll, not the squeue poll
    lines = err.getvalue().splitlines()  # not a terminal: one line per change of state
    assert lines == ["Slurm job 5: PENDING: waiting for higher-priority jobs (Priority) (0:00)",
                     "Slurm job 5: RUNNING on c1, starting Jupyter (0:00)"]
    assert jobs.with_end(record, job).job_end == 1e9


def test_job_that_ends_before_ready_reports_the_log(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    log = batch.log_path(paths, "p", "6")
    log.parent.mkdir(parents=True)
    log.write_text("jupyter-hop: Slurm job 6 on c1\nmodule: command not found\n")
    states = iter([tools.JobState("6", "RUNNING", node="c1")])
    failed = tools.JobState("6", "FAILED", "NonZeroExitCode", exit_code="127:0")
    with pytest.raises(HopError) as info:
        jobs.wait_ready(paths, submission(paths, "6"), 10, progress.StatusLine(io.StringIO()),
                              job_state=lambda _: next(states, failed))
    assert "Slurm job 6 ended (FAILED, exit code 127:0" in info.value.message
    assert "module: command not found" in info.value.detail


def test_ready_phase_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    monkeypatch.setattr(jobs, "READY_MARGIN", 0.0)
    running = tools.JobState("8", "RUNNING", node="c1")
    with pytest.raises(HopError, match=r"did not answer within 0\.5 s; the job is left running"):
        jobs.wait_ready(paths, submission(paths, "8"), 0.5, progress.StatusLine(io.StringIO()),
                              job_state=lambda _: running)


def test_status_line_on_a_terminal_rewrites_in_place() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    line = progress.StatusLine(out)
    line.show("PENDING", "job: PENDING (0:01)")
    line.show("PENDING", "job: PENDING (0:01)")
    line.show("PENDING", "job: PENDING (0:02)")
    line.clear()
    assert out.getvalue() == "\rjob: PENDING (0:01)\x1b[K\rjob: PENDING (0:02)\x1b[K\r\x1b[K"


def test_job_ids_are_numbers(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    with pytest.raises(HopError, match="job id"):
        jobs.cancel(paths, "12; rm -rf ~")


# ---- the sbatch edge with a fake sbatch on PATH ----


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(0o755)


def test_sbatch_runs_under_umask_077_and_returns_the_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = tmp_path / "seen"
    fake_tool(tmp_path / "bin", "sbatch", f'umask > {seen}; echo "$@" >> {seen}; echo "4242;cluster"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert tools.sbatch(tmp_path / "x y.sbatch") == "4242"
    assert seen.read_text().splitlines() == ["0077", f"--parsable {tmp_path / 'x y.sbatch'}"]


def test_sbatch_rejection_is_one_line_with_the_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = "sbatch: error: Batch job submission failed: Invalid partition name specified"
    fake_tool(tmp_path / "bin", "sbatch", f'echo "{error}" >&2; exit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(HopError) as info:
        tools.sbatch(tmp_path / "job.sbatch")
    assert info.value.message == f"sbatch rejected the job: {error}"
    assert error in info.value.detail


def test_missing_tools_say_where_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HopError, match="sbatch is not on PATH"):
        tools.sbatch(tmp_path / "job.sbatch")


def test_ended_job_with_a_dead_record_fails_instead_of_looping(tmp_path: Path) -> None:
    """A record left by a killed launcher, whose server does not answer, on a job that has ended."""
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    dead = make_record("9")
    dead.host = place.this_host()  # reachable from here, and nothing listens on port 1
    records.write(paths, dead)
    ended = tools.JobState("9", "CANCELLED")
    started = time.monotonic()
    with pytest.raises(HopError, match=r"Slurm job 9 ended \(CANCELLED\) before the Jupyter server was ready"):
        jobs.wait_ready(paths, submission(paths, "9"), 10, progress.StatusLine(io.StringIO()),
                              job_state=lambda _: ended)
    assert time.monotonic() - started < 5

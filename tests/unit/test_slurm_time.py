"""Time awareness and gentle waiting, pure parts first: reason words, times in words, the status line, the job
comment's format, squeue lines with %S and %k, the squeue backoff; then the wait loop with a scripted job state
and the batched squeue of `list` with fake Slurm tools on PATH (the real ones: tests/lab/test_slurm_waiting.py)."""

from __future__ import annotations

import calendar
import io
import itertools
import json
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_hop import timetext
from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import atomic_write
from jupyter_hop.paths import Paths
from jupyter_hop.profile.model import HOST_RE
from jupyter_hop.slurm import batch, comment, jobs, progress, reasons, submissions, tools
from jupyter_hop.tracking import instructions, inventory, records
from jupyter_hop.tracking.records import Record

NOW = float(calendar.timegm((2026, 11, 26, 14, 53, 0)))


# ---- reasons in words ----


@pytest.mark.parametrize(("code", "expected"), [
    ("Priority", "waiting for higher-priority jobs (Priority)"),
    ("Resources", "waiting for resources (nodes, CPUs, memory or GPUs) to free up (Resources)"),
    ("Dependency", "waiting for the jobs it depends on to finish (Dependency)"),
    ("DependencyNeverSatisfied", "the jobs it depends on failed: it will never start (cancel it) "
                                 "(DependencyNeverSatisfied)"),
    ("BeginTime", "waiting for its earliest start time (--begin) (BeginTime)"),
    ("JobHeldUser", "held by its owner (`scontrol release` lets it start) (JobHeldUser)"),
    ("JobHeldAdmin", "held by an administrator (JobHeldAdmin)"),
    ("QOSMaxJobsPerUserLimit", "you run as many jobs as its QOS allows per user (QOSMaxJobsPerUserLimit)"),
    ("QOSMaxCpuPerUserLimit", "held by a per-user or per-job limit of its QOS (QOSMaxCpuPerUserLimit)"),
    ("QOSGrpGRES", "held by a limit of its QOS on all its jobs together (QOSGrpGRES)"),
    ("AssocGrpCpuLimit", "held by a limit of your account (association) on all its jobs together "
                         "(AssocGrpCpuLimit)"),
    ("AssocMaxNodePerJobLimit", "held by a per-user or per-job limit of your account (association) "
                                "(AssocMaxNodePerJobLimit)"),
    ("PartitionTimeLimit", "its time limit is above the partition's maximum: it will not start (lower slurm.time) "
                           "(PartitionTimeLimit)"),
    ("PartitionNodeLimit", "it asks for more nodes than the partition allows: it will not start "
                           "(PartitionNodeLimit)"),
    ("ReqNodeNotAvail, UnavailableNodes:c[01-02]", "a node it needs is unavailable (down, drained or reserved) "
                                                   "(ReqNodeNotAvail, UnavailableNodes:c[01-02])"),
    ("Reservation", "waiting for its reservation to begin (Reservation)"),
    ("NodeDown", "a node it needs is down (NodeDown)"),
    ("launch failed requeued held", "its launch failed; Slurm requeued and held it (ask your administrators) "
                                    "(launch failed requeued held)"),
    ("SomethingNew", "SomethingNew"),  # unknown: as Slurm spells it
    ("", ""),
])
def test_reason_words_keep_the_code(code: str, expected: str) -> None:
    assert reasons.explain(code) == expected


# ---- times in words ----


def test_moments_and_spans() -> None:
    assert timetext.moment(NOW + 72 * 60, NOW) == "16:05 UTC"
    assert timetext.moment(NOW + 13 * 3600 + 7 * 60, NOW) == "2026-11-27 04:00 UTC"  # not today (in UTC)
    assert [timetext.span(s) for s in (-5, 0, 59, 60, 719, 3600, 3600 + 12 * 60 + 59, 86400, 2 * 86400 + 4 * 3600)] \
        == ["under 1 min", "under 1 min", "under 1 min", "1 min", "11 min", "1 h", "1 h 12 min", "1 d", "2 d 4 h"]
    assert timetext.until(NOW + 725, NOW) == "in 12 min"
    assert timetext.until(NOW - 30, NOW) == "now"  # an estimate that has passed
    assert timetext.expected_start(NOW + 725, NOW) == "expected start 15:05 UTC (in 12 min)"


def job_record(**changes: object) -> Record:
    base = Record(kind="job", profile="gpu", host="c0412", bind="localhost", address="127.0.0.1", port=47213,
                  sock="", base_url="/", app="lab", pid=10, server_pid=11, started=NOW, local_port=8888,
                  login_host="login1.example.edu", ssh_user="alice", job_id="81234", launch_id="0f3a9c1e2b7d4a56")
    return replace(base, **changes)  # type: ignore[arg-type]


def test_instructions_say_when_the_job_ends_and_how_long_that_is() -> None:
    today = job_record(job_end=NOW + 3 * 3600 + 12 * 60 + 30)
    assert instructions.where(today, NOW) == (
        "Jupyter is ready on c0412 (Slurm job 81234, ends 18:05 UTC, in 3 h 12 min).")
    tomorrow = job_record(job_end=NOW + 13 * 3600 + 7 * 60)
    assert instructions.where(tomorrow, NOW) == (
        "Jupyter is ready on c0412 (Slurm job 81234, ends 2026-11-27 04:00 UTC, in 13 h 7 min).")
    assert instructions.where(job_record(), NOW) == "Jupyter is ready on c0412 (Slurm job 81234)."
    text = instructions.render(today, now=NOW)
    assert text.splitlines()[0] == instructions.where(today, NOW)


# ---- the status line ----


def pending(reason: str = "Priority", start: float | None = None) -> tools.JobState:
    return tools.JobState("81234", "PENDING", reason, expected_start=start)


def test_describe_pending_and_running() -> None:
    assert progress.describe(pending(start=NOW + 725), NOW) == (
        "PENDING: waiting for higher-priority jobs (Priority), expected start 15:05 UTC (in 12 min)")
    assert progress.describe(pending(start=NOW + 725), NOW, words=False) == (
        "PENDING (Priority), expected start 15:05 UTC (in 12 min)")
    assert progress.describe(pending("Odd"), NOW) == "PENDING (Odd)"
    assert progress.describe(pending(""), NOW) == "PENDING"
    running = tools.JobState("81234", "RUNNING", node="c0412")
    assert progress.describe(running, NOW) == "RUNNING on c0412, starting Jupyter"
    ready = replace(running, comment="jupyter-hop:1 ready host=c0412 port=47213 launch=0f3a")
    assert progress.describe(ready, NOW) == (
        "RUNNING on c0412, Jupyter is ready there; waiting for its record to show up on this host")


def test_status_line_prints_changes_not_the_countdown() -> None:
    out = io.StringIO()
    line = progress.StatusLine(out)
    soon = time.time() + 3600
    for elapsed in range(3):
        line.job(pending(start=soon), elapsed)
    line.job(pending(start=soon + 600), 5)  # a new estimate is a new line
    line.job(pending("Resources", soon + 600), 6)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "(Priority), expected start" in lines[0] and "(Resources)" in lines[2], lines


def test_status_line_fits_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrapped line cannot be rewritten with "\\r": the words go first, then the end of the line."""
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "80")
    out = Tty()
    progress.StatusLine(out).job(pending("Resources", time.time() + 3600), 42)
    text = out.getvalue().removeprefix("\r").removesuffix("\x1b[K")
    assert text.startswith("Slurm job 81234: PENDING (Resources), expected start ") and len(text) <= 79, text
    monkeypatch.setenv("COLUMNS", "30")
    out = Tty()
    progress.StatusLine(out).job(pending("Resources", time.time() + 3600), 42)
    assert len(out.getvalue().removeprefix("\r").removesuffix("\x1b[K")) <= 29


# ---- the job comment ----


def test_comment_format_and_parse() -> None:
    ready = comment.of_record(job_record(), "ready")
    text = comment.render(ready)
    assert text == "jupyter-hop:1 ready host=c0412 port=47213 launch=0f3a9c1e2b7d4a56"
    assert comment.parse(text) == ready and ready.ready
    sock = comment.of_record(job_record(port=0, sock="/run/user/1/j.sock", bind="socket"), "ready")
    assert comment.render(sock) == "jupyter-hop:1 ready host=c0412 socket launch=0f3a9c1e2b7d4a56"
    assert comment.parse(comment.render(sock)) == sock
    stopped = comment.parse("jupyter-hop:1 stopped launch=0f3a9c1e2b7d4a56")
    assert stopped is not None and not stopped.ready
    # the user's own comment is kept in front, and ours replaces an older one of ours
    assert comment.combined("project X|y", ready) == f"project X|y {text}"
    assert comment.combined(f"project X {text}", replace(ready, state="stopped", host="", port=0)) == (
        "project X jupyter-hop:1 stopped launch=0f3a9c1e2b7d4a56")
    assert comment.parse(f"a|b jupyter-hop: maybe {text}") == ready  # the last of ours counts
    # unknown words are ignored (a later version may add some), a token never goes in
    assert comment.parse(text + " color=blue") == ready
    assert "token" not in text


@pytest.mark.parametrize("bad", [
    "", "(null)", "project X", "jupyter-hop:2 ready host=c1 port=1", "jupyter-hop:1 running host=c1 port=1",
    "jupyter-hop:1 ready host=-oProxyCommand=x port=1", "jupyter-hop:1 ready port=47213",
    "jupyter-hop:1 ready host=c1 port=0", "jupyter-hop:1 ready host=c1 port=65536", "jupyter-hop:1 ready host=c1",
    "xjupyter-hop:1 ready host=c1 port=1",
])
def test_comments_that_say_nothing_we_can_use(bad: str) -> None:
    assert comment.parse(bad) is None


@given(host=st.from_regex(HOST_RE.pattern, fullmatch=True), port=st.integers(1, 65535), sock=st.booleans(),
       launch=st.from_regex(r"[0-9a-f]{16}", fullmatch=True), prefix=st.text(max_size=20))
def test_comment_round_trips(host: str, port: int, sock: bool, launch: str, prefix: str) -> None:
    note = comment.Announcement("ready", host, 0 if sock else port, sock, launch)
    assert comment.parse(comment.combined(prefix, note)) == note


def test_squeue_lines_with_start_and_comment() -> None:
    """Captured from Slurm 22.05 (`squeue -h -o '%i|%T|%r|%N|%e|%L|%S|%k'`), the comment with bars in it."""
    text = (
        "11631874|PENDING|Resources||2026-12-01T23:16:30|1:00:00|2026-12-01T22:16:30|(null)\n"
        "11631875|PENDING|Dependency||N/A|1:00:00|N/A|(null)\n"
        "11631873|RUNNING|None|vm|2026-12-01T22:16:30|4:59|2026-12-01T22:11:30|jupyter-hop:1 ready a|b|c host=x\n"
        "11631876|PENDING|BeginTime||2026-12-01T23:21:29|1:00:00|2026-12-01T22:21:29|line one\n"
        "line two of a comment|with|bars|in|it|and|more|than|seven\n"
    )
    found = tools.parse_squeue(text)
    assert [j.job_id for j in found] == ["11631874", "11631875", "11631873", "11631876"]
    assert found[0].expected_start == tools.parse_time("2026-12-01T22:16:30") and found[0].comment == ""
    assert found[1].expected_start is None
    assert found[2].expected_start is None  # a running job's %S is its start, not an estimate
    assert found[2].comment == "jupyter-hop:1 ready a|b|c host=x" and found[2].node == "vm"
    assert found[3].comment == "line one"


# ---- the squeue backoff ----


def calls_in(seconds: float, phase: str = "queued") -> int:
    """squeue calls in the first `seconds` of a phase, by the schedule (what wait_ready does, without sleeping)."""
    t, calls = 0.0, 0
    while t < seconds:
        calls += 1
        t += jobs.poll_interval(phase, t)
    return calls


def test_backoff_schedule() -> None:
    assert jobs.poll_interval("queued", 0) == jobs.poll_interval("queued", 4.9) == 0.25
    assert jobs.poll_interval("queued", 10) == pytest.approx(0.75)
    assert jobs.poll_interval("queued", 60) == jobs.poll_interval("queued", 86400) == 5.0
    assert jobs.poll_interval("starting", 3600) == 0.25  # the server is coming up: fast
    assert jobs.poll_interval("announced", 60) == 5.0
    intervals = [jobs.poll_interval("queued", t / 10) for t in range(2000)]
    assert intervals == sorted(intervals)  # never faster again while it pends
    assert calls_in(60) <= 55 and 60 * 60 / 0.25 / calls_in(3600) > 15  # 240/min before
    assert calls_in(3600) - calls_in(2400) == 240  # 12 a minute once slow


def test_backoff_in_the_wait_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """squeue calls over a pending wait follow the schedule; the record is still seen within its own poll."""
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    monkeypatch.setattr(jobs, "FAST_FOR", 0.5)
    monkeypatch.setattr(jobs, "SLOW_POLL", 1.0)
    monkeypatch.setattr(jobs, "GROWTH", 1.0)
    calls: list[float] = []

    def state(job_id: str) -> tools.JobState:
        calls.append(time.monotonic())
        return pending()

    writer = threading.Timer(4.0, lambda: records.write(paths, make_record("81234")))
    writer.start()
    started = time.monotonic()
    jobs.wait_ready(paths, submission(paths, "81234"), 10, progress.StatusLine(io.StringIO()), job_state=state)
    assert time.monotonic() - started < 4.0 + 0.2
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert max(gaps) == pytest.approx(1.0, abs=0.1) and len(calls) <= 9, gaps  # 16 at a fixed 0.25 s


# ---- the wait loop when the comment says ready before the record shows up ----


def make_record(job_id: str) -> Record:
    return job_record(host="elsewhere", job_id=job_id)


def submission(paths: Paths, job_id: str) -> submissions.Submission:
    return submissions.Submission(job_id, "p", str(batch.log_path(paths, "p", job_id)), time.time())


def announced(job_id: str) -> tools.JobState:
    return tools.JobState(job_id, "RUNNING", node="c0412", end=NOW + 3600,
                          comment="jupyter-hop:1 ready host=c0412 port=47213 launch=0f3a9c1e2b7d4a56")


def test_ready_in_the_comment_outlasts_the_ready_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record shows up after the launch's own deadline (a lagging shared home): still a success, and the
    status line says that the server is ready and what is awaited."""
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    monkeypatch.setattr(jobs, "READY_MARGIN", 0.0)
    writer = threading.Timer(1.5, lambda: records.write(paths, make_record("7")))
    writer.start()
    err = io.StringIO()
    record, job = jobs.wait_ready(paths, submission(paths, "7"), 0.5, progress.StatusLine(err),
                                  job_state=announced)
    assert record.job_id == "7" and job is not None
    assert err.getvalue().splitlines() == [
        "Slurm job 7: RUNNING on c0412, Jupyter is ready there; waiting for its record to show up on this host (0:00)"]


def test_record_that_never_shows_up_is_an_error_that_says_why(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    monkeypatch.setattr(jobs, "RECORD_LAG", 0.5)
    with pytest.raises(HopError) as info:
        jobs.wait_ready(paths, submission(paths, "8"), 60, progress.StatusLine(io.StringIO()), job_state=announced)
    message = info.value.message
    assert message.startswith("Slurm job 8's Jupyter server is ready on c0412 (the job's comment says so), but its "
                              f"record did not show up in {paths.records_dir} on this host within 0.5 s")
    assert "jupyter hop slurm instructions 8 --wait" in message and "\n" not in message


# ---- fake Slurm tools on PATH: one squeue for all jobs, and the launcher's comment ----


def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, squeue_out: str, scontrol: str = "exit 0") -> Path:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir(parents=True)
    for name, body in (("squeue", f"cat <<'EOF'\n{squeue_out}EOF\n"), ("scontrol", scontrol + "\n")):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> {log}\n{body}')
        tool.chmod(0o755)
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=lab\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    return log


def test_list_asks_squeue_once_for_any_number_of_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [str(100 + i) for i in range(6)]
    lines = "".join(f"{i}|PENDING|Priority||N/A|4:00:00|N/A|(null)\n" for i in ids[:5])  # the last one ended
    log = fake_slurm(tmp_path, monkeypatch, lines)
    paths = Paths(tmp_path / "c", tmp_path / "s", tmp_path / "r")
    for job_id in ids:
        note = submissions.Submission(job_id, "p", "", time.time(), "lab")
        atomic_write(submissions.submission_path(paths, job_id), json.dumps(asdict(note)) + "\n")
    found = inventory.gather(paths, units=False)
    assert sorted(r.job_id for r in found.rows) == ids[:5]
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["squeue"]


def test_launcher_marks_the_comment_keeping_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_slurm(tmp_path, monkeypatch, "81234|RUNNING|None|c0412|N/A|1:00|N/A|project X|y\n")
    err = io.StringIO()
    comment.announce(job_record(), "ready", err)
    calls = log.read_text().splitlines()
    assert calls[-1] == ("scontrol update JobId=81234 "
                         "Comment=project X|y jupyter-hop:1 ready host=c0412 port=47213 launch=0f3a9c1e2b7d4a56")
    assert err.getvalue() == ""
    comment.announce(job_record(kind="run", job_id=""), "ready", err)  # not a job: nothing to mark
    assert len(log.read_text().splitlines()) == len(calls)


def test_a_failed_comment_is_a_warning_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_slurm(tmp_path, monkeypatch, "", 'echo "slurm_update error: Access/permission denied" >&2; exit 1')
    err = io.StringIO()
    comment.announce(job_record(), "ready", err)
    assert err.getvalue() == ("jupyter-hop: warning: could not mark the job's comment ready (slurm_update error: "
                              "Access/permission denied); waiting commands rely on the record file alone\n")
    # at the end of a cancelled job the controller refuses any update: nothing to warn about then
    fake_slurm(tmp_path / "x", monkeypatch, "", 'echo "Job has already finished for job 81234" >&2; exit 1')
    quiet = io.StringIO()
    comment.announce(job_record(), "stopped", quiet)
    assert quiet.getvalue() == ""

"""connect's reading of the remote's JSON, as pure functions: objects, events, the list, the laptop URL."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from jupyter_hop import protocol
from jupyter_hop.errors import HopError
from jupyter_hop.laptop import objects
from jupyter_hop.laptop.connect import _plain
from jupyter_hop.slurm import progress
from jupyter_hop.slurm.tools import JobState

NOW = 1_764_687_900.0  # 2025-12-02 15:05:00 UTC


def test_the_object_speaks_this_laptops_schema() -> None:
    assert objects.SCHEMA == protocol.SCHEMA  # one release speaks one protocol on both ends
    obj = {"schema": protocol.SCHEMA, "state": "ready"}
    assert objects.the_object("hpc", json.dumps(obj) + "\n") == obj


@pytest.mark.parametrize(("schema", "upgrade"), [(2, "this laptop's (pip install -U jupyter-hop)"),
                                                 (0, "the one on hpc")])
def test_a_schema_mismatch_says_what_to_upgrade(schema: int, upgrade: str) -> None:
    with pytest.raises(HopError) as caught:
        objects.the_object("hpc", json.dumps({"schema": schema, "version": "9.9"}))
    message = caught.value.message
    assert "version 9.9" in message and f"schema {schema}" in message and message.endswith(f"upgrade {upgrade}")


def test_no_object_is_an_old_remote() -> None:
    with pytest.raises(HopError, match="printed no JSON object"):
        objects.the_object("hpc", "Jupyter is ready on compute\n")
    assert objects.too_old("Error: No such option: --json\n")
    assert not objects.too_old("jupyter-hop: error: no profile x\n")


def test_events_and_lines_for_people() -> None:
    stderr = "\n".join([
        protocol.dumps(protocol.submit_event("7", "/log")).strip(),
        json.dumps({"schema": 1, "event": "progress", "job_id": "7", "state": "PENDING", "reason": "Resources",
                    "node": None, "elapsed": 1.2}),
        "jupyter-hop: error: the server of job 7 exited",
        "log tail line",
    ])
    shown = [objects.progress_text(e) for e in map(objects.event, stderr.splitlines()) if e]
    assert shown == ["Slurm job 7 submitted; waiting for it to start", "Slurm job 7: PENDING (Resources) (0:01)"]
    assert objects.failure_lines(stderr) == ["jupyter-hop: error: the server of job 7 exited", "log tail line"]


def test_a_remote_without_an_option_is_told_from_other_usage_errors() -> None:
    """A remote older than `submit --reattach` is asked the old way; any other failure is not mistaken for it."""
    assert objects.lacks_option(["Usage: jupyter-hop slurm submit [OPTIONS] [NAME]",
                                 "Error: No such option: --reattach"], "--reattach")
    assert not objects.lacks_option(["Error: No such option: --json"], "--reattach")
    assert not objects.lacks_option(["jupyter-hop: error: --reattach waits for the job it finds"], "--reattach")


def test_reattach_takes_the_newest_live_job_of_the_profile() -> None:
    rows = [
        {"kind": "job", "profile": "gpu", "state": "ready", "job_id": "1", "started": 10.0},
        {"kind": "job", "profile": "gpu", "state": "pending", "job_id": "3", "started": None},
        {"kind": "job", "profile": "gpu", "state": "stale", "job_id": "4", "started": 99.0},
        {"kind": "job", "profile": "cpu", "state": "ready", "job_id": "5", "started": 50.0},
        {"kind": "unit", "profile": "gpu", "state": "ready", "job_id": "", "started": 60.0},
        {"kind": "job", "profile": "gpu", "state": "starting", "job_id": "2", "started": 20.0},
    ]
    found = objects.reattach_row("hpc", json.dumps({"servers": rows, "sources": {}}), "gpu")
    assert found is not None and found["job_id"] == "2"
    assert objects.reattach_row("hpc", json.dumps({"servers": [], "sources": {}}), "gpu") is None
    with pytest.raises(HopError, match="no list of servers"):
        objects.reattach_row("hpc", "[]", "gpu")


def test_the_laptop_url_is_127_0_0_1_and_the_browser_gets_no_token() -> None:
    url = objects.laptop_url("http://localhost:8888/lab?token=abc", 8890)
    assert url == "http://127.0.0.1:8890/lab?token=abc"
    assert objects.plain_url(url) == "http://127.0.0.1:8890/lab"


def test_time_left_and_the_remote_words() -> None:
    assert [objects.left(s) for s in (3900, 720, 40, -5)] == ["1h05m", "12m", "40s", "0s"]
    assert objects.ends_at({"ends_in": 60}, now=100.0) == 160.0
    assert objects.ends_at({"ends_in": None}) is None
    assert _plain(["jupyter", "hop", "stop", "7"]) == ["stop", "7"]
    assert _plain(["/venv/bin/jupyter-hop", "slurm", "instructions", "7", "--json"]) == [
        "slurm", "instructions", "7", "--json"]


def remote_line(job: JobState, elapsed: float) -> str:
    """What the remote's own status line prints for the job (its StatusLine, off a terminal)."""
    stream = io.StringIO()
    progress.StatusLine(stream).job(job, elapsed)
    return stream.getvalue().rstrip("\n")


def test_the_status_line_while_queued_speaks_the_remotes_words() -> None:
    """The laptop's line for an event is the remote's own line for the same job: the reason in words and its
    code, the expected start, the time waited."""
    job = JobState("81234", "PENDING", "Priority", expected_start=NOW + 725)
    event = json.loads(protocol.dumps(protocol.progress_event(job, 42.3)))
    text = objects.progress_text(event, NOW)
    assert text == ("Slurm job 81234: PENDING: waiting for higher-priority jobs (Priority), expected start 15:17 UTC "
                    "(in 12 min) (0:42)")
    assert text == f"Slurm job 81234: {progress.describe(job, NOW)} ({progress.clock(42.3)})"
    # the clock keeps counting between events; the estimate counts down
    assert objects.progress_text(event, NOW + 60, since=60).endswith("expected start 15:17 UTC (in 11 min) (1:42)")
    # a terminal too narrow for the words gets the code alone, as the remote's line does
    assert objects.progress_text(event, NOW, width=70) == (
        "Slurm job 81234: PENDING (Priority), expected start 15:17 UTC (in 12 min) (0:42)"[:67] + "...")
    assert objects.progress_text(event, NOW, width=80) == (
        "Slurm job 81234: PENDING (Priority), expected start 15:17 UTC (in 12 min) (0:42)")


@pytest.mark.parametrize("job", [
    JobState("5", "PENDING", "BeginTime", expected_start=NOW + 3600),
    JobState("5", "PENDING", "Dependency"),
    JobState("5", "PENDING", "SomethingNew"),
    JobState("5", "PENDING"),
    JobState("5", "RUNNING", node="c0412"),
    replace(JobState("5", "RUNNING", node="c0412"), comment="jupyter-hop:1 ready host=c0412 port=47213 launch=0f3a"),
    JobState("5", "CONFIGURING"),
])
def test_every_event_reads_as_the_remote_line(job: JobState) -> None:
    event = json.loads(protocol.dumps(protocol.progress_event(job, 7.0)))
    assert objects.progress_text(event, NOW) == f"Slurm job 5: {progress.describe(job, NOW)} (0:07)"


def test_an_event_with_fields_missing_or_odd_still_reads() -> None:
    assert objects.progress_text({"event": "progress", "job_id": "9"}, NOW) == "Slurm job 9: ? (0:00)"
    assert objects.moment("2025-12-02T15:05:00Z") == NOW
    assert objects.moment("soon") is None and objects.moment(None) is None
    first = {"event": "progress", "job_id": "9", "state": "PENDING", "elapsed": 1.0}
    assert objects.progress_key(first) == objects.progress_key({**first, "elapsed": 9.0})
    assert objects.progress_key(first) != objects.progress_key({**first, "reason": "Priority"})

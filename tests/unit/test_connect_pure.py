"""connect's reading of the remote's JSON, as pure functions: objects, events, the list, the laptop URL."""

from __future__ import annotations

import json

import pytest

from jupyter_hop import protocol
from jupyter_hop.errors import HopError
from jupyter_hop.laptop import objects
from jupyter_hop.laptop.connect import _plain


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
    assert shown == ["Slurm job 7 submitted; waiting for it to start", "Slurm job 7: PENDING (Resources) - 1 s"]
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

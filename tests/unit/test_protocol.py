"""The --json protocol: every object and event validates against the shipped schema, the tunnel and stop argv are
the words of the printed lines, and the token is in it only with --show-token (pure builders and the real CLI)."""

from __future__ import annotations

import dataclasses
import io
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labkit.hoptree import HopTree
from test_instructions_pure import JOB, check_tunnel_argv, indented_commands, records

from jupyter_hop import __version__, protocol
from jupyter_hop.slurm import progress, tools
from jupyter_hop.tracking import instructions
from jupyter_hop.tracking.records import Record

SCHEMA = protocol.schema()
OBJECT = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
EVENT = jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": "#/$defs/event"})
FIELDS = set(SCHEMA["$defs"]["object"]["properties"])
# how this shell reaches jupyter-hop, in the three forms instructions.invocation() gives
HOPS = st.sampled_from(
    ["jupyter hop", "jupyter-hop", "'/opt/my venv/bin/jupyter-hop'", "/usr/bin/python3 -m jupyter_hop"])


def parsed(line: str) -> dict[str, Any]:
    assert line.endswith("\n") and "\n" not in line[:-1], repr(line)
    obj: dict[str, Any] = json.loads(line)
    return obj


def test_schema_is_a_valid_draft_2020_12_document() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$defs"]["object"]["properties"]["schema"] == {**SCHEMA["$defs"]["object"]["properties"]["schema"],
                                                                  "const": protocol.SCHEMA}


@settings(max_examples=400, deadline=None)
@given(record=records(), show_token=st.booleans(), hop=HOPS, now=st.floats(1e9, 4e9))
def test_ready_object_is_the_printed_instructions(record: Record, show_token: bool, hop: str, now: float) -> None:
    obj = parsed(protocol.dumps(protocol.ready(record, hop=hop, show_token=show_token, now=now)))
    OBJECT.validate(obj)
    assert set(obj) == FIELDS - ({"token"} if not show_token else set())
    assert (obj["schema"], obj["version"], obj["state"], obj["kind"]) == (1, __version__, "ready", record.kind)
    text = instructions.render(record, style="command", show_secret=show_token, hop=hop)
    # the tunnel is the printed command, word for word, and its parts are those words
    argv = obj["tunnel"]["argv"]
    assert argv == shlex.split(indented_commands(text)[0])
    check_tunnel_argv(record, argv)
    tunnel = obj["tunnel"]
    assert tunnel["forward"] == argv[argv.index("-L") + 1] == f"127.0.0.1:{record.local_port}:{tunnel['remote']}"
    assert tunnel["target"] == argv[-1] and tunnel["local_port"] == record.local_port
    assert tunnel["jump"] == (argv[argv.index("-J") + 1] if "-J" in argv else None)
    assert tunnel["remote"] == (record.sock if record.bind == "socket" else record.endpoint
                                if ":" not in record.address else f"[{record.address}]:{record.port}")
    # the stop argv is the printed stop line's words; the URL is the printed one
    stop_line = text.splitlines()[-1].removeprefix("Stop it: ")
    assert obj["stop"] == shlex.split(stop_line)
    assert obj["url"] in text
    assert obj["instructions"][-1] == "--json" and obj["instructions"][:len(shlex.split(hop))] == shlex.split(hop)
    if record.kind == "job":
        assert obj["job_id"] == record.job_id and obj["unit"] is None
        if record.job_end is not None:
            assert obj["ends"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.job_end))
            assert obj["ends_in"] == round(record.job_end - now)
    else:
        assert obj["job_id"] is None and obj["ends"] is None and obj["ends_in"] is None
    assert obj["auth"] == ("token" if record.token else "password")
    # the token: only with --show-token, and then in the URL too; never a field without it
    line = protocol.dumps(obj)
    if record.token and not show_token:
        assert record.token not in line
    if show_token:
        assert obj["token"] == (record.token or None)
        assert ("?token=" in obj["url"]) == bool(record.token)


def test_a_job_object_spelled_out() -> None:
    """The README's example: a job bound on the node's address, reached through the login node."""
    record = dataclasses.replace(JOB, job_end=1795716300.0)
    obj = protocol.ready(record, hop="jupyter hop", show_token=False, now=1795716300.0 - 3600, log="/s/job.log")
    assert obj == {
        "schema": 1, "version": __version__, "state": "ready", "kind": "job", "profile": "gpu", "host": "c0412",
        "job_id": "81234", "unit": None, "ends": "2026-11-26T18:05:00Z", "ends_in": 3600, "bind": "node",
        "auth": "password",
        "tunnel": {"argv": ["ssh", "-N", "-L", "127.0.0.1:8888:10.1.4.12:47213", "alice@login1.example.edu"],
                   "local_port": 8888, "remote": "10.1.4.12:47213", "forward": "127.0.0.1:8888:10.1.4.12:47213",
                   "target": "alice@login1.example.edu", "jump": None},
        "url": "http://127.0.0.1:8888/lab", "stop": ["jupyter", "hop", "stop", "81234"],
        "instructions": ["jupyter", "hop", "slurm", "instructions", "81234", "--json"], "log": "/s/job.log",
    }
    OBJECT.validate(obj)


def test_a_double_hop_names_the_jump_host() -> None:
    record = dataclasses.replace(JOB, bind="localhost", address="127.0.0.1")
    tunnel = protocol.ready(record, hop="jupyter hop", show_token=False, now=0)["tunnel"]
    assert tunnel["argv"] == ["ssh", "-N", "-J", "alice@login1.example.edu", "-L",
                              "127.0.0.1:8888:127.0.0.1:47213", "alice@c0412"]
    assert (tunnel["jump"], tunnel["target"], tunnel["remote"]) == (
        "alice@login1.example.edu", "alice@c0412", "127.0.0.1:47213")


@pytest.mark.parametrize("show_token", [False, True])
def test_submitted_object(show_token: bool) -> None:
    obj = parsed(protocol.dumps(protocol.submitted("81234", "gpu", "socket", "/s/jobs/gpu-81234.log",
                                                   hop="jupyter hop", show_token=show_token)))
    OBJECT.validate(obj)
    assert set(obj) == FIELDS - ({"token"} if not show_token else set())
    assert (obj["state"], obj["kind"], obj["job_id"], obj["host"], obj["tunnel"], obj["url"]) == (
        "submitted", "job", "81234", None, None, None)
    assert obj["stop"] == ["jupyter", "hop", "stop", "81234"]
    assert obj["instructions"] == ["jupyter", "hop", "slurm", "instructions", "81234", "--wait", "--json"]


def test_a_ready_object_without_its_tunnel_is_invalid() -> None:
    obj = protocol.ready(JOB, hop="jupyter hop", show_token=False, now=0)
    with pytest.raises(jsonschema.ValidationError):
        OBJECT.validate({**obj, "tunnel": None})
    with pytest.raises(jsonschema.ValidationError):
        OBJECT.validate({**obj, "schema": 2})


def test_json_progress_writes_one_event_per_change() -> None:
    stream = io.StringIO()
    line = progress.JsonProgress(stream)
    pending = tools.JobState("5", "PENDING", "Priority")
    estimated = tools.JobState("5", "PENDING", "Resources", expected_start=1795000000.0)
    for elapsed, job in [(0.0, pending), (0.3, pending), (1.04, tools.JobState("5", "PENDING", "Resources")),
                         (1.5, estimated), (1.7, estimated),
                         (2.0, tools.JobState("5", "RUNNING", node="c1")), (2.5, tools.JobState("5", "RUNNING",
                                                                                                 node="c1"))]:
        line.job(job, elapsed)
    line.clear()
    events = [parsed(text + "\n") for text in stream.getvalue().splitlines()]
    for event in events:
        EVENT.validate(event)
    common = {"schema": 1, "event": "progress", "job_id": "5", "ready_on_node": False}
    resources = {**common, "state": "PENDING", "reason": "Resources", "node": None,
                 "reason_text": "waiting for resources (nodes, CPUs, memory or GPUs) to free up"}
    assert events == [
        {**common, "state": "PENDING", "reason": "Priority", "reason_text": "waiting for higher-priority jobs",
         "expected_start": None, "node": None, "elapsed": 0.0},
        {**resources, "expected_start": None, "elapsed": 1.0},
        {**resources, "expected_start": "2026-11-18T11:06:40Z", "elapsed": 1.5},
        {**common, "state": "RUNNING", "reason": None, "reason_text": None, "expected_start": None, "node": "c1",
         "elapsed": 2.0},
    ]
    EVENT.validate(protocol.submit_event("5", "/s/x.log"))
    EVENT.validate(protocol.reattach_event("5", "RUNNING", "/s/x.log"))
    EVENT.validate(protocol.reattach_event("5", "PENDING", ""))


# ---------------------------------------------------------------------------------------- through the real CLI


def write_record(tree: HopTree, record: Record) -> None:
    records_dir = tree.base / "state" / "jupyter-hop" / "records"
    records_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (records_dir / record.file_name).write_text(record.to_json())


TOKEN = "0123456789abcdef" * 3
RUN = Record(kind="run", profile="w", host="ws1", bind="localhost", address="127.0.0.1", port=41237, sock="",
             base_url="/", app="server", pid=4242, server_pid=4243, started=1.0, local_port=8888, ssh_host="ws1",
             ssh_user="alice", token=TOKEN)


@pytest.mark.parametrize("show_token", [False, True])
def test_instructions_json_from_the_cli(tmp_path: Path, show_token: bool) -> None:
    tree = HopTree.make(tmp_path)
    write_record(tree, RUN)
    done = tree.hop(["instructions", RUN.key, "--json", *(["--show-token"] if show_token else [])])
    assert done.returncode == 0, done.stderr
    obj = parsed(done.stdout)
    OBJECT.validate(obj)
    assert obj["tunnel"]["argv"] == ["ssh", "-N", "-L", "127.0.0.1:8888:127.0.0.1:41237", "alice@ws1"]
    # PATH leads to this jupyter-hop and to jupyter: the stop line says `jupyter hop`
    assert obj["stop"] == ["jupyter", "hop", "stop", "ws1-4242"]
    assert obj["instructions"] == ["jupyter", "hop", "instructions", "ws1-4242", "--json"]
    assert (TOKEN in done.stdout) == show_token
    if show_token:
        assert obj["token"] == TOKEN and obj["url"] == f"http://127.0.0.1:8888/?token={TOKEN}"
    text = tree.hop(["instructions", RUN.key])
    assert TOKEN not in text.stdout and text.stdout.startswith("Jupyter is ready on ws1 (pid 4242).")
    shown = tree.hop(["instructions", RUN.key, "--show-token"])
    assert f"Then open http://127.0.0.1:8888/?token={TOKEN}\n" in shown.stdout


def fake_slurm(bin_dir: Path, state_dir: Path, record: Record) -> None:
    """sbatch that answers job 4242; squeue that says PENDING (Priority) twice, then RUNNING on c0412, and on that
    call writes the job's record as its launcher would. squeue answers any -o format (unknown fields empty)."""
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho '4242;lab'\n")
    records_dir = state_dir / "jupyter-hop" / "records"
    script = f"""#!{sys.executable}
import sys, pathlib
count = pathlib.Path({str(bin_dir / "count")!r})
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
running = n > 2
fmt = sys.argv[sys.argv.index("-o") + 1]
values = {{"i": "4242", "T": "RUNNING" if running else "PENDING", "r": "None" if running else "Priority",
          "N": "c0412" if running else "", "e": "N/A", "L": "1:00:00"}}
out, i = "", 0
while i < len(fmt):
    if fmt[i] == "%":
        out += values.get(fmt[i + 1], "")
        i += 2
    else:
        out += fmt[i]
        i += 1
if running:
    pathlib.Path({str(records_dir)!r}).mkdir(parents=True, exist_ok=True)
    pathlib.Path({str(records_dir / record.file_name)!r}).write_text({record.to_json()!r})
print(out)
"""
    (bin_dir / "squeue").write_text(script)
    for tool in ("sbatch", "squeue"):
        (bin_dir / tool).chmod(0o755)


JOB_RECORD = dataclasses.replace(JOB, bind="localhost", address="127.0.0.1", job_id="4242", profile="good",
                                 host="c0412", job_end=1795716300.0, cluster="")


def submit_tree(tmp_path: Path) -> tuple[HopTree, dict[str, str]]:
    tree = HopTree.make(tmp_path / "t")
    assert tree.hop(["init", "good", "--no-password", "--root-dir", str(tree.work)]).returncode == 0
    bin_dir = tmp_path / "bin"
    fake_slurm(bin_dir, tree.base / "state", JOB_RECORD)
    # no slurm.conf: the cluster is unknown, records and notes are unkeyed
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin", "SLURM_CONF": str(tmp_path / "none")}
    return tree, env


def test_submit_json_with_fake_slurm_tools(tmp_path: Path) -> None:
    """A fast check of the wiring (the lab's tests/lab/test_protocol_lab.py submits to a real Slurm)."""
    tree, env = submit_tree(tmp_path)
    done = tree.hop(["slurm", "submit", "good", "--json"], env=env)
    assert done.returncode == 0, done.stderr
    obj = parsed(done.stdout)
    OBJECT.validate(obj)
    assert (obj["state"], obj["job_id"], obj["host"]) == ("ready", "4242", "c0412")
    assert obj["log"] and obj["log"].endswith("4242.log")
    events = [json.loads(line) for line in done.stderr.splitlines()]
    for event in events:
        EVENT.validate(event)
    assert events[0] == {"schema": 1, "event": "submitted", "job_id": "4242", "log": obj["log"]}
    assert [e["state"] for e in events[1:]][:1] == ["PENDING"]
    assert "token" not in obj and JOB_RECORD.token == ""


def test_submit_no_wait_json_with_fake_slurm_tools(tmp_path: Path) -> None:
    tree, env = submit_tree(tmp_path)
    done = tree.hop(["slurm", "submit", "good", "--no-wait", "--json"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    obj = parsed(done.stdout)
    OBJECT.validate(obj)
    assert (obj["state"], obj["job_id"], obj["tunnel"]) == ("submitted", "4242", None)
    assert obj["instructions"] == ["jupyter", "hop", "slurm", "instructions", "4242", "--wait", "--json"]


def test_submit_reattach_with_fake_slurm_tools(tmp_path: Path) -> None:
    """--reattach submits when the profile has no live job, and then finds that job instead of submitting
    another: the `reattached` event first, the job's object as `slurm instructions --wait` prints it."""
    tree, env = submit_tree(tmp_path)
    first = tree.hop(["slurm", "submit", "good", "--reattach", "--json"], env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stderr.splitlines()[0])["event"] == "submitted"
    log = parsed(first.stdout)["log"]
    again = tree.hop(["slurm", "submit", "good", "--reattach", "--json"], env=env)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stderr.splitlines()]
    for event in events:
        EVENT.validate(event)
    assert events == [{"schema": 1, "event": "reattached", "job_id": "4242", "state": "RUNNING", "log": log}]
    obj = parsed(again.stdout)
    OBJECT.validate(obj)
    assert (obj["state"], obj["job_id"], obj["log"]) == ("ready", "4242", log)
    text = tree.hop(["slurm", "submit", "good", "--reattach", "--time", "1:00:00"], env=env)
    assert text.returncode == 0, text.stderr
    assert text.stderr.splitlines()[0] == ("Reattaching to Slurm job 4242 (RUNNING) of profile good; not "
                                           "submitting another.")
    assert "ssh -N" in text.stdout

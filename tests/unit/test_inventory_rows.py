"""Pure parts of `list`: how unit and job states map to rows, durations, the table and the JSON shape."""

from __future__ import annotations

import time

from jupyter_hop.slurm import tools
from jupyter_hop.tracking import inventory
from jupyter_hop.tracking.inventory import Inventory, Row
from jupyter_hop.tracking.records import Record
from jupyter_hop.tracking.sources import QueuedJob, UnitState

NOW = 1_800_000_000.0


def record(**changes: object) -> Record:
    base = dict(kind="job", profile="nb", host="c1", bind="localhost", address="127.0.0.1", port=40001, sock="",
                base_url="/", app="server", pid=77, server_pid=78, started=NOW - 300, local_port=8888,
                job_id="81234", job_end=NOW + 3600)
    base.update(changes)
    return Record(**base)  # type: ignore[arg-type]


def unit(active: str, sub: str = "running", result: str = "success") -> UnitState:
    return UnitState("jupyter-hop-svc.service", "loaded", active, sub, result, 4242, NOW - 60)


def test_unit_states() -> None:
    assert inventory.unit_row(unit("active"), record(kind="unit", job_id="", job_end=None)).state == "ready"
    no_record = inventory.unit_row(unit("active"), None)
    assert (no_record.state, no_record.note) == ("ready", "running, but it wrote no record")
    restarting = inventory.unit_row(unit("activating", "auto-restart"), None)
    assert (restarting.state, restarting.note) == ("starting", "restarting after a failure")
    failed = inventory.unit_row(unit("failed", "failed", "exit-code"), None)
    assert (failed.state, failed.note) == ("failed", "systemd gave up (exit-code)")
    assert inventory.unit_row(unit("inactive", "dead"), None).state == "stopped"
    row = inventory.unit_row(unit("active"), record(kind="unit", job_id="", job_end=None))
    assert (row.key, row.profile, row.port, row.started) == ("svc", "svc", 40001, NOW - 300)


def job(state: str, reason: str = "None", node: str = "c1", start: str = "N/A") -> QueuedJob:
    line = f"81234|{state}|{reason}|{node}|2027-01-15T08:00:00|1:00:00|{start}|(null)"
    [parsed] = tools.parse_squeue(line)
    return QueuedJob(parsed, "nb", NOW - 400)


def test_job_states() -> None:
    pending = inventory.job_row(job("PENDING", "Priority", ""), None)
    assert (pending.state, pending.note, pending.ends, pending.profile) == ("pending", "Priority", None, "nb")
    assert inventory.job_row(job("RUNNING"), None).state == "starting"
    ready = inventory.job_row(job("RUNNING"), record())
    assert (ready.state, ready.host, ready.endpoint, ready.started) == ("ready", "c1", "127.0.0.1:40001", NOW - 300)
    assert ready.ends == tools.parse_time("2027-01-15T08:00:00")
    assert inventory.job_row(job("COMPLETING"), None).state == "stopped"
    assert inventory.job_row(job("OUT_OF_MEMORY"), None).state == "failed"


def test_durations() -> None:
    assert [inventory.duration(s) for s in (None, -3, 0, 59, 60, 3599, 3600, 3725, 86400 + 7200)] == [
        "-", "0s", "0s", "59s", "1m", "59m", "1h00m", "1h02m", "1d02h"]


def test_table_and_json() -> None:
    rows = [
        Row("svc", "svc", "unit", "ready", host="ws", port=40001, started=NOW - 125),
        Row("81234", "nb", "job", "ready", host="c1", sock="/run/user/1/j.sock", started=NOW - 7300,
            ends=NOW + 3700),
        Row("ws-77", "fg", "run", "stale", host="ws", port=40002, started=NOW - 10, note="launcher pid 77 is gone"),
    ]
    text = inventory.render(Inventory(rows, {}), now=NOW)
    assert text.splitlines() == [
        "ID     PROFILE  KIND  STATE  HOST  ENDPOINT            AGE    LEFT   NOTE",
        "svc    svc      unit  ready  ws    127.0.0.1:40001     2m     -",
        "81234  nb       job   ready  c1    /run/user/1/j.sock  2h01m  1h01m",
        "ws-77  fg       run   stale  ws    127.0.0.1:40002     10s    -      launcher pid 77 is gone",
    ]
    assert inventory.render(Inventory([], {}), now=NOW) == "No servers.\n"
    data = inventory.to_json(Inventory(rows, {"records": "ok", "systemd": "absent: x", "slurm": "error: y"}), NOW)
    assert data["servers"][1]["time_left"] == 3700 and data["servers"][1]["age"] == 7300
    assert data["servers"][1]["endpoint"] == "/run/user/1/j.sock"
    assert Inventory(rows, data["sources"]).warnings() == ["slurm: y"]


def test_find_by_key_then_profile() -> None:
    rows = [Row("ws-1", "p", "run", "ready"), Row("ws-2", "p", "run", "ready"), Row("p2", "p2", "unit", "ready")]
    found = Inventory(rows, {})
    assert [r.key for r in inventory.find(found, "ws-2")] == ["ws-2"]
    assert [r.key for r in inventory.find(found, "p")] == ["ws-1", "ws-2"]
    assert [r.key for r in inventory.find(found, "p2")] == ["p2"]
    assert inventory.find(found, "nothing") == []


def test_pending_job_with_an_expected_start() -> None:
    """The row, the table's note and the JSON carry Slurm's estimate; a running job's %S (its start) is not one."""
    pending = inventory.job_row(job("PENDING", "Resources", "", start="2027-01-15T08:00:00"), None)
    assert pending.expected_start == tools.parse_time("2027-01-15T08:00:00")
    assert inventory.job_row(job("RUNNING", start="2027-01-15T07:00:00"), record()).expected_start is None
    assert inventory.job_row(job("PENDING", "Priority", ""), None).expected_start is None
    rows = [Row("81234", "nb", "job", "pending", started=NOW - 60, note="Resources", expected_start=NOW + 725),
            Row("81235", "nb", "job", "pending", started=NOW - 60, expected_start=NOW + 86400 + 60)]
    lines = inventory.render(Inventory(rows, {}), now=NOW).splitlines()
    clock = time.strftime("%H:%M", time.gmtime(NOW + 725))
    assert lines[1].endswith(f"Resources, expected start {clock} UTC (in 12 min)"), lines
    day = time.strftime("%Y-%m-%d %H:%M", time.gmtime(NOW + 86400 + 60))
    assert lines[2].endswith(f"  expected start {day} UTC (in 1 d)"), lines
    data = inventory.to_json(Inventory(rows, {}), NOW)
    assert data["servers"][0]["expected_start"] == NOW + 725

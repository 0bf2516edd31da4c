"""Pure parts of issue 10 items 3 and 5: process identities, record file names per host and cluster, old records."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from jupyter_hop.errors import HopError
from jupyter_hop.tracking import place, records
from jupyter_hop.tracking.procid import ProcessId, boot_id
from jupyter_hop.tracking.records import Record


def record(**changes: object) -> Record:
    base = dict(kind="run", profile="nb", host="ws1.example.org", bind="localhost", address="127.0.0.1", port=40001,
                sock="", base_url="/", app="server", pid=77, server_pid=78, started=1.0, local_port=8888)
    base.update(changes)
    return Record(**base)  # type: ignore[arg-type]


def test_file_names_are_keyed_by_host_and_cluster_and_keys_stay_what_users_type() -> None:
    run, unit = record(), record(kind="unit", unit="jupyter-hop-nb.service")
    job = record(kind="job", host="c001", job_id="81234", cluster="hoplab")
    assert (run.file_name, run.key) == ("run-ws1.example.org-77.json", "ws1.example.org-77")
    assert (unit.file_name, unit.key) == ("unit-nb@ws1.example.org.json", "nb")
    assert (job.file_name, job.key) == ("job-81234@hoplab.json", "81234")
    assert dataclasses.replace(job, cluster="").file_name == "job-81234.json"  # where no cluster is known
    with pytest.raises(HopError):
        _ = dataclasses.replace(unit, host="../x").file_name


def test_same_launch_is_the_launch_id_or_for_old_records_host_pid_and_start() -> None:
    mine = record(launch_id="a" * 16)
    assert mine.same_launch(dataclasses.replace(mine))
    assert not mine.same_launch(dataclasses.replace(mine, launch_id="b" * 16))  # a restarted unit's launcher
    assert not mine.same_launch(dataclasses.replace(mine, launch_id=""))
    old = record()
    assert old.same_launch(record()) and not old.same_launch(record(started=2.0))


def test_old_records_load_without_identity_and_bad_identity_fields_are_refused(tmp_path: Path) -> None:
    old = {k: v for k, v in dataclasses.asdict(record()).items() if k in (
        "kind", "profile", "host", "bind", "address", "port", "sock", "base_url", "app", "pid", "server_pid",
        "started", "local_port")}
    path = tmp_path / "run-x-1.json"
    path.write_text(json.dumps(old))
    loaded = records.read(path)
    assert loaded is not None and loaded.launcher_id is None and loaded.server_id is None and loaded.cluster == ""
    for bad in ({"argv": "python"}, {"argv": [1, 2]}, {"pid_start": "12"}, {"server_argv": None}):
        path.write_text(json.dumps({**old, **bad}))
        assert records.read(path) is None, bad


def test_process_identity_matches_only_the_exact_process() -> None:
    me = ProcessId.of(os.getpid())
    assert me is not None and me.boot_id == boot_id() and me.matches()
    assert me.argv == tuple(Path("/proc/self/cmdline").read_bytes().decode().split("\0")[:-1])
    for changed in ({"start_ticks": me.start_ticks + 1}, {"boot_id": "0" * 36}, {"argv": (*me.argv, "x")}):
        assert not dataclasses.replace(me, **changed).matches(), changed  # type: ignore[arg-type]
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert ProcessId.of(gone.pid) is None and ProcessId.of(0) is None
    zombie = subprocess.Popen(["true"])
    try:
        found = ProcessId.of(zombie.pid)
        # exited but not reaped (or still running `true`): never an identity that can be signalled later
        assert found is None or found.argv == ("true",)
    finally:
        zombie.wait()


def test_cluster_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("# site\nSlurmctldHost=ctl\n clustername = Big.One  # the new one\n")
    monkeypatch.delenv("SLURM_CLUSTER_NAME", raising=False)
    monkeypatch.setenv("SLURM_CONF", str(conf))
    place.this_cluster.cache_clear()
    assert place.this_cluster() == "big.one"  # Slurm maps cluster names to lower case
    monkeypatch.setenv("SLURM_CLUSTER_NAME", "hoplab")
    place.this_cluster.cache_clear()
    assert place.this_cluster() == "hoplab"
    assert place.is_this_cluster("hoplab") and place.is_this_cluster("") and not place.is_this_cluster("other")
    monkeypatch.setenv("SLURM_CLUSTER_NAME", "a/b")
    place.this_cluster.cache_clear()
    with pytest.raises(HopError, match="is not a Slurm cluster name"):
        place.this_cluster()
    place.this_cluster.cache_clear()

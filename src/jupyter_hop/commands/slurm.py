"""`jupyter hop slurm render | submit | status | instructions | cancel`: a notebook as a Slurm batch job."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from jupyter_hop.commands import options as o
from jupyter_hop.commands.options import Json, ProfileName, ShowToken, SshConfig, check_show_token, group
from jupyter_hop.output import show_instructions

if TYPE_CHECKING:
    from jupyter_hop.paths import Paths
    from jupyter_hop.slurm.submissions import Submission

app, register = group("slurm", "Run the Jupyter server as a Slurm batch job on a compute node.")


JobId = Annotated[str, typer.Argument(help="Slurm job id (`jupyter hop slurm status` lists yours).")]


def _slurm_overrides(
    time: str | None, partition: str | None, cpus: str | None, mem: str | None, gpus: str | None,
    gres: str | None, account: str | None, qos: str | None, constraint: str | None, job_name: str | None,
    sbatch: list[str] | None,
) -> dict[str, dict[str, str | Sequence[str]]]:
    from jupyter_hop.profile import overrides

    return overrides.given("slurm", time=time, partition=partition, cpus=cpus, mem=mem, gpus=gpus, gres=gres,
                           account=account, qos=qos, constraint=constraint, job_name=job_name,
                           extra_directives=sbatch)


@app.command()
def render(
    name: ProfileName = "default",
    time: o.Time = None, partition: o.Partition = None, cpus: o.Cpus = None, mem: o.Mem = None,
    gpus: o.Gpus = None, gres: o.Gres = None, account: o.Account = None, qos: o.Qos = None,
    constraint: o.Constraint = None, job_name: o.JobName = None, sbatch: o.Sbatch = None, save: o.Save = False,
) -> None:
    """Print the batch script that `submit` would submit (`sbatch` also takes it as printed)."""
    from jupyter_hop.fsutil import private_dir
    from jupyter_hop.output import say
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import overrides, store
    from jupyter_hop.slurm import batch

    paths = Paths.from_env()
    given = _slurm_overrides(time, partition, cpus, mem, gpus, gres, account, qos, constraint, job_name, sbatch)
    base = store.load(paths, name)
    prof = overrides.apply(base, given)
    text = batch.render(batch.batch_script(prof, paths))
    if save:
        overrides.save(paths, base, prof, given)
    # Slurm does not create the --output directory: without it a job submitted by hand would fail unseen.
    private_dir(paths.jobs_dir)
    say(text.rstrip("\n"))


@app.command()
def submit(
    name: ProfileName = "default",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job id and return at once.")] = False,
    time: o.Time = None, partition: o.Partition = None, cpus: o.Cpus = None, mem: o.Mem = None,
    gpus: o.Gpus = None, gres: o.Gres = None, account: o.Account = None, qos: o.Qos = None,
    constraint: o.Constraint = None, job_name: o.JobName = None, sbatch: o.Sbatch = None, save: o.Save = False,
    as_json: Json = False,
    show_token: ShowToken = False,
    reattach: Annotated[bool, typer.Option(
        "--reattach", help="A job of this profile already queued or running is waited for and connected to "
        "instead (the one-off options then go unused); only when there is none is one submitted.")] = False,
) -> None:
    """Submit the job, wait until its server answers, then print how to connect."""
    from jupyter_hop.errors import HopError
    from jupyter_hop.output import say
    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import overrides, store
    from jupyter_hop.slurm import jobs

    check_show_token(show_token)
    if reattach and no_wait:
        raise HopError("--reattach waits for the job it finds and cannot go with --no-wait; "
                       "`jupyter hop list` shows the jobs there are")
    paths = Paths.from_env()
    given = _slurm_overrides(time, partition, cpus, mem, gpus, gres, account, qos, constraint, job_name, sbatch)
    base = store.load(paths, name)
    if reattach and _reattached(paths, name, base.ssh.style, as_json=as_json, show_token=show_token):
        return
    prof = overrides.apply(base, given)
    if save and given:
        overrides.check_writable(paths, name)
    submission = jobs.submit(paths, prof)
    job_id = submission.job_id
    if save:  # once sbatch took them: a partition it refuses is not kept
        overrides.save(paths, base, prof, given, done=f"Slurm job {job_id} was submitted with them all the same")
    if as_json:
        _submitted_json(paths, submission, prof.server.bind, no_wait=no_wait, show_token=show_token)
        if no_wait:
            return
        _wait_and_print(paths, submission, prof.server.ready_timeout, prof.ssh.style, as_json=True,
                        show_token=show_token)
        return
    if no_wait:
        say(f"Submitted Slurm job {job_id}.")
        say(f"Once it runs, `jupyter hop slurm instructions {job_id}` prints how to connect "
            f"(`--wait` waits for it); its log is {submission.log}")
        return
    sys.stderr.write(f"Submitted Slurm job {job_id}; waiting for its Jupyter server (Ctrl-C stops waiting, "
                     "not the job).\n")
    _wait_and_print(paths, submission, prof.server.ready_timeout, prof.ssh.style, show_token=show_token)


def _reattached(paths: Paths, name: str, style: str, *, as_json: bool, show_token: bool) -> bool:
    """--reattach: the newest live job of profile `name` (as `list` sees them), waited for and printed as
    `slurm instructions JOB --wait` does; False when there is none."""
    from jupyter_hop import protocol
    from jupyter_hop.slurm import submissions
    from jupyter_hop.tracking import inventory

    rows = [row for row in inventory.gather(paths, units=False).rows if row.kind == "job" and row.profile == name
            and row.state in ("pending", "starting", "ready") and row.job_id]
    found = max(rows, key=lambda row: row.started or 0.0, default=None)
    if found is None:
        return False
    state = found.job.state if found.job is not None else found.state
    submission = submissions.read_submission(paths, found.job_id)
    if as_json:
        log = submission.log if submission is not None else ""
        sys.stderr.write(protocol.dumps(protocol.reattach_event(found.job_id, state, str(log))))
        sys.stderr.flush()
    else:
        sys.stderr.write(f"Reattaching to Slurm job {found.job_id} ({state}) of profile {name}; "
                         "not submitting another.\n")
    _instructions(paths, found.job_id, style, wait=True, as_json=as_json, show_token=show_token)
    return True


def _submitted_json(paths: Paths, submission: Submission, bind: str, *, no_wait: bool, show_token: bool) -> None:
    """With --no-wait the protocol's object of a submitted job on stdout; else the first event on stderr."""
    from jupyter_hop import protocol
    from jupyter_hop.output import show_object
    from jupyter_hop.tracking import instructions

    if no_wait:
        show_object(protocol.submitted(submission.job_id, submission.profile, bind, submission.log,
                                       hop=instructions.invocation(), show_token=show_token))
        return
    sys.stderr.write(protocol.dumps(protocol.submit_event(submission.job_id, submission.log)))
    sys.stderr.flush()


def _wait_and_print(
    paths: Paths, submission: Submission, ready_timeout: float, style: str, *, as_json: bool = False,
    show_token: bool = False,
) -> None:
    from jupyter_hop.slurm import jobs, progress

    line: progress.Progress = progress.JsonProgress(sys.stderr) if as_json else progress.StatusLine(sys.stderr)
    job_id = submission.job_id
    try:
        record, job = jobs.wait_ready(paths, submission, ready_timeout, line)
    except KeyboardInterrupt:
        line.clear()
        sys.stderr.write(f"Stopped waiting; Slurm job {job_id} is left as it is. "
                         f"`jupyter hop slurm instructions {job_id} --wait` picks up again, "
                         f"`jupyter hop slurm cancel {job_id}` stops it.\n")
        raise typer.Exit(130) from None
    finally:
        line.clear()
    record = jobs.with_end(record, job)
    show_instructions(record, style, as_json=as_json, show_token=show_token, log=submission.log)


@app.command("instructions")
def instructions(
    job_id: JobId,
    ssh_config: SshConfig = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the job's server is ready.")] = False,
    as_json: Json = False,
    show_token: ShowToken = False,
) -> None:
    """Print how to connect to a running job's server (the token only on your own terminal)."""
    from jupyter_hop.paths import Paths
    from jupyter_hop.slurm import submissions

    check_show_token(show_token)
    submissions.check_job_id(job_id)
    _instructions(Paths.from_env(), job_id, "config" if ssh_config else "command", wait=wait, as_json=as_json,
                  show_token=show_token)


def _instructions(paths: Paths, job_id: str, style: str, *, wait: bool, as_json: bool, show_token: bool) -> None:
    from jupyter_hop.errors import HopError
    from jupyter_hop.profile import store
    from jupyter_hop.slurm import jobs, submissions
    from jupyter_hop.tracking import records

    if wait and records.find_job(paths, job_id) is None:
        submission = submissions.read_submission(paths, job_id)
        if submission is None:
            raise HopError(f"Slurm job {job_id} was not submitted by jupyter-hop for you; "
                           "`jupyter hop slurm status` lists yours")
        timeout = store.load(paths, submission.profile).server.ready_timeout
        _wait_and_print(paths, submission, timeout, style, as_json=as_json, show_token=show_token)
        return
    record = jobs.find_record(paths, job_id)
    show_instructions(record, style, as_json=as_json, show_token=show_token,
                      log=submissions.job_log(paths, record))


@app.command()
def status(
    as_json: Json = False,
) -> None:
    """List your jupyter-hop jobs: state, node, time left."""
    import time
    from dataclasses import asdict

    from jupyter_hop import timetext
    from jupyter_hop.output import emit_json, say, table
    from jupyter_hop.paths import Paths
    from jupyter_hop.slurm import jobs

    rows = jobs.status(Paths.from_env())
    if as_json:
        emit_json([asdict(row) for row in rows])
        return
    if not rows:
        say("No jupyter-hop Slurm jobs are queued or running.")
        return
    lines = [["JOBID", "PROFILE", "STATE", "NODE", "TIME LEFT", "READY"]]
    now = time.time()
    for row in rows:
        state = f"{row.state} ({row.reason})" if row.state == "PENDING" and row.reason else row.state
        if row.expected_start is not None:
            state += ", " + timetext.expected_start(row.expected_start, now)
        lines.append([row.job_id, row.profile, state, row.node or "-", row.time_left or "-",
                      "yes" if row.ready else "no"])
    sys.stdout.write(table(lines))


@app.command()
def cancel(job_id: JobId) -> None:
    """Cancel the job, wait until Slurm has stopped it, and forget its record."""
    from jupyter_hop.output import say
    from jupyter_hop.paths import Paths
    from jupyter_hop.slurm import jobs

    state = jobs.cancel(Paths.from_env(), job_id)
    say(f"Slurm job {job_id} is stopped ({state}).")

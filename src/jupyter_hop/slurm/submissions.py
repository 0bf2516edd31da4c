"""What jupyter-hop remembers of the jobs it submitted, per cluster: the notes under jobs/, and forgetting a job."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.tracking import records
from jupyter_hop.tracking.place import is_this_cluster, this_cluster


@dataclass
class Submission:
    """What submit remembers of a job, so status and cancel know it before the server has a record."""

    job_id: str
    profile: str
    log: str
    submitted: float
    cluster: str = ""  # Slurm reuses job ids across clusters; "" in notes of older versions


def job_log(paths: Paths, record: records.Record) -> str:
    """A job's output file, as submit noted it ("" when not a job, or submitted elsewhere)."""
    note = read_submission(paths, record.job_id) if record.kind == "job" else None
    return note.log if note else ""


def submission_path(paths: Paths, job_id: str) -> Path:
    """This cluster's note of job `job_id`: jobs/job-JOBID@CLUSTER.json (job-JOBID.json when no cluster is known)."""
    cluster = this_cluster()
    return paths.jobs_dir / (f"job-{job_id}@{cluster}.json" if cluster else f"job-{job_id}.json")


def read_submission(paths: Paths, job_id: str) -> Submission | None:
    """This cluster's note of the job, else an older version's unkeyed one (taken as this cluster's, as before)."""
    for path in dict.fromkeys([submission_path(paths, job_id), paths.jobs_dir / f"job-{job_id}.json"]):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            note = Submission(**{k: data[k] for k in ("job_id", "profile", "log", "submitted")},
                              cluster=str(data.get("cluster") or ""))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if is_this_cluster(note.cluster):
            return note
    return None


def _job_files(directory: Path) -> list[tuple[str, str, Path]]:
    """(job id, cluster or "", path) of the job-*.json files in `directory`."""
    found = []
    for path in _glob(directory, "job-*.json"):
        job_id, _, cluster = path.name[4:-5].partition("@")
        if job_id.isdigit():
            found.append((job_id, cluster, path))
    return found


def known_job_ids(paths: Paths) -> list[str]:
    """This cluster's jobs submitted by jupyter-hop (or with a record), oldest id first."""
    ids = {job_id for directory in (paths.jobs_dir, paths.records_dir)
           for job_id, cluster, _ in _job_files(directory) if is_this_cluster(cluster)}
    return sorted(ids, key=int)


def other_clusters(paths: Paths, job_id: str) -> list[str]:
    """The other clusters (sharing this home) whose jupyter-hop knows a job `job_id`."""
    return sorted({cluster for directory in (paths.jobs_dir, paths.records_dir)
                   for found, cluster, _ in _job_files(directory)
                   if found == job_id and cluster and not is_this_cluster(cluster)})


def other_cluster(job_id: str, cluster: str) -> str:
    """Why a job of another cluster is not touched here, in one line."""
    here = this_cluster() or "unknown"
    return (f"Slurm job {job_id} belongs to cluster {cluster}, not to this one ({here}): nothing was done here; "
            f"run `jupyter hop slurm cancel {job_id}` on a login node of {cluster}")


def _glob(directory: Path, pattern: str) -> list[Path]:
    try:
        return list(directory.glob(pattern))
    except OSError:
        return []


def check_job_id(job_id: str) -> str:
    if not job_id.isdigit():
        raise HopError(f"job id {job_id!r} is not allowed: use a Slurm job id (`jupyter hop slurm status`)")
    return job_id


def forget(paths: Paths, job_id: str) -> None:
    """Drop this cluster's note and records of the job; another cluster's job of the same id keeps its own."""
    mine = records.find(paths, "job", job_id, lambda r: r.job_id == job_id and is_this_cluster(r.cluster))
    # An unkeyed note (an older version's, or one written where no cluster was known) counts as this cluster's.
    for path in [submission_path(paths, job_id), paths.jobs_dir / f"job-{job_id}.json", *(p for p, _ in mine)]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

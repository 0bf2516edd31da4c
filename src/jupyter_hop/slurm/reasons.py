"""Why a job pends, in words: Slurm's reason codes (squeue %r, scontrol Reason=) mean little to most users.

The code stays next to the words wherever they are shown: it is what a site's documentation and a web search
know it by. Codes not listed here are shown as Slurm spells them.
"""

from __future__ import annotations

WORDS = {
    "Priority": "waiting for higher-priority jobs",
    "Resources": "waiting for resources (nodes, CPUs, memory or GPUs) to free up",
    "Dependency": "waiting for the jobs it depends on to finish",
    "DependencyNeverSatisfied": "the jobs it depends on failed: it will never start (cancel it)",
    "BeginTime": "waiting for its earliest start time (--begin)",
    "JobHeldUser": "held by its owner (`scontrol release` lets it start)",
    "JobHeldAdmin": "held by an administrator",
    "launch failed requeued held": "its launch failed; Slurm requeued and held it (ask your administrators)",
    "PartitionTimeLimit": "its time limit is above the partition's maximum: it will not start (lower slurm.time)",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows: it will not start",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition does not start jobs now",
    "PartitionConfig": "it asks for more than its partition has (CPUs, memory, GPUs)",
    "ReqNodeNotAvail": "a node it needs is unavailable (down, drained or reserved)",
    "NodeDown": "a node it needs is down",
    "Reservation": "waiting for its reservation to begin",
    "Licenses": "waiting for licenses",
    "BadConstraints": "its constraints cannot be met by any node: it will not start",
    "InvalidAccount": "its account is not valid: it will not start",
    "InvalidQOS": "its QOS is not valid: it will not start",
    "WaitingForScheduling": "waiting for the scheduler to consider it",
    "Cleaning": "its previous run is still being cleaned up",
    "JobArrayTaskLimit": "its array has as many tasks running as it may",
    "FrontEndDown": "no front end node is up",
    "SystemFailure": "Slurm had a failure (file system, network)",
    "BurstBufferResources": "waiting for burst buffer space",
    "BurstBufferStageIn": "waiting for its burst buffer to stage in",
    "QOSUsageThreshold": "its QOS has used up its share for now",
    "QOSJobLimit": "its QOS runs as many jobs as it may",
    "QOSResourceLimit": "its QOS uses as many resources as it may",
    "QOSTimeLimit": "its time limit is above what its QOS allows",
    "AssociationJobLimit": "your account runs as many jobs as it may",
    "AssociationResourceLimit": "your account uses as many resources as it may",
    "AssociationTimeLimit": "its time limit is above what your account allows",
    "QOSMaxJobsPerUserLimit": "you run as many jobs as its QOS allows per user",
    "QOSMaxSubmitJobPerUserLimit": "you have as many jobs queued as its QOS allows per user",
    "QOSMaxWallDurationPerJobLimit": "its time limit is above its QOS's maximum: it will not start (lower slurm.time)",
    "AssocMaxJobsLimit": "you run as many jobs as your account allows",
    "AssocMaxWallDurationPerJobLimit": "its time limit is above your account's maximum: it will not start",
}

# Families whose members name the limit in their middle (QOSMaxCpuPerUserLimit, AssocGrpGRES, ...).
FAMILIES = (
    ("QOSMax", "held by a per-user or per-job limit of its QOS"),
    ("QOSGrp", "held by a limit of its QOS on all its jobs together"),
    ("QOSMin", "it asks for less than its QOS requires: it will not start"),
    ("AssocMax", "held by a per-user or per-job limit of your account (association)"),
    ("AssocGrp", "held by a limit of your account (association) on all its jobs together"),
    ("MaxMemPer", "it asks for more memory per CPU or node than allowed"),
)


def code(reason: str) -> str:
    """The code of a reason that carries details ("ReqNodeNotAvail, UnavailableNodes:c[01-02]")."""
    return reason.split(",", 1)[0].strip()


def words(reason: str) -> str:
    """The reason in words, or "" when there are none for it (then show the code alone)."""
    key = code(reason)
    if key in WORDS:
        return WORDS[key]
    for prefix, text in FAMILIES:
        if key.startswith(prefix):
            return text
    return ""


def explain(reason: str) -> str:
    """Words with the code in parentheses, the code alone when unknown, "" for no reason."""
    if not reason:
        return ""
    text = words(reason)
    return f"{text} ({reason})" if text else reason

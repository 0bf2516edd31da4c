"""Checks for the Slurm values a profile may carry, in the forms sbatch accepts."""

from __future__ import annotations

from dataclasses import dataclass, field

from jupyter_hop.errors import HopError
from jupyter_hop.patterns import lazy

# sbatch --time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
TIME_RE = lazy(
    r"\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2}"
)
MEM_RE = lazy(r"[1-9]\d*[KMGT]?")
# partition, account, qos, job name: what sites use, and nothing a shell or sbatch would read specially
WORD_RE = lazy(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
GPUS_RE = lazy(r"([A-Za-z0-9_.-]+:)?[1-9]\d*")
GRES_RE = lazy(r"[A-Za-z0-9_.:,-]{1,256}")
CONSTRAINT_RE = lazy(r"[A-Za-z0-9_.&|!\[\]*()-]{1,256}")
# a short option takes its value after one space, and the value does not start with "-" (another option)
DIRECTIVE_RE = lazy(r"--[a-z][a-z0-9-]*(=[^\n\r\x00]*)?|-[A-Za-z]( [^\n\r\x00 -][^\n\r\x00]*)?")
OPTION_NAME_RE = lazy(r"--[a-z][a-z0-9-]*|-[A-Za-z]")
MAX_SETUP_LINE = 4096
# sbatch's one-letter options, so "-p" and "--partition" name the same directive when skipping or overriding
SHORT_OPTIONS = {
    "-A": "--account", "-a": "--array", "-B": "--extra-node-info", "-b": "--begin", "-C": "--constraint",
    "-c": "--cpus-per-task", "-D": "--chdir", "-d": "--dependency", "-e": "--error", "-F": "--nodefile",
    "-G": "--gpus", "-H": "--hold", "-i": "--input", "-J": "--job-name", "-k": "--no-kill",
    "-L": "--licenses", "-M": "--clusters", "-m": "--distribution", "-N": "--nodes", "-n": "--ntasks",
    "-O": "--overcommit", "-o": "--output", "-p": "--partition", "-Q": "--quiet", "-q": "--qos",
    "-S": "--core-spec", "-s": "--oversubscribe", "-t": "--time", "-W": "--wait", "-w": "--nodelist",
    "-x": "--exclude",
}
# jupyter-hop reads the job log at --output to report failures; these would move or split it
LOG_OPTIONS = frozenset({"--output", "--error", "--open-mode"})
# options that make no sense inside a batch script that runs one server
REFUSED_EXTRA = LOG_OPTIONS | {"--wrap", "--array", "--wait", "--hold", "--help", "--usage", "--version"}



@dataclass
class SlurmSettings:
    """The profile's [slurm] table: the batch job's resources, directives and setup lines."""

    job_name: str = "jupyter-hop"
    partition: str = ""
    time: str = "04:00:00"
    cpus: int = 1
    mem: str = ""
    gpus: str = ""
    gres: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    signal_grace: int = 120  # seconds before the time limit at which the server gets SIGTERM
    extra_directives: list[str] = field(default_factory=list)
    skip_directives: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)  # shell lines run before the server starts


def _bad(key: str, value: object, allowed: str) -> HopError:
    return HopError(f"slurm.{key} = {value!r} is not allowed: {allowed}")


def option_name(directive: str) -> str:
    """The long option name a directive or skip entry names: "-p debug" and "--partition=x" -> --partition."""
    name = directive.split("=", 1)[0].split(" ", 1)[0]
    return SHORT_OPTIONS.get(name, name)


def seconds(time: str) -> int:
    """Seconds in an sbatch --time value that already matched TIME_RE."""
    days = 0
    if "-" in time:
        day_part, time = time.split("-", 1)
        days = int(day_part)
        parts = [int(p) for p in time.split(":")]
        hours, minutes, secs = [*parts, 0, 0][:3]
    else:
        parts = [int(p) for p in time.split(":")]
        if len(parts) == 1:
            hours, minutes, secs = 0, parts[0], 0
        elif len(parts) == 2:
            hours, minutes, secs = 0, parts[0], parts[1]
        else:
            hours, minutes, secs = parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


def validate(s: SlurmSettings) -> None:
    if not TIME_RE.fullmatch(s.time):
        raise _bad("time", s.time, "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
    if seconds(s.time) < 60:
        raise _bad("time", s.time, "at least one minute")
    if not 1 <= s.cpus <= 4096:
        raise _bad("cpus", s.cpus, "1-4096")
    if s.mem and not MEM_RE.fullmatch(s.mem):
        raise _bad("mem", s.mem, "a size such as 4000M, 16G or 1T (no space, no decimals)")
    for key in ("job_name", "partition", "account", "qos"):
        value = getattr(s, key)
        if (value or key == "job_name") and not WORD_RE.fullmatch(value):
            raise _bad(key, value, "letters, digits, '.', '_', '+' or '-' (at most 128)")
    if s.gpus and not GPUS_RE.fullmatch(s.gpus):
        raise _bad("gpus", s.gpus, "a count such as 1, or type:count such as a100:2")
    if s.gres and not GRES_RE.fullmatch(s.gres):
        raise _bad("gres", s.gres, "a gres list such as gpu:1 or gpu:a100:2")
    if s.constraint and not CONSTRAINT_RE.fullmatch(s.constraint):
        raise _bad("constraint", s.constraint, "feature names joined by & | and brackets")
    if not 10 <= s.signal_grace <= 3600:
        raise _bad("signal_grace", s.signal_grace, "seconds, 10-3600")
    if s.signal_grace >= seconds(s.time):
        raise _bad("signal_grace", s.signal_grace, f"less than the job's time ({s.time})")
    for line in s.extra_directives:
        if not DIRECTIVE_RE.fullmatch(line):
            raise _bad("extra_directives", line,
                       "one sbatch option per item, such as \"--exclusive\" or \"--mail-type=END\"")
        if option_name(line) in REFUSED_EXTRA:
            refused = ", ".join(sorted(REFUSED_EXTRA))
            raise _bad("extra_directives", line, f"any sbatch option but {refused} (submit reads the job log "
                       "at its own --output path, and a job runs one server)")
    for name in s.skip_directives:
        if not OPTION_NAME_RE.fullmatch(name):
            raise _bad("skip_directives", name, "option names such as \"--mem\" or \"-p\"")
        if option_name(name) in LOG_OPTIONS:
            raise _bad("skip_directives", name, "any directive but --output (submit reads the job log there)")
    for line in s.setup:
        if "\n" in line or "\r" in line or "\x00" in line or len(line) > MAX_SETUP_LINE:
            raise _bad("setup", line, "one shell line per item (no newlines), such as \"module load cuda\"")

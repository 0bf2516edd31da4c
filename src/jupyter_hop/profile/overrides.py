"""One-off overrides (`--time 2:00:00`, `--port 9000`): profile values for one command, checked like the file's."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.patterns import lazy
from jupyter_hop.profile.model import Profile, validate
from jupyter_hop.slurm.settings import option_name

# section -> key -> the value as typed: a string, or for --sbatch the list of its directives
Given = Mapping[str, Mapping[str, "str | Sequence[str]"]]
INTEGER_RE = lazy(r"[+-]?[0-9]{1,18}")


# A NamedTuple rather than a dataclass: every render imports this module, and building a dataclass costs it
# most of a millisecond (it compiles its generated methods).
class Option(NamedTuple):
    """A one-off option and the profile key it stands for."""

    flag: str
    section: str
    key: str
    integer: str = ""  # for an integer key: its allowed values, worded as the profile check words them
    directive: str = ""  # for a Slurm key: the sbatch option it becomes in the batch script


OPTIONS = (
    Option("--time", "slurm", "time", directive="--time"),
    Option("--partition", "slurm", "partition", directive="--partition"),
    Option("--cpus", "slurm", "cpus", integer="1-4096", directive="--cpus-per-task"),
    Option("--mem", "slurm", "mem", directive="--mem"),
    Option("--gpus", "slurm", "gpus", directive="--gpus"),
    Option("--gres", "slurm", "gres", directive="--gres"),
    Option("--account", "slurm", "account", directive="--account"),
    Option("--qos", "slurm", "qos", directive="--qos"),
    Option("--constraint", "slurm", "constraint", directive="--constraint"),
    Option("--job-name", "slurm", "job_name", directive="--job-name"),
    Option("--sbatch", "slurm", "extra_directives"),
    Option("--app", "server", "app"),
    Option("--bind", "server", "bind"),
    Option("--port", "server", "port", integer="0 (pick a free port) or 1024-65535"),
    Option("--root-dir", "server", "root_dir"),
    Option("--idle-timeout", "server", "idle_timeout", integer="seconds, 0 or more (0 = never)"),
)
BY_KEY = {(o.section, o.key): o for o in OPTIONS}
BY_FLAG = {o.flag: o for o in OPTIONS}


def given(section: str, **values: str | Sequence[str] | None) -> dict[str, dict[str, str | Sequence[str]]]:
    """The overrides a command was given, by profile key; options left out (None, or no --sbatch) are absent."""
    chosen = {key: value for key, value in values.items() if value is not None and (value or isinstance(value, str))}
    for key in chosen:
        if (section, key) not in BY_KEY:
            raise ValueError(f"no override option for {section}.{key}")
    return {section: chosen} if chosen else {}


def _items(overrides: Given) -> Iterator[tuple[Option, str | Sequence[str]]]:
    for option in OPTIONS:  # a fixed order, so errors and unit command lines do not depend on how they were typed
        value = overrides.get(option.section, {}).get(option.key)
        if value is not None:
            yield option, value


def apply(profile: Profile, overrides: Given) -> Profile:
    """`profile` with `overrides`, each one checked as if the profile file held it; an error names the option.

    The profile itself was valid, so the first override after which it is not is the one to name, even when
    the check that fails is another key's (`--time 1` is shorter than slurm.signal_grace).
    """
    for option, value in _items(overrides):
        if option.key == "extra_directives":
            for line in value:
                profile = _with(profile, option, line, _directive_added(profile, option, line))
        else:
            assert isinstance(value, str)
            profile = _with(profile, option, value, _value_set(profile, option, value))
    return profile


def _value_set(profile: Profile, option: Option, text: str) -> dict[str, Any]:
    value: object = text
    if option.integer:
        if not INTEGER_RE.fullmatch(text.strip()):
            raise HopError(f"{option.flag} = {text!r} is not allowed: an integer, {option.integer}")
        value = int(text)
    changes = {option.key: value}
    if option.directive:
        slurm = profile.slurm
        _not_skipped(profile, option, text, option.directive)
        # The profile's own directive of that name would replace the generated one, and with it the override.
        changes["extra_directives"] = [d for d in slurm.extra_directives if option_name(d) != option.directive]
    return changes


def _directive_added(profile: Profile, option: Option, line: str) -> dict[str, Any]:
    name = option_name(line)
    _not_skipped(profile, option, line, name)
    # One of the profile's own with the same name is replaced, as a generated one is.
    kept = [d for d in profile.slurm.extra_directives if option_name(d) != name]
    return {"extra_directives": [*kept, line]}


def _not_skipped(profile: Profile, option: Option, value: str, directive: str) -> None:
    if directive in {option_name(name) for name in profile.slurm.skip_directives}:
        raise HopError(
            f"{option.flag} = {value!r} is not allowed: profile {profile.name!r} has {directive} in "
            "slurm.skip_directives (the site refuses it); take it out there to use it"
        )


def _with(profile: Profile, option: Option, value: str, changes: dict[str, Any]) -> Profile:
    section = dataclasses.replace(getattr(profile, option.section), **changes)
    changed = dataclasses.replace(profile, **{option.section: section})
    try:
        validate(changed)
    except HopError as exc:
        message = _renamed(exc.message, option)
        if message == exc.message:
            message = f"{option.flag} = {value!r} does not fit the rest of the profile: {exc.message}"
        raise HopError(message) from exc
    return changed


def _renamed(message: str, option: Option) -> str:
    """A message about the option's key ("slurm.time = '5 hours' is not allowed: ...") about the option."""
    prefix = f"{option.section}.{option.key} = "
    return option.flag + " = " + message[len(prefix):] if message.startswith(prefix) else message


@contextlib.contextmanager
def naming(overrides: Given) -> Iterator[None]:
    """Errors found later about an overridden key (the root dir is missing, the port is taken) name the option,
    which is where the value came from."""
    try:
        yield
    except HopError as exc:
        message = exc.message
        for option, _ in _items(overrides):
            message = _renamed(message, option)
        if message == exc.message:
            raise
        raise HopError(message, detail=exc.detail, exit_code=exc.exit_code) from exc


def updates(before: Profile, after: Profile, overrides: Given) -> dict[str, dict[str, Any]]:
    """What `--save` writes: the overridden keys (and extra_directives when an override changed them)."""
    found: dict[str, dict[str, Any]] = {}
    for option, _ in _items(overrides):
        found.setdefault(option.section, {})[option.key] = getattr(getattr(after, option.section), option.key)
    if after.slurm.extra_directives != before.slurm.extra_directives:
        found.setdefault("slurm", {})["extra_directives"] = list(after.slurm.extra_directives)
    return found


def run_args(profile: Profile, overrides: Given) -> list[str]:
    """The server overrides as `jupyter-hop run` options (values as checked), for a unit's command line."""
    words: list[str] = []
    for option, _ in _items(overrides):
        if option.section == "server":
            words += [option.flag, str(getattr(profile.server, option.key))]
    return words


def parse_run_args(words: Sequence[str]) -> dict[str, dict[str, str | Sequence[str]]] | None:
    """The overrides `run_args` wrote (read back from an installed unit), or None when they are not such."""
    if len(words) % 2:
        return None
    found: dict[str, str] = {}
    for flag, value in zip(words[::2], words[1::2], strict=True):
        option = BY_FLAG.get(flag)
        if option is None or option.section != "server" or option.key in found:
            return None
        found[option.key] = value
    return {"server": dict(found)} if found else {}


def check_writable(paths: Paths, name: str) -> None:
    """Before anything else is done: `--save` could not write the profile file."""
    path = paths.profile_file(name)
    # A rename would replace even a file the user made read-only; os.access also sees read-only mounts.
    for target in (path, path.parent):
        if not os.access(target, os.W_OK):
            raise HopError(f"--save: cannot write {path}: {target} is read-only for you")


def save(paths: Paths, before: Profile, after: Profile, overrides: Given, *, done: str = "") -> None:
    """`--save`: write the overrides into the profile file, keeping its comments, with its server config, as
    `init` does. Commands call it once everything else is checked, so a command that fails changes nothing;
    `done` says what already happened when it still fails (a job submitted)."""
    from jupyter_hop.profile import setup

    if not overrides:
        return
    try:
        check_writable(paths, before.name)
        with naming(overrides):
            setup.init_profile(paths, before.name, updates(before, after, overrides), ask_password=None)
    except HopError as exc:
        message = exc.message if exc.message.startswith("--") else f"--save: {exc.message}"
        raise HopError(message + (f"; {done}" if done else ""), detail=exc.detail, exit_code=exc.exit_code) from exc

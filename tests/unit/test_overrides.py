"""One-off overrides, pure: each option sets its profile key, is checked like the file's value, names itself."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jupyter_hop.errors import HopError
from jupyter_hop.profile import model, overrides
from jupyter_hop.profile.model import Profile

SLURM = {
    "time": "2:00:00", "partition": "gpu", "cpus": "8", "mem": "16G", "gpus": "a100:2", "gres": "gpu:1",
    "account": "proj.42", "qos": "high", "constraint": "a100&ib", "job_name": "nb-1",
}
SERVER = {"app": "server", "bind": "socket", "port": "9000", "root_dir": "/srv/nb", "idle_timeout": "600"}


def profile(data: dict[str, Any] | None = None) -> Profile:
    return model.from_dict("p", data or {})


def test_every_option_sets_its_key_and_nothing_else() -> None:
    base = profile()
    for section, values in (("slurm", SLURM), ("server", SERVER)):
        for key, text in values.items():
            changed = overrides.apply(base, overrides.given(section, **{key: text}))
            expected = int(text) if key in ("cpus", "port", "idle_timeout") else text
            assert getattr(getattr(changed, section), key) == expected, key
            for other in model.SECTIONS:
                if other != section:
                    assert getattr(changed, other) == getattr(base, other)
            assert getattr(base, section) == getattr(profile(), section), "the profile given was changed"


def test_options_cover_the_keys_the_brief_names() -> None:
    flags = {o.flag for o in overrides.OPTIONS}
    assert {f"--{k.replace('_', '-')}" for k in [*SLURM, *SERVER]} | {"--sbatch"} == flags


def test_given_drops_what_was_not_given() -> None:
    assert overrides.given("slurm", time=None, extra_directives=[]) == {}
    assert overrides.given("slurm", partition="") == {"slurm": {"partition": ""}}  # '' = the cluster's default
    with pytest.raises(ValueError, match=r"slurm\.setup"):
        overrides.given("slurm", setup="x")


def refused(section: str, key: str, value: object, data: dict[str, Any] | None = None) -> str:
    with pytest.raises(HopError) as caught:
        overrides.apply(profile(data), {section: {key: value}})  # type: ignore[dict-item]
    message = caught.value.message
    assert "\n" not in message
    return message


def test_the_brief_example() -> None:
    assert refused("slurm", "time", "5 hours") == (
        "--time = '5 hours' is not allowed: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
    )


@pytest.mark.parametrize(
    ("section", "key", "value", "names"),
    [
        ("slurm", "cpus", "many", "--cpus = 'many' is not allowed: an integer, 1-4096"),
        ("slurm", "cpus", "2.5", "--cpus = '2.5' is not allowed: an integer, 1-4096"),
        ("slurm", "cpus", "0", "--cpus = 0 is not allowed: 1-4096"),
        ("slurm", "mem", "4 GB", "--mem = '4 GB'"),
        ("slurm", "gpus", "a100:0", "--gpus = 'a100:0'"),
        ("slurm", "gres", "gpu:1;id", "--gres = 'gpu:1;id'"),
        ("slurm", "partition", "a b", "--partition = 'a b'"),
        ("slurm", "account", "-A", "--account = '-A'"),
        ("slurm", "qos", "$(id)", "--qos = '$(id)'"),
        ("slurm", "constraint", "a;b", "--constraint = 'a;b'"),
        ("slurm", "job_name", "", "--job-name = ''"),
        ("server", "port", "80", "--port = 80 is not allowed: 0 (pick a free port) or 1024-65535"),
        ("server", "port", "http", "--port = 'http' is not allowed: an integer, 0 (pick a free port) or 1024-65535"),
        ("server", "port", "9" * 30, "an integer"),
        ("server", "idle_timeout", "-1", "--idle-timeout = -1 is not allowed: seconds, 0 or more"),
        ("server", "app", "hub", "--app = 'hub' is not allowed: one of lab, server, notebook"),
        ("server", "bind", "any", "--bind = 'any' is not allowed: one of localhost, socket, node"),
        ("server", "root_dir", "nb", "--root-dir = 'nb' is not allowed: an absolute path"),
        ("server", "root_dir", "/a\nb", "--root-dir = '/a\\nb' is not allowed"),
    ],
)
def test_bad_values_name_the_option(section: str, key: str, value: str, names: str) -> None:
    assert names in refused(section, key, value)


def test_integer_wording_is_the_profile_checks() -> None:
    """A non-integer and an out-of-range integer are described alike."""
    for option in overrides.OPTIONS:
        if option.integer:
            message = refused(option.section, option.key, "-99")
            assert message.endswith(f"is not allowed: {option.integer}"), message


def test_a_value_that_clashes_with_another_key_names_both() -> None:
    message = refused("slurm", "time", "1")
    assert message.startswith("--time = '1' does not fit the rest of the profile: slurm.signal_grace = 120"), message


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("--output=x", "--sbatch = '--output=x' is not allowed: any sbatch option but"),
        ("-o x", "--sbatch = '-o x'"),
        ("--wrap=ls", "--sbatch = '--wrap=ls'"),
        ("foo", "--sbatch = 'foo' is not allowed: one sbatch option"),
        ("--x\n#SBATCH --wrap=ls", "--sbatch = '--x\\n#SBATCH --wrap=ls'"),
    ],
)
def test_bad_sbatch_lines_name_the_option(line: str, needle: str) -> None:
    assert needle in refused("slurm", "extra_directives", [line])


def test_sbatch_appends_and_replaces_by_option_name() -> None:
    base = profile({"slurm": {"extra_directives": ["--exclusive", "--mail-type=END"]}})
    changed = overrides.apply(base, {"slurm": {"extra_directives": ["--mail-type=ALL", "-C a100"]}})
    assert changed.slurm.extra_directives == ["--exclusive", "--mail-type=ALL", "-C a100"]


def test_an_override_beats_the_profiles_own_directive_of_that_name() -> None:
    """The profile's `-t 1:00:00` would replace the generated --time, and with it `--time 2:00:00`."""
    base = profile({"slurm": {"extra_directives": ["-t 1:00:00", "--exclusive"]}})
    changed = overrides.apply(base, {"slurm": {"time": "2:00:00"}})
    assert changed.slurm.time == "2:00:00"
    assert changed.slurm.extra_directives == ["--exclusive"]
    assert overrides.updates(base, changed, {"slurm": {"time": "2:00:00"}}) == {
        "slurm": {"time": "2:00:00", "extra_directives": ["--exclusive"]}
    }


def test_a_skipped_directive_is_refused_not_ignored() -> None:
    data = {"slurm": {"skip_directives": ["--mem", "-p"]}}
    assert "--mem = '4G' is not allowed: profile 'p' has --mem in slurm.skip_directives" in refused(
        "slurm", "mem", "4G", data)
    assert "--sbatch = '--partition=x'" in refused("slurm", "extra_directives", ["--partition=x"], data)
    assert "--partition" in refused("slurm", "partition", "x", data)


def test_updates_are_the_given_keys_as_checked() -> None:
    base = profile()
    given = overrides.given("slurm", cpus="04", time="2:00:00")
    changed = overrides.apply(base, given)
    assert overrides.updates(base, changed, given) == {"slurm": {"time": "2:00:00", "cpus": 4}}
    given = overrides.given("slurm", extra_directives=["--exclusive"])
    changed = overrides.apply(base, given)
    assert overrides.updates(base, changed, given) == {"slurm": {"extra_directives": ["--exclusive"]}}


def test_run_args_read_back() -> None:
    base = profile()
    given = overrides.given("server", idle_timeout="60", port="09000", root_dir="/srv/a b")
    changed = overrides.apply(base, given)
    words = overrides.run_args(changed, given)
    assert words == ["--port", "9000", "--root-dir", "/srv/a b", "--idle-timeout", "60"]  # fixed order, checked
    assert overrides.parse_run_args(words) == {"server": {"port": "9000", "root_dir": "/srv/a b",
                                                          "idle_timeout": "60"}}
    assert overrides.apply(base, overrides.parse_run_args(words) or {}) == changed
    assert overrides.run_args(changed, overrides.given("slurm", time="1:00:00")) == []
    assert overrides.parse_run_args([]) == {}
    for junk in (["--port"], ["--time", "1"], ["--port", "1", "--port", "2"], ["--debug", "x"]):
        assert overrides.parse_run_args(junk) is None, junk


def test_naming_renames_only_overridden_keys() -> None:
    given = overrides.given("server", port="9000")
    with pytest.raises(HopError, match=re.escape("--port = 9000 is already in use")), overrides.naming(given):
        raise HopError("server.port = 9000 is already in use on 127.0.0.1")
    with pytest.raises(HopError, match=re.escape("server.root_dir = '/x' does not exist")), overrides.naming(given):
        raise HopError("server.root_dir = '/x' does not exist")


def test_override_code_stays_light() -> None:
    """Applying overrides needs neither tomlkit nor jinja2 (only saving and rendering do)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from jupyter_hop.profile import model, overrides\n"
        "overrides.apply(model.from_dict('p', {}), {'slurm': {'time': '1:00:00'}, 'server': {'port': '9000'}})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert not loaded & {"tomlkit", "jinja2", "typer", "jupyter_server"}

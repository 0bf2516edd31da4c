"""The unit renderer: golden files per variant, `systemd-analyze verify` with empty stderr, and no injection."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.profile import model, overrides
from jupyter_hop.systemd import settings as systemd_settings
from jupyter_hop.systemd import unit as unit_file

GOLDEN = Path(__file__).parent / "golden" / "units"
HOME = Path("/home/alice")
PATHS = Paths(HOME / ".config" / "jupyter-hop", HOME / ".local" / "state" / "jupyter-hop", Path("/run/user/1000/x"))
PYTHON = "/opt/venv/bin/python"

VARIANTS: dict[str, dict[str, object]] = {
    # what most workstations get: a journal, user namespaces, the notebook dir in the home
    "default": {"data": {}, "root": HOME, "journal": True, "private_users": True},
    # no journal (output to a file), limits, environment, and a root dir full of characters systemd interprets
    "logfile-limits-env": {
        "data": {
            "server": {"ready_timeout": 300},
            "systemd": {
                "environment": {"OMP_NUM_THREADS": "4", "ODD": "a \"b\" \\c %n $HOME ${X} 'q' ;x # y"},
                "memory_max": "16G",
                "cpu_quota": "200%",
            },
        },
        "root": HOME / "notebooks 100% \"x\" \\y",
        "journal": False,
        "private_users": True,
    },
    # user namespaces unavailable, root dir outside the home
    "no-userns": {"data": {}, "root": Path("/srv/data/alice"), "journal": True, "private_users": False},
    # `systemd install lab --app server --port 9000 --root-dir ... --idle-timeout 600`: the run line carries them
    "overrides": {
        "data": {},
        "root": HOME / "nb 100% $HOME \"q\" 'x'",
        "journal": True,
        "private_users": True,
        "given": {"server": {"app": "server", "port": "9000", "root_dir": "/home/alice/nb 100% $HOME \"q\" 'x'",
                             "idle_timeout": "600"}},
    },
}


def _spec(variant: str, *, python: str = PYTHON) -> unit_file.UnitSpec:
    v = VARIANTS[variant]
    prof = model.from_dict("lab", v["data"])  # type: ignore[arg-type]
    given = v.get("given", {})
    prof = overrides.apply(prof, given)  # type: ignore[arg-type]
    return unit_file.spec_for(prof, PATHS, root_dir=v["root"], home=HOME, python=python,  # type: ignore[arg-type]
                            journal=bool(v["journal"]), private_users=bool(v["private_users"]),
                            run_args=overrides.run_args(prof, given))  # type: ignore[arg-type]


def verify(text: str, unit: str) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze --user verify` (offline; a temp XDG_RUNTIME_DIR is all it needs)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / unit
        path.write_text(text)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(HOME), "XDG_RUNTIME_DIR": tmp, "LANG": "C.UTF-8"}
        return subprocess.run(["systemd-analyze", "--user", "verify", str(path)],
                              capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_golden(variant: str) -> None:
    text = unit_file.render(_spec(variant))
    golden = GOLDEN / f"{variant}.service"
    if os.environ.get("JUPYTER_HOP_UPDATE_GOLDEN"):
        golden.write_text(text)
    expected = golden.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(golden), "rendered"))
    assert text == expected, diff


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_verify_has_empty_stderr(variant: str) -> None:
    # The real interpreter: verify checks that ExecStart's program exists and is executable.
    spec = _spec(variant, python=sys.executable)
    result = verify(unit_file.render(spec), spec.unit)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_verify_catches_a_typo() -> None:
    """Guard for the check above: verify reports unknown keys on stderr while still exiting 0."""
    spec = _spec("default", python=sys.executable)
    result = verify(unit_file.render(spec).replace("KillMode=", "KilMode="), spec.unit)
    assert "Unknown key 'KilMode'" in result.stderr


def test_template_variables_are_the_spec_fields() -> None:
    import jinja2.meta

    from jupyter_hop import templates

    env = templates.environment()
    source = (templates.template_root() / unit_file.TEMPLATE).read_text()
    used = jinja2.meta.find_undeclared_variables(env.parse(source))
    assert used == set(unit_file.UnitSpec._fields)


# --- no value can add a line, a directive or a section -------------------------------------------------------

SECTIONS = ["[Unit]", "[Service]", "[Install]"]


def _decode_quoted(word: str) -> str:
    """Read back one double-quoted word the way systemd does for our escapes (\\\\, \\", %%)."""
    assert word.startswith('"') and word.endswith('"') and len(word) >= 2, word
    out, i, inner = [], 0, word[1:-1]
    while i < len(inner):
        c = inner[i]
        if c == "\\":
            assert inner[i + 1] in '\\"', f"unexpected escape in {word!r}"
            out.append(inner[i + 1])
            i += 2
        elif c == "%":
            assert inner[i + 1] == "%", f"a specifier in {word!r}"
            out.append("%")
            i += 2
        elif c == '"':
            raise AssertionError(f"unescaped quote in {word!r}")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _decode_exec(word: str) -> str:
    """An Exec line word: quoted like any other, and `$` doubled (systemd expands $VAR there)."""
    text = _decode_quoted(word)
    assert re.fullmatch(r"(?:[^$]|\$\$)*", text), f"a variable in {word!r}"
    return text.replace("$$", "$")


def _decode_path(text: str, home: str) -> str:
    if text.startswith("%h"):
        text = home.replace("%", "%%") + text[2:]
    assert re.fullmatch(r"(?:[^%]|%%)*", text), f"a specifier in {text!r}"
    return text.replace("%%", "%")


def check_structure(text: str, spec: unit_file.UnitSpec) -> None:
    """Every line is a comment, blank, one of our sections or one of our directives, each value reading back
    exactly as given."""
    sections, envs = [], []
    directives: dict[str, int] = {}
    for line in text.split("\n"):  # systemd splits lines on \n only (\r is refused by the filter)
        assert not line.endswith("\\"), f"a continued line: {line!r}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append(line)
            continue
        key, _, value = line.partition("=")
        assert re.fullmatch(r"[A-Za-z]+", key), line
        directives[key] = directives.get(key, 0) + 1
        if key == "Environment" and value != "JUPYTER_HOP_UNIT=%n":
            envs.append(_decode_quoted(value))
        if key == "WorkingDirectory":
            assert _decode_path(value, spec.home) == spec.working_dir
        if key == "StandardOutput":
            assert _decode_path(value.removeprefix("append:"), spec.home) == spec.log_file
        if key == "ExecStart":
            words = re.findall(r'"(?:[^"\\]|\\.)*"|[^\s"]+', value)
            assert " ".join(words) == value, value
            assert words[1:4] == ["-m", "jupyter_hop", "run"], value
            assert _decode_quoted(words[4]) == spec.profile
            assert [_decode_exec(word) for word in words[5:]] == list(spec.run_args), value
    assert sections == SECTIONS
    expected_env = [f"XDG_CONFIG_HOME={spec.config_home}", f"XDG_STATE_HOME={spec.state_home}"]
    expected_env += [f"{k}={v}" for k, v in sorted(spec.environment.items())]
    assert envs == expected_env
    assert all(n == 1 for k, n in directives.items() if k != "Environment"), directives
    assert directives["Environment"] == 1 + len(expected_env)
    assert set(directives) <= {
        "Description", "Type", "NotifyAccess", "ExecStart", "WorkingDirectory", "Environment", "StandardOutput",
        "StandardError", "Restart", "RestartSec", "TimeoutStartSec", "KillMode", "TimeoutStopSec", "MemoryMax",
        "CPUQuota", "NoNewPrivileges", "PrivateUsers", "PrivateTmp", "WantedBy", "StartLimitIntervalSec",
        "StartLimitBurst",
    }


nasty_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["%n", "%%", "a\nExecStartPre=/bin/sh", "x\r[Install]", '"', "\\", "$HOME", "${X}", "\\\n", "%", " lead",
     "trail ", "a\x00b", "[Service]", "=", "A=B\nC=D", "100%", "8G\n", "1;2"]
)


FIELDS = ("name", "env_name", "memory_max", "cpu_quota", "root", "ready_timeout")


@st.composite
def profile_values(draw: st.DrawFn) -> tuple[str, dict[str, object], str]:
    """Mostly valid profiles with up to two fields drawn from anything; environment values always are."""
    odd = draw(st.sets(st.sampled_from(FIELDS), max_size=2))

    def pick(field: str, valid: st.SearchStrategy[str]) -> str:
        return draw(nasty_text if field in odd else valid)

    env_name = st.sampled_from(["A", "OMP_NUM_THREADS", "X_1"])
    environment = draw(st.dictionaries(nasty_text if "env_name" in odd else env_name, nasty_text, max_size=3))
    data = {
        "server": {"ready_timeout": draw(st.integers(-5, 100000) if "ready_timeout" in odd else st.integers(1, 600))},
        "systemd": {
            "environment": environment,
            "memory_max": pick("memory_max", st.sampled_from(["", "8G", "50%", "infinity"])),
            "cpu_quota": pick("cpu_quota", st.sampled_from(["", "200%"])),
        },
    }
    root = pick("root", st.sampled_from(["/home/alice", "/srv/x"]) | nasty_text.map(lambda t: "/home/alice/" + t))
    return pick("name", st.sampled_from(["lab", "x.y_z-1"])), data, root


def render_or_reject(name: str, data: dict[str, object], root: str) -> tuple[str, unit_file.UnitSpec] | None:
    try:
        prof = model.from_dict(name, data)  # type: ignore[arg-type]
        spec = unit_file.spec_for(prof, PATHS, root_dir=Path(root), home=HOME, python=PYTHON,
                                journal=False, private_users=True)
        rendered = unit_file.render(spec), spec
    except HopError as exc:
        assert "\n" not in exc.message
        event("rejected")
        return None
    event("rendered")
    return rendered


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile_values())
def test_values_cannot_inject(values: tuple[str, dict[str, object], str]) -> None:
    out = render_or_reject(*values)
    if out is not None:
        check_structure(*out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nasty_text, st.sampled_from(["0", "9000"]), st.sampled_from([None, "0", "600"]))
def test_overrides_on_the_run_line_cannot_inject(text: str, port: str, idle: str | None) -> None:
    """`install --root-dir WHATEVER`: the unit is refused, or its run line reads back as exactly the overrides."""
    given = overrides.given("server", port=port, root_dir="/home/alice/" + text, idle_timeout=idle)
    try:
        prof = overrides.apply(model.from_dict("lab", {}), given)
        run_args = overrides.run_args(prof, given)
        spec = unit_file.spec_for(prof, PATHS, root_dir=prof.root_path, home=HOME, python=PYTHON, journal=True,
                                  private_users=True, run_args=run_args)
        text = unit_file.render(spec)
    except HopError as exc:
        assert "\n" not in exc.message
        event("rejected")
        return
    event("rendered")
    check_structure(text, spec)
    assert unit_file.run_args_of(text, "lab") == run_args
    assert overrides.parse_run_args(run_args) == {"server": {k: str(getattr(prof.server, k)) for k in given["server"]}}


def test_run_args_of_a_hand_edited_unit() -> None:
    text = unit_file.render(_spec("overrides"))
    assert unit_file.run_args_of(text, "lab") == list(_spec("overrides").run_args)
    assert unit_file.run_args_of(unit_file.render(_spec("default")), "lab") == []
    assert unit_file.run_args_of(text, "other") is None
    assert unit_file.run_args_of(text.replace("ExecStart=", "ExecStart=-"), "lab") is None
    assert unit_file.run_args_of(text.replace('"600"', '"600" "unclosed'), "lab") is None
    assert unit_file.run_args_of(text.replace("ExecStart=", "# ExecStart="), "lab") is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile_values())
def test_values_verify_on_a_sample(values: tuple[str, dict[str, object], str]) -> None:
    name, data, root = values
    try:
        prof = model.from_dict(name, data)  # type: ignore[arg-type]
        spec = unit_file.spec_for(prof, PATHS, root_dir=Path(root), home=HOME, python=sys.executable,
                                journal=False, private_users=True)
        text = unit_file.render(spec)  # refuses what a unit cannot carry (test_values_cannot_inject)
    except HopError:
        return
    result = verify(text, spec.unit)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"systemd": {"environment": {"A": "x\ny"}}}, "systemd.environment.A"),
        ({"systemd": {"environment": {"XDG_CONFIG_HOME": "/x"}}}, "jupyter-hop sets XDG_CONFIG_HOME"),
        ({"systemd": {"environment": {"A B": "x"}}}, "variable names"),
        ({"systemd": {"memory_max": "8G\nExecStartPre=/bin/true"}}, "systemd.memory_max"),
        ({"systemd": {"cpu_quota": "50"}}, "systemd.cpu_quota"),
    ],
)
def test_bad_profile_values_are_rejected(data: dict[str, object], needle: str) -> None:
    with pytest.raises(HopError, match=re.escape(needle)):
        model.from_dict("lab", data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("root", "needle"),
    [
        ("/tmp/nb", "is under /tmp, which the unit cannot see"),
        ("/var/tmp", "is under /var/tmp"),
        ("/home/alice/a\nb", "control character"),
        ("/home/alice/../bob", "absolute, normalised path"),
        ("/home/alice/nb ", "absolute, normalised path"),
        ("/home/alice/nb\\", "ends with a backslash"),
    ],
)
def test_bad_paths_are_rejected(root: str, needle: str) -> None:
    with pytest.raises(HopError, match=re.escape(needle)):
        unit_file.spec_for(model.from_dict("lab", {}), PATHS, root_dir=Path(root), home=HOME, python=PYTHON,
                         journal=True, private_users=True)


def test_systemd_path_filter() -> None:
    assert unit_file.systemd_path("/home/alice", "/home/alice") == "%h"
    assert unit_file.systemd_path("/home/alice/a%b", "/home/alice") == "%h/a%%b"
    assert unit_file.systemd_path("/home/alicex", "/home/alice") == "/home/alicex"
    assert unit_file.systemd_path("/srv/%n", "") == "/srv/%%n"
    with pytest.raises(HopError):
        systemd_settings.unit_path("x", "relative")

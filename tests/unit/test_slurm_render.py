"""The batch script: golden files per variant, bash -n and shellcheck clean, directives, validation, quoting."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2.meta
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_hop import templates
from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.profile import model
from jupyter_hop.slurm import batch

GOLDEN = Path(__file__).parent / "golden" / "slurm"
UPDATE = os.environ.get("JUPYTER_HOP_UPDATE_GOLDEN") == "1"

VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, str], str]] = {
    # name: (profile name, profile data, environment at render time, python)
    "default": ("default", {}, {"HOME": "/home/alice"}, "/home/alice/.venv/bin/python"),
    "gpu": (
        "gpu",
        {
            "slurm": {
                "job_name": "nb-gpu",
                "partition": "gpu",
                "time": "1-12:00",
                "cpus": 8,
                "mem": "64G",
                "gpus": "a100:2",
                "account": "proj.42",
                "qos": "normal",
                "constraint": "a100&ib",
                "signal_grace": 300,
                "setup": [
                    "module purge",
                    "module load cuda/12.2",
                    "source ~/envs/ml/bin/activate",
                    'export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"',
                ],
                "extra_directives": ["--exclusive", "--mail-type=END", "-p gpu-long"],
                "skip_directives": ["--ntasks"],
            }
        },
        {"HOME": "/home/alice", "XDG_CONFIG_HOME": "/home/alice/.config", "XDG_STATE_HOME": "/home/alice/.state"},
        "/opt/conda/envs/hop/bin/python",
    ),
    "site": (
        "site",
        {"slurm": {"gres": "gpu:1", "mem": "4000M", "skip_directives": ["-p", "--mem", "--nodes"],
                   "partition": "short", "setup": ['eval "$(conda shell.bash hook)"', "conda activate hop"]}},
        {"HOME": "/home/alice"},
        "/usr/bin/python3",
    ),
    "weird-paths": (
        "my.nb-1",
        {},
        {"HOME": "/home/al ice", "XDG_STATE_HOME": "/home/al ice/it's 100%; $(touch x)", "XDG_CONFIG_HOME": "/c`id`"},
        "/opt/jupyter hop/v'env/bin/python",
    ),
}


def render_variant(name: str) -> str:
    prof_name, data, env, python = VARIANTS[name]
    prof = model.from_dict(prof_name, data)
    return batch.render(batch.batch_script(prof, Paths.from_env(env), env, python))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_golden(variant: str) -> None:
    text = render_variant(variant)
    path = GOLDEN / f"{variant}.sbatch"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    expected = path.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "rendered"))
    assert text == expected, "rendered script differs from the golden file:\n" + diff


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bash_and_shellcheck_clean(variant: str, tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck is not installed (tests/run.sh installs it)"
    script = tmp_path / "job.sbatch"
    script.write_text(render_variant(variant))
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0 and not syntax.stderr, syntax.stderr
    check = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert check.returncode == 0 and not check.stdout, check.stdout


def test_template_variables_are_the_model_fields() -> None:
    env = templates.environment()
    assert env.loader is not None
    source = env.loader.get_source(env, batch.TEMPLATE)[0]
    used = jinja2.meta.find_undeclared_variables(env.parse(source))
    assert used == set(batch.BatchScript._fields)


def directives(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    env = env or {"HOME": "/home/alice"}
    prof = model.from_dict("p", {"slurm": data})
    text = batch.render(batch.batch_script(prof, Paths.from_env(env), env, "/usr/bin/python3"))
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("#SBATCH ")]


def names(lines: list[str]) -> list[str]:
    return [line.split("=")[0].split(" ")[0] for line in lines]


def test_skip_matches_option_names_not_substrings() -> None:
    base = names(directives({"partition": "debug", "mem": "4G"}))
    assert "--partition" in base and "--cpus-per-task" in base and "--mem" in base
    skipped_p = names(directives({"partition": "debug", "mem": "4G", "skip_directives": ["-p"]}))
    assert "--partition" not in skipped_p and "--cpus-per-task" in skipped_p
    skipped_mem = names(directives({"partition": "debug", "mem": "4G", "skip_directives": ["--mem"]}))
    assert skipped_mem == [n for n in base if n != "--mem"]


def test_extra_directive_replaces_the_generated_one() -> None:
    lines = directives({"partition": "debug", "time": "10", "extra_directives": ["-p gpu", "--time=2:00:00"]})
    assert "--partition=debug" not in lines and "--time=10" not in lines
    assert lines[-2:] == ["-p gpu", "--time=2:00:00"]


def test_output_and_signal() -> None:
    env = {"HOME": "/home/alice", "XDG_STATE_HOME": "/st/100%"}
    lines = directives({"signal_grace": 90}, env)
    assert "--output=/st/100%%/jupyter-hop/jobs/p-%j.log" in lines
    assert "--signal=B:TERM@90" in lines


def test_exports_only_what_was_set() -> None:
    prof = model.from_dict("p", {})
    bare = batch.render(batch.batch_script(prof, Paths.from_env({"HOME": "/h"}), {"HOME": "/h"}, "/usr/bin/python3"))
    assert "export" not in bare
    env = {"HOME": "/h", "XDG_STATE_HOME": "/s"}
    text = batch.render(batch.batch_script(prof, Paths.from_env(env), env, "/usr/bin/python3"))
    assert "export XDG_STATE_HOME=/s\n" in text and "XDG_CONFIG_HOME" not in text


def test_state_dir_with_backslash_is_refused() -> None:
    env = {"HOME": "/h", "XDG_STATE_HOME": "/s\\t"}
    with pytest.raises(HopError, match="backslash"):
        batch.batch_script(model.from_dict("p", {}), Paths.from_env(env), env, "/usr/bin/python3")


def test_relative_python_is_refused() -> None:
    with pytest.raises(HopError, match="not absolute"):
        batch.batch_script(model.from_dict("p", {}), Paths.from_env({"HOME": "/h"}), {"HOME": "/h"}, "python3")


@pytest.mark.parametrize("time", ["30", "30:00", "4:00:00", "1-12", "1-12:30", "1-12:30:15", "100"])
def test_time_forms_accepted(time: str) -> None:
    model.from_dict("p", {"slurm": {"time": time, "signal_grace": 10}})


BAD = [
    ("time", "4h", "slurm.time"),
    ("time", "1:2:3:4", "slurm.time"),
    ("time", "0", "at least one minute"),
    ("mem", "4 G", "slurm.mem"),
    ("mem", "4.5G", "slurm.mem"),
    ("partition", "gpu;rm -rf ~", "slurm.partition"),
    ("job_name", "", "slurm.job_name"),
    ("account", "a b", "slurm.account"),
    ("gpus", "0", "slurm.gpus"),
    ("constraint", "a b", "slurm.constraint"),
    ("signal_grace", 5, "slurm.signal_grace"),
    ("extra_directives", ["--output=/tmp/x"], "slurm.extra_directives"),
    ("extra_directives", ["-o /tmp/x"], "slurm.extra_directives"),
    ("extra_directives", ["--wrap=id"], "slurm.extra_directives"),
    ("extra_directives", ["exclusive"], "slurm.extra_directives"),
    ("extra_directives", ["--comment=a\nb"], "slurm.extra_directives"),
    ("skip_directives", ["--output"], "slurm.skip_directives"),
    ("skip_directives", ["mem"], "slurm.skip_directives"),
    ("setup", ["module load x\nrm -rf ~"], "slurm.setup"),
]


@pytest.mark.parametrize(("key", "value", "named"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_values_are_refused_with_one_line(key: str, value: object, named: str) -> None:
    with pytest.raises(HopError) as info:
        model.from_dict("p", {"slurm": {key: value}})
    message = info.value.message
    assert named in message and "\n" not in message


def test_signal_grace_must_fit_the_time() -> None:
    with pytest.raises(HopError, match="signal_grace"):
        model.from_dict("p", {"slurm": {"time": "1", "signal_grace": 60}})


# ---- values that reach the shell arrive byte for byte, and nothing else runs ----

PROBE = 'printf "%s\\0" "$XDG_CONFIG_HOME" "$XDG_STATE_HOME"'
text_values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


def shell_lines(script: str) -> str:
    """The script's shell lines that carry values (exports and the exec), with exec turned into printf."""
    out = []
    for line in script.splitlines():
        if line.startswith("export "):
            out.append(line)
        elif line.startswith("exec "):
            out.append("printf '%s\\0' " + line[len("exec "):])
    return "\n".join([*out, PROBE]) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=text_values, config=text_values, python=text_values, name=text_values)
def test_values_arrive_byte_for_byte(tmp_path: Path, state: str, config: str, python: str, name: str) -> None:
    env = {"HOME": "/home/alice", "XDG_STATE_HOME": "/" + state, "XDG_CONFIG_HOME": "/" + config}
    python = "/" + python
    try:
        prof = model.from_dict(name, {})
        script = batch.render(batch.batch_script(prof, Paths.from_env(env), env, python))
    except HopError:
        return  # refused: fine, as long as it is refused before anything is written
    sentinel = tmp_path / "ran"
    result = subprocess.run(["bash", "-c", shell_lines(script)], capture_output=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "SENTINEL": str(sentinel)})
    assert result.returncode == 0, result.stderr
    words = result.stdout.split(b"\0")[:-1]
    expected = [python, "-m", "jupyter_hop", "run", name, env["XDG_CONFIG_HOME"], env["XDG_STATE_HOME"]]
    assert words == [w.encode() for w in expected]
    assert not result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@settings(max_examples=150, deadline=None)
@given(value=text_values, key=st.sampled_from(["job_name", "partition", "account", "qos", "mem", "gpus", "gres",
                                               "constraint", "time"]))
def test_directive_values_are_validated_or_verbatim(value: str, key: str) -> None:
    """#SBATCH values: either refused, or on the line as given with nothing sbatch would read specially."""
    try:
        prof = model.from_dict("p", {"slurm": {key: value}})
    except HopError:
        return
    env = {"HOME": "/h"}
    lines = batch.render(batch.batch_script(prof, Paths.from_env(env), env, "/usr/bin/python3")).splitlines()
    option = "--" + key.replace("_", "-")
    found = [line for line in lines if line.startswith(f"#SBATCH {option}=")]
    assert found == [f"#SBATCH {option}={value}"] or (key == "constraint" and found == [f"#SBATCH {option}='{value}'"])
    assert not any(c in value for c in " \t'\"\\#\n$`")

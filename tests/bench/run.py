"""Benchmarks run side by side, interleaved, in one run: prints medians and ratios, never asserts.

Usage: python tests/bench/run.py [--quick] [--reps N] [--only TEXT] [--json FILE]

Each case is timed once per round, all cases in every round, so a machine that gets busier slows every case
alike and the ratios stay fair. A case compares against another (its `against`): the render commands against
`python -c "import typer, jinja2"`, and later `jupyter-hop run` against a bare `jupyter server`.

To add cases without touching this file, put a module `tests/bench/cases_<topic>.py` next to it with a function
`cases(bench: Bench) -> list[Case]`; `timing.time_until_ready` times "start a process, poll a URL until 200".
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Timing, median, time_command

BASELINE = "import typer, jinja2"
TARGETS = {  # case name -> the ratio asked for (issue 11: 1.2x for render and config), printed, never enforced
    "jupyter-hop config": 1.2,
    "jupyter-hop slurm render": 1.2,
    "jupyter-hop systemd render": 1.2,
    "slurm render --time 2:00:00 --gpus 1": 1.2,
    "systemd render --port 9000": 1.2,
    "jupyter-hop run to printed instructions": 1.1,
    "connect until the tunnel answers": 1.05,  # issue 13, against the same steps by hand (cases_connect.py)
}


@dataclass
class Bench:
    """What a case needs: the venv's executables, and a private home with one profile named `bench`."""

    bin_dir: Path
    base: Path
    env: dict[str, str]
    profile: str = "bench"

    @property
    def python(self) -> str:
        return str(self.bin_dir / "python")

    def exe(self, name: str) -> str:
        return str(self.bin_dir / name)

    @property
    def work(self) -> Path:
        return self.base / "work"

    def run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env=self.env, cwd=self.work, input=stdin, capture_output=True, text=True, timeout=120
        )


@dataclass
class Case:
    name: str
    measure: Callable[[], Timing | float | None]  # wall seconds (and CPU), or None when this round failed
    against: str | None = BASELINE  # the case this one is compared with; None: reference only
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failures: int = 0


def make_bench(base: Path) -> Bench:
    bin_dir = Path(sys.executable).parent
    for sub in ("home", "config", "state", "work", "jupyter"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": str(base / "home"),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_STATE_HOME": str(base / "state"),
        "JUPYTER_CONFIG_DIR": str(base / "jupyter"),
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    bench = Bench(bin_dir, base, env)
    made = bench.run(
        [bench.exe("jupyter-hop"), "init", bench.profile, "--password-stdin", "--root-dir", str(bench.work)],
        stdin="bench password\n",
    )
    if made.returncode != 0:
        raise SystemExit(f"cannot create the bench profile: {made.stderr.strip()}")
    return bench


def command_case(bench: Bench, name: str, argv: list[str], against: str | None = BASELINE) -> Case:
    return Case(name, lambda: time_command(argv, bench.env, bench.work), against)


def failure(bench: Bench, argv: list[str]) -> str | None:
    """Why a command does not work (yet: render commands land with their issues), or None when it does."""
    done = bench.run(argv)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


def default_cases(bench: Bench) -> list[Case]:
    hop = bench.exe("jupyter-hop")
    cases = [
        command_case(bench, BASELINE, [bench.python, "-c", BASELINE], against=None),
        command_case(bench, "python -c pass", [bench.python, "-c", "pass"]),
        command_case(bench, "jupyter-hop --help", [hop, "--help"]),
        command_case(bench, "jupyter-hop config", [hop, "config", bench.profile]),
    ]
    # each render plain and with one-off overrides, which must not make it slower to speak of
    renders = [("slurm", []), ("slurm", ["--time", "2:00:00", "--gpus", "1"]),
               ("systemd", []), ("systemd", ["--port", "9000"])]
    for group, options in renders:
        argv = [hop, group, "render", bench.profile, *options]
        # the plain ones keep their names (CI logs compare them over time); these fit the report's column
        name = " ".join([group, "render", *options]) if options else f"jupyter-hop {group} render"
        problem = failure(bench, argv)
        if problem is None:
            cases.append(command_case(bench, name, argv))
        else:
            print(f"(skipping `{name}`: {problem})")
    generate = [bench.exe("jupyter"), "server", "--generate-config", "-y"]
    cases.append(command_case(bench, "jupyter server --generate-config", generate))
    return cases


def plugin_cases(bench: Bench, only: str | None = None) -> list[Case]:
    """Cases from tests/bench/cases_*.py (launch-to-ready, polling delay, submit overhead, ...); with `only`,
    just the modules whose topic (cases_TOPIC.py) it names, so that `--only connect` brings up no other lab."""
    found: list[Case] = []
    for path in sorted(Path(__file__).resolve().parent.glob("cases_*.py")):
        if only is not None and path.stem.removeprefix("cases_") not in only:
            continue
        module = importlib.import_module(path.stem)
        try:
            found.extend(module.cases(bench))
        except Exception as exc:  # a broken plugin must not hide the other figures
            print(f"(skipping {path.name}: {type(exc).__name__}: {exc})")
    return found


def run_rounds(cases: list[Case], reps: int) -> None:
    for _ in range(reps):
        for case in cases:
            try:
                result = case.measure()
            except Exception as exc:  # one broken case must not cost the other figures (or the CI run)
                print(f"  ! {case.name}: {type(exc).__name__}: {str(exc)[-300:]}")
                result = None
            if result is None:
                case.failures += 1
            elif isinstance(result, Timing):
                case.times.append(result.wall)
                case.cpu.append(result.cpu)
            else:
                case.times.append(result)


def report(cases: list[Case]) -> list[dict[str, object]]:
    """Medians, and the ratio to each case's reference, in wall time and (for commands) in CPU time."""
    by_name = {c.name: c for c in cases}
    rows: list[dict[str, object]] = []
    print(f"\n{'case':<42} {'wall ms':>8} {'cpu ms':>7} {'n':>3}  {'wall':>6} {'cpu':>6}  against")
    for case in cases:
        row: dict[str, object] = {"case": case.name, "n": len(case.times), "failures": case.failures}
        rows.append(row)
        if not case.times:
            print(f"{case.name:<42} {'failed':>8}")
            continue
        wall = median(case.times)
        cpu = median(case.cpu) if case.cpu else None
        row.update(median_wall_s=round(wall, 4), median_cpu_s=None if cpu is None else round(cpu, 4))
        ref = by_name.get(case.against) if case.against else None
        wall_ratio = cpu_ratio = ""
        against = "(reference)"
        if ref is not None and ref.times:
            row["against"] = ref.name
            row["ratio_wall"] = round(wall / median(ref.times), 3)
            wall_ratio = f"{row['ratio_wall']:.2f}x"
            if cpu is not None and ref.cpu:
                row["ratio_cpu"] = round(cpu / median(ref.cpu), 3)
                cpu_ratio = f"{row['ratio_cpu']:.2f}x"
            against = ref.name + (f" (target <= {TARGETS[case.name]}x)" if case.name in TARGETS else "")
        cpu_text = f"{cpu * 1000:7.1f}" if cpu is not None else f"{'':7}"
        print(
            f"{case.name:<42} {wall * 1000:8.1f} {cpu_text} {len(case.times):>3}  {wall_ratio:>6} {cpu_ratio:>6}  "
            + against
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, for CI logs")
    parser.add_argument("--reps", type=int, help="rounds (default 15, or 7 with --quick)")
    parser.add_argument("--only", help="only the cases whose name contains TEXT (and what they are compared with); "
                        "of tests/bench/cases_TOPIC.py only those whose TOPIC is in TEXT")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    reps = args.reps or (7 if args.quick else 15)  # 7: medians that 2 noisy rounds cannot move
    # Not under /tmp: a rendered user unit refuses paths there (units get a private /tmp). As root the cases
    # that start servers run as the lab's test user, who must reach the dir: /var/lib is world-searchable.
    parent = Path("/var/lib") if os.getuid() == 0 else Path.home()
    base = Path(tempfile.mkdtemp(prefix="jupyter-hop-bench-", dir=parent))
    try:
        bench = make_bench(base)
        cases = default_cases(bench) + plugin_cases(bench, args.only)
        if args.only:
            chosen = [c for c in cases if args.only in c.name]
            wanted = {c.name for c in chosen} | {c.against for c in chosen if c.against}
            cases = [c for c in cases if c.name in wanted]
        print(
            f"jupyter-hop benchmarks: {reps} interleaved rounds, {os.cpu_count()} CPUs, python {sys.version.split()[0]}"
        )
        run_rounds(cases, reps)
        rows = report(cases)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

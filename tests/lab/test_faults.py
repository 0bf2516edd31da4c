"""Injected faults, run as the test user: a SIGKILLed launcher, a full disk, read-only state, racing writers."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit.hoptree import snapshot
from labkit.launch import hop, init_profile, pid_alive, start_launcher
from labkit.slurmlab import SlurmLab
from labkit.squat import Window
from labkit.user import TestUser

# Faults of issue 7 covered by other test files (not repeated here):
# - server SIGKILLed under a foreground launcher: test_launcher.py::test_server_killed_makes_launcher_fail_with_log_tail
# - SIGKILLed launcher cleaned by `list` / `stop`: test_inventory.py::test_killed_launcher_leaves_a_stale_record_that_
#   list_cleans and ::test_stale_record_in_json_and_stop_of_a_stale_record; for units and jobs:
#   test_inventory_labs.py::test_stale_job_and_unit_records_are_cleaned, ::test_killed_unit_launcher_is_stale_while_
#   systemd_restarts_it
# - read-only config dir for init/password (root, read-only bind mount): test_bad_input.py read-only-* cases
# - server crash under systemd (restart): test_systemd_lab.py::test_unit_lifecycle
# - job killed at the time limit: test_slurm_lab.py::test_time_limit_stops_the_server_cleanly
# (A job cancelled while `slurm submit` waits is here, at the end: no Slurm test had it.)

pytestmark = pytest.mark.lab

NO_SPACE = "No space left on device"


def hop_dir(env: dict[str, str], kind: str) -> Path:
    return Path(env[f"XDG_{kind.upper()}_HOME"]) / "jupyter-hop"


def records(env: dict[str, str]) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted((hop_dir(env, "state") / "records").glob("*.json"))]


def wait_until(predicate, timeout: float = 20, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.02)


def user_processes(user: TestUser, needle: str) -> list[int]:
    """Pids of the user's processes whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid != user.uid:
                continue
            if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(entry.name))
    return found


def no_server_left(user: TestUser, config: str) -> None:
    """Wait until no process of the user runs with `config`; kill any that do, then fail (never leak one)."""
    try:
        wait_until(lambda: not user_processes(user, config), 15, "no server left running")
    except AssertionError:
        for pid in user_processes(user, config):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("jupyter-hop: error:")]


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str, only_line: bool = True) -> str:
    """Non-zero exit, no traceback, exactly one error line naming `needles`; returns that line."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    if only_line:
        assert result.stderr.strip() == lines[0], f"more than the error line on stderr:\n{result.stderr}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# --- a full disk ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, user: TestUser, size: str = "1m") -> Iterator[Path]:
    """A tiny tmpfs at `path` owned by the user, unmounted afterwards (lazily, in case something holds it)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700,uid={user.uid},gid={user.gid}", "hop-fault", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` until not one more byte fits; returns the filler file."""
    filler = directory / "filler"
    with filler.open("ab", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * chunk)
    with filler.open("ab", buffering=0) as handle:
        try:
            handle.write(b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        else:
            raise AssertionError(f"{directory} is not full")
    return filler


@pytest.fixture
def full_config(test_user: TestUser, user_home: dict[str, str]) -> Iterator[dict[str, str]]:
    """user_home whose XDG_CONFIG_HOME is a small tmpfs; the test fills it when it is ready."""
    # Beside user_home's dirs: every directory above them is traversable by the user.
    with small_tmpfs(Path(user_home["WORK_DIR"]).parent / "config-fs", test_user) as mount:
        yield {**user_home, "XDG_CONFIG_HOME": str(mount)}


@pytest.fixture
def full_state(test_user: TestUser, user_home: dict[str, str]) -> Iterator[dict[str, str]]:
    with small_tmpfs(Path(user_home["WORK_DIR"]).parent / "state-fs", test_user) as mount:
        yield {**user_home, "XDG_STATE_HOME": str(mount)}


@pytest.mark.parametrize(
    "args,stdin",
    [
        (["init", "p", "--local-port", "9999", "--app", "lab"], None),
        (["init", "p", "--password-stdin"], "another password\n"),
        (["password", "p", "--password-stdin"], "another password\n"),
        (["init", "q", "--no-password", "--root-dir", "/tmp"], None),
    ],
    ids=["init-update", "init-new-password", "password", "init-new-profile"],
)
def test_disk_full_keeps_old_files(
    test_user: TestUser, full_config: dict[str, str], args: list[str], stdin: str | None
) -> None:
    init_profile(test_user, full_config, "p", "--app", "server")
    base = Path(full_config["XDG_CONFIG_HOME"])
    fill(base)
    before = snapshot(base)
    result = hop(test_user, full_config, *args, stdin=stdin)
    assert_clean_failure(result, NO_SPACE)
    assert snapshot(base) == before, "a file changed although the write failed"
    assert "another password" not in result.stderr


def test_disk_full_run_cannot_write_config(test_user: TestUser, full_config: dict[str, str]) -> None:
    """`run` regenerates the server config; with no space it fails before starting anything."""
    init_profile(test_user, full_config, "p", "--app", "server")
    base = Path(full_config["XDG_CONFIG_HOME"])
    profile = base / "jupyter-hop" / "profiles" / "p.toml"
    # The user edited the profile by hand, so the config must be rewritten by the next run.
    text = profile.read_text()
    assert "\nidle_timeout = 0 " in text
    profile.write_text(text.replace("\nidle_timeout = 0 ", "\nidle_timeout = 3600 ", 1))
    fill(base)
    before = snapshot(base)
    result = hop(test_user, full_config, "run", "p")
    assert_clean_failure(result, NO_SPACE, "jupyter_server_config.py")
    assert snapshot(base) == before
    assert records(full_config) == []


def test_disk_full_run_cannot_write_record(test_user: TestUser, full_state: dict[str, str]) -> None:
    """The record is written once the server answers: a full state dir must stop that server, not orphan it."""
    init_profile(test_user, full_state, "p", "--app", "server")
    state = Path(full_state["XDG_STATE_HOME"])
    filler = fill(state)
    config = str(hop_dir(full_state, "config") / "servers" / "p" / "jupyter_server_config.py")
    result = hop(test_user, full_state, "run", "p", timeout=90)
    assert_clean_failure(result, NO_SPACE, "records", only_line=False)
    # Empty dirs and the lock file need no data blocks, so they may appear; no record, no temp file.
    left = {str(p.relative_to(state)) for p in state.rglob("*")} - {"jupyter-hop", "jupyter-hop/records"}
    assert left <= {filler.name, "jupyter-hop/records/.lock"}, left
    no_server_left(test_user, config)


def test_disk_full_slurm_submit(test_user: TestUser, full_state: dict[str, str], slurm_lab: SlurmLab) -> None:
    """The batch script is written to the state dir before sbatch: no space means a clear error and no job."""
    env = {**full_state, **slurm_lab.env()}
    init_profile(test_user, env, "p", "--app", "server")
    state = Path(env["XDG_STATE_HOME"])
    filler = fill(state)
    result = hop(test_user, env, "slurm", "submit", "p", timeout=120)
    queued = slurm_lab.run("squeue", "-h", "-o", "%i|%o").stdout.splitlines()
    ours = [line.split("|")[0] for line in queued if str(state) in line]
    if ours:
        slurm_lab.run("scancel", *ours)
    assert ours == [], "a job was submitted although its script could not be written"
    assert_clean_failure(result, NO_SPACE, "p.sbatch")
    left = {str(p.relative_to(state)) for p in state.rglob("*") if p.is_file()}
    assert left == {filler.name}, left


@pytest.mark.parametrize("mode", ["token", "password"])
def test_disk_full_runtime_dir(test_user: TestUser, user_home: dict[str, str], mode: str) -> None:
    """A full node-local runtime dir: our token file (token mode) or Jupyter's own files (password mode) cannot
    be written; either way a clear error, nothing left running, no runtime dir left behind."""
    init_profile(test_user, user_home, "p", "--app", "server", password=None if mode == "token" else "pw-s3cret")
    config = str(hop_dir(user_home, "config") / "servers" / "p" / "jupyter_server_config.py")
    with small_tmpfs(Path(user_home["WORK_DIR"]).parent / "runtime-fs", test_user, size="64k") as runtime:
        filler = fill(runtime)
        result = hop(test_user, {**user_home, "XDG_RUNTIME_DIR": str(runtime)}, "run", "p", timeout=120)
        if mode == "token":
            assert_clean_failure(result, NO_SPACE, "token")
        else:  # the server's own log tail follows the one error line and may hold its traceback
            assert result.returncode != 0
            [line] = error_lines(result.stderr)
            assert "before it was ready" in line, result.stderr
        no_server_left(test_user, config)
        left = sorted(str(p.relative_to(runtime)) for p in runtime.rglob("*"))
        assert left in ([filler.name], sorted([filler.name, "jupyter-hop"])), left
    assert records(user_home) == []


def read_only_prefix(target: Path) -> list[str]:
    """argv prefix: run in a private mount namespace where `target` is a read-only bind mount."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(target)]


def run_with_prefix(
    user: TestUser, env: dict[str, str], prefix: list[str], *args: str
) -> subprocess.CompletedProcess[str]:
    argv = [*prefix, *user.argv(["jupyter-hop", *args], env)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd=str(user.home))


@pytest.mark.parametrize("used", [False, True], ids=["fresh", "used"])
def test_read_only_state_dir_run(test_user: TestUser, user_home: dict[str, str], used: bool) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    state = Path(user_home["XDG_STATE_HOME"])
    if used:  # an earlier run left the records dir and its lock file
        made = test_user.run(["sh", "-c", 'umask 077 && mkdir -p "$1" && : > "$1/.lock"', "sh",
                              str(hop_dir(user_home, "state") / "records")])
        assert made.returncode == 0, made.stderr
    before = snapshot(state)
    config = str(hop_dir(user_home, "config") / "servers" / "p" / "jupyter_server_config.py")
    result = run_with_prefix(test_user, user_home, read_only_prefix(state), "run", "p")
    assert_clean_failure(result, "Read-only file system", "records", only_line=False)
    assert snapshot(state) == before
    no_server_left(test_user, config)


def test_unwritable_state_dir_run(test_user: TestUser, user_home: dict[str, str]) -> None:
    """A state dir the user cannot write to (0500): checked as the user, whom the mode binds (root it does not)."""
    init_profile(test_user, user_home, "p", "--app", "server")
    state = Path(user_home["XDG_STATE_HOME"])
    state.chmod(0o500)
    try:
        config = str(hop_dir(user_home, "config") / "servers" / "p" / "jupyter_server_config.py")
        result = hop(test_user, user_home, "run", "p", timeout=90)
        assert_clean_failure(result, "Permission denied", str(state), only_line=False)
        assert list(state.iterdir()) == []
        no_server_left(test_user, config)
    finally:
        state.chmod(0o700)


def test_own_dirs_made_0500_are_made_private_again(test_user: TestUser, user_home: dict[str, str]) -> None:
    """0500 on jupyter-hop's own dirs: private_dir restores 0700 (the user owns them), so init still works."""
    init_profile(test_user, user_home, "p", "--app", "server")
    profile = hop_dir(user_home, "config") / "profiles" / "p.toml"
    dirs = [profile.parent, hop_dir(user_home, "config") / "servers" / "p"]
    for directory in dirs:
        directory.chmod(0o500)
    try:
        result = hop(test_user, user_home, "init", "p", "--local-port", "9999")
        assert result.returncode == 0, result.stderr
        assert [oct(d.stat().st_mode & 0o777) for d in dirs] == ["0o700", "0o700"]
        assert "local_port = 9999 " in profile.read_text()
    finally:
        for directory in dirs:
            directory.chmod(0o700)


@pytest.mark.parametrize("command", ["init", "password"])
def test_unwritable_config_home(test_user: TestUser, user_home: dict[str, str], command: str) -> None:
    """XDG_CONFIG_HOME itself 0500 (not jupyter-hop's to repair): a clear error and nothing created."""
    config = Path(user_home["XDG_CONFIG_HOME"])
    config.chmod(0o500)
    try:
        if command == "init":
            result = hop(test_user, user_home, "init", "q", "--no-password", "--root-dir", user_home["WORK_DIR"])
            assert_clean_failure(result, "Permission denied", str(config / "jupyter-hop"))
        else:
            result = hop(test_user, user_home, "password", "q", "--password-stdin", stdin="some password\n")
            assert_clean_failure(result, "'q'")  # no such profile: nothing to change
        assert list(config.iterdir()) == []
    finally:
        config.chmod(0o700)


# --- a SIGKILLed launcher -----------------------------------------------------------------------------------


def test_sigkilled_launcher_record_and_orphan_cleaned_by_next_run(
    test_user: TestUser, user_home: dict[str, str]
) -> None:
    """`run` of the same profile finds the stale record, says so, removes it and stops the orphaned server.

    `jupyter hop list` and `stop` do the same: tests/lab/test_inventory.py (stale record tests).
    """
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    second = None
    try:
        launcher.wait_ready()
        (stale,) = records(user_home)
        server_pid = int(stale["server_pid"])  # type: ignore[call-overload]
        # The server dies with its launcher (PR_SET_PDEATHSIG: test_sigkilled_launcher_takes_its_server_along);
        # one that cannot act on that signal yet (stopped here) is an orphan the next run must still find.
        os.kill(server_pid, signal.SIGSTOP)
        os.kill(launcher.process.pid, signal.SIGKILL)
        launcher.wait()
        assert pid_alive(server_pid)
        assert [r["pid"] for r in records(user_home)] == [launcher.process.pid]
        second = start_launcher(test_user, user_home, "p")
        second.wait_ready()
        assert [r["pid"] for r in records(user_home)] == [second.process.pid]
        notes = [line for line in second.err.splitlines() if "was stale" in line]
        assert notes == [
            f"jupyter-hop: {stale['host']}-{launcher.process.pid} was stale (launcher pid {launcher.process.pid} "
            f"is gone): record removed; its orphaned server (pid {server_pid}) sent SIGTERM"
        ], second.err
        os.kill(server_pid, signal.SIGCONT)
        wait_until(lambda: not pid_alive(server_pid), 20, "the orphaned server stops")
    finally:
        launcher.stop()
        if second:
            second.stop()
        # Never leak a server, even when the test failed (killed only if it is still this profile's server).
        config = str(hop_dir(user_home, "config") / "servers" / "p" / "jupyter_server_config.py")
        for pid in user_processes(test_user, config):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- the server never outlives its launcher -----------------------------------------------------------------


def server_config(env: dict[str, str]) -> str:
    return str(hop_dir(env, "config") / "servers" / "p" / "jupyter_server_config.py")


def gone_within(user: TestUser, config: str, seconds: float = 2.0) -> float:
    """Seconds until no process of the user runs with `config` (the issue's bound: 2 s); past it, they are
    killed and the test fails."""
    began = time.monotonic()
    try:
        wait_until(lambda: not user_processes(user, config), seconds, f"no server left within {seconds} s")
    except AssertionError:
        for pid in user_processes(user, config):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    return time.monotonic() - began


def test_sigkilled_launcher_takes_its_server_along(test_user: TestUser, user_home: dict[str, str]) -> None:
    """SIGKILL leaves the launcher no chance to stop its server: the kernel's parent-death signal (SIGTERM)
    does, and the server stops cleanly by itself."""
    init_profile(test_user, user_home, "p", "--app", "server")
    config = server_config(user_home)
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        [server_pid] = user_processes(test_user, config)
        assert [int(r["server_pid"]) for r in records(user_home)] == [server_pid]  # type: ignore[call-overload]
        os.kill(launcher.process.pid, signal.SIGKILL)
        launcher.wait()
        took = gone_within(test_user, config)
    finally:
        launcher.stop()
    print(f"\nlauncher SIGKILLed: its server gone {took:.2f} s later")


@pytest.mark.parametrize("how", ["pipe-closed-by-test", "shell-pipe-to-true"])
def test_closed_stdout_stops_the_server(test_user: TestUser, user_home: dict[str, str], how: str) -> None:
    """Nobody reads the instructions (the reader of stdout is gone before they are printed): one line of error,
    the server stopped, no record. (`run | head -1` is not this fault: head reads the instructions, which are
    one write, and exits; the launcher serves on, and Ctrl-C stops both.)"""
    init_profile(test_user, user_home, "p", "--app", "server")
    config = server_config(user_home)
    if how == "pipe-closed-by-test":
        proc = test_user.popen(["jupyter-hop", "run", "p"], user_home, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.close()  # long before the server can be ready
        proc.stdout = None
        _, err = proc.communicate(timeout=90)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    else:
        result = test_user.run(["bash", "-c", "set -o pipefail; jupyter-hop run p | true"], user_home, timeout=90)
    took = gone_within(test_user, config)
    line = assert_clean_failure(result, "cannot print the instructions", "Broken pipe", only_line=False)
    assert line.endswith("the server was stopped"), line
    assert "Exception ignored" not in result.stderr, result.stderr
    assert records(user_home) == []
    print(f"\n{how}: {line!r}; no server {took:.2f} s after the launcher exited")


@contextlib.contextmanager
def record_fault(kind: str, records_dir: Path, user: TestUser) -> Iterator[str]:
    """A real fault on the records dir, mounted over it while the launcher runs; yields the error it causes."""
    if kind == "full":
        with small_tmpfs(records_dir, user, size="64k") as mount:
            fill(mount)
            yield NO_SPACE
        return
    subprocess.run(["mount", "--bind", str(records_dir), str(records_dir)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(records_dir)], check=True)
        yield "Read-only file system"
    finally:
        subprocess.run(["umount", "-l", str(records_dir)], check=False)


@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_record_write_fails_after_the_server_started(test_user: TestUser, user_home: dict[str, str], kind: str) -> None:
    """The record is written only once the server answers; the fault is injected while the real server is held
    after its start (lab/squat.py's window), so the write fails with the child running for certain.

    ENOLCK and EIO, the NFS faults of the issue, cannot be produced on this machine (no NFS client in the kernel,
    no device-mapper, no fault injection; a loop device over a full backing file reports ENOSPC, not EIO). These
    are real faults of the same moment and the same path: run() stops the child in a `finally`, whatever the
    errno."""
    init_profile(test_user, user_home, "p", "--app", "server")
    config = server_config(user_home)
    records_dir = hop_dir(user_home, "state") / "records"
    made = test_user.run(["sh", "-c", 'umask 077 && mkdir -p "$1"', "sh", str(records_dir)])
    assert made.returncode == 0, made.stderr
    window = Window(Path(user_home["WORK_DIR"]).parent / "window")
    launcher = start_launcher(test_user, {**user_home, **window.env}, "p")
    try:
        window.wait_held(launcher.process)
        with record_fault(kind, records_dir, test_user) as expected:
            window.release()
            code = launcher.wait(timeout=60)
            took = gone_within(test_user, config)
            assert list(records_dir.glob("*.json")) == []
    finally:
        window.release()
        launcher.stop()
    result = subprocess.CompletedProcess([], code, launcher.out, launcher.err)
    line = assert_clean_failure(result, expected, str(records_dir), only_line=False)
    assert launcher.out == "", "instructions printed for a server without a record"
    print(f"\nrecord write {kind}: {line!r}; no server {took:.2f} s after the launcher exited")


# --- racing writers -----------------------------------------------------------------------------------------

ROUNDS = 25


def check_consistent(env: dict[str, str], name: str, passwords: tuple[str, str]) -> str:
    """Profile, password hash and config load, agree with each other, and the hash is one of the two passwords."""
    import tomllib

    from jupyter_hop.paths import Paths
    from jupyter_hop.profile import store
    from jupyter_hop.server import password as pw
    from jupyter_hop.server import serverconfig

    paths = Paths.from_env(env)
    tomllib.loads(paths.profile_file(name).read_text())
    profile = store.load(paths, name)
    hashed = serverconfig.read_hash(paths, name)
    assert hashed is not None
    config = paths.server_config(name).read_text()
    compile(config, str(paths.server_config(name)), "exec")
    assert config == serverconfig.render(profile, hashed, serverconfig.resolved_root(profile)), (
        "the server config does not match the profile and password file next to it"
    )
    matches = [p for p in passwords if pw.verify(hashed, p)]
    assert len(matches) == 1, "the hash verifies with neither password"
    return matches[0]


def race(
    user: TestUser, env: dict[str, str], commands: list[tuple[list[str], str]]
) -> list[subprocess.CompletedProcess[str]]:
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    procs = [user.popen(["jupyter-hop", *args], env, **pipes) for args, _ in commands]
    # Hand both their input only once both are up, so their writes land close together.
    for proc, (_, stdin) in zip(procs, commands, strict=True):
        assert proc.stdin is not None
        proc.stdin.write(stdin)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.stdin = None  # so communicate() does not flush the closed pipe
    results = []
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (args, _), (out, err) in zip(procs, commands, outs, strict=True):
        results.append(subprocess.CompletedProcess(args, p.returncode, out, err))
    return results


def test_two_inits_race(test_user: TestUser, user_home: dict[str, str]) -> None:
    passwords = ("first-Pw-1", "second-Pw-2")
    work = user_home["WORK_DIR"]
    winners = set()
    for round_ in range(ROUNDS):
        name = f"r{round_}"
        init_profile(test_user, user_home, name, "--app", "server")
        results = race(test_user, user_home, [
            (["init", name, "--password-stdin", "--root-dir", work, "--app", "lab", "--local-port", "9001"],
             passwords[0] + "\n"),
            (["init", name, "--password-stdin", "--root-dir", "/tmp", "--port", "0", "--local-port", "9002"],
             passwords[1] + "\n"),
        ])
        for result in results:
            assert result.returncode == 0, result.stderr
        winners.add(check_consistent(user_home, name, passwords))
    print(f"{ROUNDS} init races, final password from: {sorted(winners)}")


def test_two_passwords_race(test_user: TestUser, user_home: dict[str, str]) -> None:
    passwords = ("first-Pw-1", "second-Pw-2")
    init_profile(test_user, user_home, "p", "--app", "server")
    winners = set()
    for _ in range(ROUNDS):
        results = race(test_user, user_home, [
            (["password", "p", "--password-stdin"], passwords[0] + "\n"),
            (["password", "p", "--password-stdin"], passwords[1] + "\n"),
        ])
        for result in results:
            assert result.returncode == 0, result.stderr
        winners.add(check_consistent(user_home, "p", passwords))
    print(f"{ROUNDS} password races, final password from: {sorted(winners)}")


# --- torn and foreign records ---------------------------------------------------------------------------------

GOOD_RECORD = {
    "kind": "run", "profile": "p", "host": "elsewhere", "bind": "localhost", "address": "127.0.0.1", "port": 1,
    "sock": "", "base_url": "/", "app": "server", "pid": 1, "server_pid": 2, "started": 1.0, "local_port": 8888,
}
BAD_RECORDS = {
    "run-torn-1.json": '{"kind": "run", "profile": "p", "ho',
    "run-empty-2.json": "",
    "run-list-3.json": "[1, 2, 3]",
    "run-missing-4.json": '{"kind": "run"}',
    "unit-binary.json": "\udcff\x00garbage",
    "run-types-5.json": json.dumps({**GOOD_RECORD, "pid": "abc", "port": "x", "started": "soon", "host": 7}),
    "job-types.json": json.dumps({**GOOD_RECORD, "kind": "job", "job_id": 12, "job_end": "never"}),
    "run-kind-6.json": json.dumps({**GOOD_RECORD, "kind": "daemon"}),
}


def test_torn_and_foreign_records_do_not_break_commands(test_user: TestUser, user_home: dict[str, str]) -> None:
    """Records are read by every command; a torn or foreign file must never become a traceback."""
    init_profile(test_user, user_home, "p", "--app", "server")
    directory = hop_dir(user_home, "state") / "records"
    made = test_user.run(["sh", "-c", 'umask 077 && mkdir -p "$1"', "sh", str(directory)])
    assert made.returncode == 0, made.stderr
    for name, text in BAD_RECORDS.items():
        (directory / name).write_bytes(text.encode("utf-8", "surrogateescape"))
        os.chown(directory / name, test_user.uid, test_user.gid)
        (directory / name).chmod(0o600)
    for args in (["list"], ["list", "--json"], ["stop", "nothing"], ["instructions", "nothing"], ["doctor"]):
        result = hop(test_user, user_home, *args)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert result.returncode in (0, 1), (args, result.returncode, result.stderr)
        assert len(error_lines(result.stderr)) <= 1, result.stderr
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        assert "Traceback" not in launcher.err
    finally:
        launcher.stop()
    assert launcher.process.returncode == 0, launcher.err
    assert "Traceback" not in launcher.err


# --- a job cancelled while `slurm submit` waits -----------------------------------------------------------------


@pytest.mark.parametrize("when", ["pending", "starting"])
def test_job_cancelled_while_submit_waits(test_user: TestUser, user_home: dict[str, str], slurm_lab: SlurmLab,
                                          when: str) -> None:
    """scancel by someone else while submit waits: submit exits non-zero at once, naming the job and its state."""
    env = {**user_home, **slurm_lab.env()}
    init_profile(test_user, env, "c", "--app", "server")
    profile = hop_dir(env, "config") / "profiles" / "c.toml"
    text = profile.read_text()
    key, value = ("extra_directives = []", 'extra_directives = ["--begin=now+3600"]') if when == "pending" else (
        "setup = []", 'setup = ["sleep 300"]')
    assert key in text
    profile.write_text(text.replace(key, value, 1))
    proc = test_user.popen(["jupyter-hop", "slurm", "submit", "c"], env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    job_id = submitted = ""
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "Submitted Slurm job" in first, first
        job_id = submitted = first.split("Submitted Slurm job", 1)[1].split()[0].strip(".;,")
        state = "PENDING" if when == "pending" else "RUNNING"
        wait_until(lambda: slurm_lab.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip() == state, 30,
                   f"job {job_id} {state}")
        began = time.monotonic()
        assert slurm_lab.run("scancel", job_id).returncode == 0
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - began
        job_id = ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if job_id:
            slurm_lab.run("scancel", job_id)
    assert proc.returncode != 0
    assert "Traceback" not in err
    [line] = error_lines(err)
    assert f"Slurm job {submitted} ended (" in line, err
    assert "before the Jupyter server was ready" in line, err
    # A running job may still be COMPLETING when submit looks; the job log's tail that follows says CANCELLED.
    assert "CANCELLED" in err, err
    assert took < 15, took
    print(f"\njob cancelled while {when}: submit exited {took:.2f} s after scancel: {line}")

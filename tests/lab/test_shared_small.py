"""Sharing a node, the smaller gaps: sd_notify only as our unit, no --debug in the server's environment, and a
/tmp/jupyter-hop-UID that another user made first does not block a launch (real launcher, real server)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit.launch import Launcher, init_profile
from labkit.user import TestUser

from jupyter_hop.server import probe

pytestmark = pytest.mark.lab


def start(user: TestUser, env: dict[str, str], *args: str) -> Launcher:
    """`jupyter-hop ARGS` as the user, its output in files (like lab.launch.start_launcher, with any args)."""
    directory = Path(tempfile.mkdtemp(prefix="launcher-"))
    out_path, err_path = directory / "out", directory / "err"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(user.argv(["jupyter-hop", *args], env), stdout=out, stderr=err, text=True,
                                   cwd=str(user.home), start_new_session=True)
    return Launcher(process, out_path, err_path)


def only_record(env: dict[str, str]) -> dict[str, object]:
    files = list((Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())  # type: ignore[no-any-return]


def environ(pid: object) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def stop(launcher: Launcher) -> None:
    launcher.signal(signal.SIGTERM)
    assert launcher.wait() == 0, launcher.err


# --- sd_notify ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def notify_socket(directory: Path) -> Iterator[socket.socket]:
    """A real datagram socket the test user may send to, as systemd's NOTIFY_SOCKET is."""
    path = directory / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        path.chmod(0o777)
        sock.setblocking(False)
        try:
            yield sock
        finally:
            path.unlink()


def received(sock: socket.socket) -> list[str]:
    """Every datagram sent so far: a Unix datagram is in our queue once send() returned, so none is late."""
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(sock.recv(65536).decode())
    return messages


@pytest.mark.parametrize("as_unit", [False, True], ids=["inherited-socket", "as-the-unit"])
def test_sd_notify_only_when_running_as_the_unit(test_user: TestUser, user_home: dict[str, str], as_unit: bool) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    with notify_socket(Path(user_home["WORK_DIR"]).parent) as sock:
        env = {**user_home, "NOTIFY_SOCKET": sock.getsockname()}
        if as_unit:
            env["JUPYTER_HOP_UNIT"] = "jupyter-hop-p.service"
        launcher = start(test_user, env, "run", "p")
        try:
            launcher.wait_ready()
            assert "NOTIFY_SOCKET" not in environ(only_record(user_home)["server_pid"])
            stop(launcher)
        finally:
            launcher.stop()
        messages = received(sock)
    if as_unit:
        assert [m.splitlines()[0] for m in messages] == ["READY=1", "STOPPING=1"], messages
    else:
        assert messages == [], "a launcher that is not the unit told an inherited NOTIFY_SOCKET"
    print(f"datagrams received with JUPYTER_HOP_UNIT {'set' if as_unit else 'unset'}: {len(messages)}")


# --- --debug ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_does_not_reach_the_server(test_user: TestUser, user_home: dict[str, str], how: str) -> None:
    """--debug sets JUPYTER_HOP_DEBUG in the launcher; the server (and so its kernels) must not inherit it."""
    init_profile(test_user, user_home, "p", "--app", "server")
    env = {**user_home, "HOP_MARKER": "passed-through"}
    args = ["--debug", "run", "p"] if how == "flag" else ["run", "p"]
    if how == "environment":
        env["JUPYTER_HOP_DEBUG"] = "1"
    launcher = start(test_user, env, *args)
    try:
        launcher.wait_ready()
        child = environ(only_record(user_home)["server_pid"])
        assert child.get("HOP_MARKER") == "passed-through", "not the server's environment"
        assert "JUPYTER_HOP_DEBUG" not in child
        stop(launcher)
    finally:
        launcher.stop()


# --- a squatted /tmp/jupyter-hop-UID ----------------------------------------------------------------------


@contextlib.contextmanager
def squatted(user: TestUser, other: TestUser, shape: str) -> Iterator[Path]:
    """/tmp/jupyter-hop-UID made first by the other user, as a 0777 dir, a symlink to its own dir, or a file.

    The test user's own dir (from earlier tests: the lab runs one session at a time) is moved aside and back.
    """
    base = Path(f"/tmp/jupyter-hop-{user.uid}")
    aside = Path(f"/tmp/jupyter-hop-{user.uid}.aside-{os.getpid()}")
    own = Path(f"/tmp/hopother-own-{os.getpid()}")
    for left in Path("/tmp").glob(f"jupyter-hop-{user.uid}.aside-*"):  # a killed run's: put the user's dir back
        pid = left.name.rsplit("-", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _remove(base)
            left.rename(base)
    if base.is_symlink() or base.exists():
        info = base.lstat()
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == user.uid, f"{base} is left over from another test"
        base.rename(aside)
    script = {
        "dir-0777": 'mkdir "$1" && chmod 0777 "$1"',
        "symlink": 'mkdir -m 0777 "$2" && ln -s "$2" "$1"',
        "file": 'echo squatted > "$1"',
    }[shape]
    made = other.run(["sh", "-c", script, "sh", str(base), str(own)], cwd="/tmp")
    assert made.returncode == 0, made.stderr
    try:
        yield base
    finally:
        _remove(base)
        shutil.rmtree(own, ignore_errors=True)
        if aside.exists():
            aside.rename(base)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def shape_of(path: Path) -> tuple[int, int, int, list[str]]:
    """What the other user's entry is and holds (a symlink: where it points and what is there)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        listing = [os.readlink(path), *sorted(os.listdir(path))]
    elif stat.S_ISDIR(info.st_mode):
        listing = sorted(os.listdir(path))
    else:
        listing = [path.read_text()]
    return info.st_mode, info.st_uid, info.st_ino, listing


@pytest.mark.parametrize("bind", ["socket", "localhost"])
@pytest.mark.parametrize("shape", ["dir-0777", "symlink", "file"])
def test_a_squatted_tmp_runtime_dir_does_not_block_a_launch(
    test_user: TestUser, other_user: TestUser, user_home: dict[str, str], shape: str, bind: str
) -> None:
    """Without XDG_RUNTIME_DIR the runtime files go under /tmp; another user got there first. The launch uses a
    fresh 0700 dir of the test user's instead, says so in one warning line, and the server answers."""
    init_profile(test_user, user_home, "p", "--app", "server", "--bind", bind)
    assert "XDG_RUNTIME_DIR" not in test_user.env(user_home)
    with squatted(test_user, other_user, shape) as base:
        before = shape_of(base)
        launcher = start(test_user, user_home, "run", "p")
        try:
            launcher.wait_ready()
            record = only_record(user_home)
            runtime = Path(environ(record["server_pid"])["JUPYTER_RUNTIME_DIR"])
            info = runtime.lstat()
            assert runtime.parent == Path("/tmp") and runtime.name.startswith(f"jupyter-hop-{test_user.uid}-")
            assert stat.S_ISDIR(info.st_mode) and info.st_uid == test_user.uid
            assert stat.S_IMODE(info.st_mode) == 0o700
            assert (runtime / f"jpserver-{record['server_pid']}.json").exists()
            if bind == "socket":
                assert Path(str(record["sock"])).parent == runtime
            assert probe.answers(address=str(record["address"]), port=int(str(record["port"])),
                                 sock=str(record["sock"]), base_url=str(record["base_url"]))
            warnings = [line for line in launcher.err.splitlines() if line.startswith("jupyter-hop: warning:")]
            assert warnings == [
                f"jupyter-hop: warning: {base} is a {shape_word(shape)} of user {other_user.name} "
                f"(uid {other_user.uid}), not a private dir of yours; using {runtime} instead"
            ], launcher.err
            stop(launcher)
        finally:
            launcher.stop()
        assert not runtime.exists(), "the fresh dir is removed with the launch"
        assert shape_of(base) == before, "the other user's entry was changed"
    print(f"{shape}/{bind}: started in {runtime}, warned once")


def shape_word(shape: str) -> str:
    return {"dir-0777": "directory", "symlink": "symlink", "file": "file"}[shape]

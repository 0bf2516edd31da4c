"""User units under a real `systemd --user`: install, start (waits for the server), restart on a crash, stop,
status, logs, uninstall, and the messages when no manager can be reached."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from labkit.http_login import Session
from labkit.launch import port_open
from labkit.systemdlab import UserManager, hop, ok
from labkit.user import TestUser

from jupyter_hop.server import probe

pytestmark = pytest.mark.lab

PASSWORD = "pw-s3cret unit"
# Everything systemd might interpret in an Environment= value; it must reach the launcher unchanged.
NASTY = "a \"b\" \\c %n $HOME ${X} 'q' ;x # y"




def make_profile(manager: UserManager, env: dict[str, str], name: str, *, password: bool = True,
                 root: Path | None = None, environment: str = "") -> Path:
    root = root or Path(env["WORK_DIR"])
    if not root.exists():
        root.mkdir()
        os.chown(root, manager.user.uid, manager.user.gid)
    args = ["init", name, "--root-dir", str(root), "--app", "server"]
    args += ["--password-stdin"] if password else ["--no-password"]
    ok(hop(manager, env, *args, stdin=PASSWORD + "\n" if password else None))
    if environment:
        profile = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / f"{name}.toml"
        with profile.open("a") as handle:
            handle.write(environment)
    return root


def record(env: dict[str, str], name: str) -> dict[str, object] | None:
    path = Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records" / f"unit-{name}@{socket.gethostname()}.json"
    return json.loads(path.read_text()) if path.exists() else None


def answers(rec: dict[str, object]) -> bool:
    return probe.answers(address="127.0.0.1", port=int(rec["port"]), sock="", base_url=str(rec["base_url"]))  # type: ignore[call-overload]


def wait_until(predicate, timeout: float = 60, what: str = "condition") -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"{what} not met within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - start


def show(manager: UserManager, unit: str, *props: str) -> dict[str, str]:
    out = manager.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def run_in_kernel(session: Session, code: str, timeout: float = 60) -> str:
    """Start a kernel through the REST API and run `code` in it over the websocket, as JupyterLab does;
    returns what it printed. Proof that kernels work inside the unit's sandbox."""
    import asyncio
    import uuid

    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    xsrf = session.cookies["_xsrf"]
    status, _, body = session.request("POST", "api/kernels", "{}", {"X-XSRFToken": xsrf,
                                                                     "Content-Type": "application/json"})
    assert status == 201, (status, body)
    kernel = json.loads(body)["id"]
    url = session.base_url.replace("http://", "ws://").rstrip("/") + f"/api/kernels/{kernel}/channels"
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())

    async def talk() -> str:
        request = HTTPRequest(url, headers={"Cookie": cookie, "X-XSRFToken": xsrf}, request_timeout=timeout)
        ws = await websocket_connect(request)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        printed = []
        while True:
            raw = await ws.read_message()
            assert raw is not None, "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            if msg["msg_type"] == "error":
                raise AssertionError(msg["content"])
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                ws.close()
                return "".join(printed)

    return asyncio.run(asyncio.wait_for(talk(), timeout))


def unit_pids(manager: UserManager, unit: str) -> list[int]:
    """Every process in the unit's cgroup (name=systemd v1 or unified), as systemd sees them."""
    cgroup = show(manager, unit, "ControlGroup")["ControlGroup"]
    for hierarchy in ("unified", "systemd", ""):
        procs = Path("/sys/fs/cgroup", hierarchy, cgroup.lstrip("/"), "cgroup.procs")
        if procs.exists() and procs.read_text().strip():
            return [int(pid) for pid in procs.read_text().split()]
    return []


def test_manager_is_real(user_manager: UserManager) -> None:
    result = user_manager.systemctl("show", "--property=Version", "--property=Environment")
    assert result.returncode == 0 and "Version=252" in result.stdout, result.stdout + result.stderr


def test_notify_unit_blocks_start_until_ready(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    """The lab's own check of the mechanism the product relies on: start returns when READY=1 arrives."""
    unit = user_manager.unit_dir / "jupyter-hop-notifycheck.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    script = ("import os,socket,time; time.sleep(1.5); a=os.environ['NOTIFY_SOCKET']; "
              "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.connect(a); s.send(b'READY=1'); time.sleep(60)")
    unit.write_text(f"[Service]\nType=notify\nNotifyAccess=main\nExecStart=/usr/bin/python3 -c \"{script}\"\n")
    os.chown(unit, user_manager.user.uid, user_manager.user.gid)
    assert user_manager.systemctl("daemon-reload").returncode == 0
    began = time.monotonic()
    result = user_manager.systemctl("start", unit.name)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert took >= 1.5, took
    assert show(user_manager, unit.name, "ActiveState")["ActiveState"] == "active"


def test_unit_lifecycle(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    env, name = unit_env, "life"
    unit = f"jupyter-hop-{name}.service"
    root = make_profile(user_manager, env, name, root=Path(env["WORK_DIR"]) / "nb 100% \"x\"",
                        environment=(f"\n[systemd.environment]\nHOP_NASTY = {json.dumps(NASTY)}\n"
                                     # the kernel's IPython profile stays in this test's dir, not in ~
                                     f"IPYTHONDIR = {json.dumps(env['WORK_DIR'] + '/ipython')}\n"))

    installed = hop(user_manager, env, "systemd", "install", name)
    assert f"Installed and enabled: {user_manager.unit_dir / unit}" in ok(installed)
    assert "loginctl enable-linger hoptest" in installed.stderr
    assert show(user_manager, unit, "UnitFileState")["UnitFileState"] == "enabled"
    verify = user_manager.run(["systemd-analyze", "--user", "verify", str(user_manager.unit_dir / unit)])
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr

    # start returns only once the server answers: the first probe right after it must already succeed
    began = time.monotonic()
    started = ok(hop(user_manager, env, "systemd", "start", name))
    start_seconds = time.monotonic() - began
    rec = record(env, name)
    assert rec is not None and answers(rec), "start returned before the server answered"
    assert rec["kind"] == "unit" and rec["unit"] == unit
    assert f"(systemd user unit {unit})" in started and f"Stop it: jupyter hop stop {name}" in started
    assert f"-L 127.0.0.1:8888:127.0.0.1:{rec['port']} " in started

    main_pid = int(show(user_manager, unit, "MainPID")["MainPID"])
    assert main_pid == rec["pid"]
    environ = Path(f"/proc/{main_pid}/environ").read_bytes().split(b"\0")
    assert f"HOP_NASTY={NASTY}".encode() in environ
    assert f"JUPYTER_HOP_UNIT={unit}".encode() in environ
    assert os.readlink(f"/proc/{main_pid}/cwd") == str(root)
    # PrivateTmp= took effect: the unit's /tmp is not ours
    assert os.stat(f"/proc/{main_pid}/root/tmp").st_ino != os.stat("/tmp").st_ino

    base = f"http://127.0.0.1:{rec['port']}{rec['base_url']}"
    session = Session(base)
    assert session.post_login(PASSWORD) == 302
    assert session.request("GET", "api/status")[0] == 200
    # a kernel runs and executes code, with the unit's private /tmp
    printed = run_in_kernel(session, "import os; print(os.getuid(), sorted(os.listdir('/tmp')))")
    assert printed == f"{user_manager.user.uid} []\n", printed

    status = json.loads(ok(hop(user_manager, env, "systemd", "status", name, "--json")))
    assert (status["active_state"], status["sub_state"], status["restarts"]) == ("active", "running", 0)
    assert status["url"] == base and status["since"] and status["main_pid"] == main_pid
    text = ok(hop(user_manager, env, "systemd", "status", name))
    assert text.startswith(f"{unit}: active (running) since ") and base in text

    # a crash: systemd restarts the unit and the new server answers again
    os.kill(int(rec["server_pid"]), signal.SIGKILL)  # type: ignore[call-overload]
    began = time.monotonic()

    def restarted() -> bool:
        new = record(env, name)
        return new is not None and new["server_pid"] != rec["server_pid"] and answers(new)

    wait_until(restarted, 60, "restart after SIGKILL")
    restart_seconds = time.monotonic() - began
    assert show(user_manager, unit, "NRestarts")["NRestarts"] == "1"
    rec = record(env, name)
    assert rec is not None
    assert Session(f"http://127.0.0.1:{rec['port']}{rec['base_url']}").post_login(PASSWORD) == 302

    restarted_out = ok(hop(user_manager, env, "systemd", "restart", name))
    new = record(env, name)
    assert new is not None and new["pid"] != rec["pid"] and answers(new) and "Jupyter is ready" in restarted_out
    rec = new

    # the launcher itself killed: systemd kills the orphaned server too, restarts, and a new record replaces the
    # stale one
    os.kill(int(rec["pid"]), signal.SIGKILL)  # type: ignore[call-overload]

    def replaced() -> bool:
        new = record(env, name)
        return new is not None and new["pid"] != rec["pid"] and answers(new)

    wait_until(replaced, 60, "restart after SIGKILL of the launcher")
    assert not Path(f"/proc/{rec['server_pid']}").exists(), "the old server outlived its launcher"
    assert show(user_manager, unit, "NRestarts")["NRestarts"] == "1"  # a manual restart resets the count
    rec = record(env, name)
    assert rec is not None

    logs = ok(hop(user_manager, env, "systemd", "logs", name, "-n", "400"))
    assert "Jupyter is ready on" in logs and "Jupyter Server" in logs
    hashed = (Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "servers" / name / "password").read_text().strip()
    assert PASSWORD not in logs and hashed not in logs

    # the kernel started above belongs to the previous server; start one in this one so stop has kernels to end
    session = Session(f"http://127.0.0.1:{rec['port']}{rec['base_url']}")
    assert session.post_login(PASSWORD) == 302
    assert run_in_kernel(session, "print('hi')") == "hi\n"
    pids = unit_pids(user_manager, unit)
    assert len(pids) >= 3, pids  # launcher, server, kernel
    ok(hop(user_manager, env, "systemd", "stop", name))
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], "processes outlived the stop"
    assert not port_open("127.0.0.1", int(rec["port"]))  # type: ignore[call-overload]
    assert record(env, name) is None
    assert show(user_manager, unit, "ActiveState")["ActiveState"] == "inactive"

    out = ok(hop(user_manager, env, "systemd", "uninstall", name))
    assert "Uninstalled" in out
    assert not (user_manager.unit_dir / unit).exists()
    assert not (user_manager.unit_dir / "default.target.wants" / unit).exists()
    assert show(user_manager, unit, "LoadState")["LoadState"] == "not-found"
    listed = user_manager.systemctl("list-units", "--all", "--no-legend").stdout
    files = user_manager.systemctl("list-unit-files", "--no-legend").stdout
    assert unit not in listed and unit not in files
    print(f"\nsystemd start {start_seconds:.2f} s, restart after SIGKILL {restart_seconds:.2f} s")


def test_install_now_token_mode_keeps_token_out_of_log(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    env, name = unit_env, "tok"
    make_profile(user_manager, env, name, password=False)
    out = ok(hop(user_manager, env, "systemd", "install", name, "--now"))
    rec = record(env, name)
    assert rec is not None and rec["token"] and answers(rec)
    assert "Jupyter is ready" in out and str(rec["token"]) not in out  # not a terminal: no secret printed
    log = (Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "logs" / f"unit-{name}.log").read_text()
    assert "Jupyter is ready" in log
    assert str(rec["token"]) not in log
    ok(hop(user_manager, env, "systemd", "uninstall", name))
    assert record(env, name) is None


def test_install_never_overwrites_a_different_unit(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    env, name = unit_env, "keep"
    make_profile(user_manager, env, name)
    ok(hop(user_manager, env, "systemd", "install", name))
    path = user_manager.unit_dir / f"jupyter-hop-{name}.service"
    edited = path.read_text() + "# local edit\n"
    path.write_text(edited)
    again = hop(user_manager, env, "systemd", "install", name)
    assert again.returncode == 1
    assert again.stderr.startswith(f"jupyter-hop: error: {path} differs from the unit jupyter-hop would write now")
    assert f"`jupyter hop systemd install {name} --force`" in again.stderr
    assert path.read_text() == edited
    started = hop(user_manager, env, "systemd", "start", name)
    assert ok(started).startswith("Jupyter is ready")
    assert f"jupyter-hop: warning: {path} does not match the profile any more; " in started.stderr
    forced = ok(hop(user_manager, env, "systemd", "install", name, "--force"))
    assert f"It is running with the old unit; apply the new one: jupyter hop systemd restart {name}" in forced
    assert path.read_text() == ok(hop(user_manager, env, "systemd", "render", name))
    again = ok(hop(user_manager, env, "systemd", "install", name))
    assert "Already installed" in again and "Start it now" not in again
    ok(hop(user_manager, env, "systemd", "stop", name))
    assert "Start it now: jupyter hop systemd start keep" in ok(hop(user_manager, env, "systemd", "install", name))


def test_start_of_a_unit_not_installed(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    make_profile(user_manager, unit_env, "none")
    result = hop(user_manager, unit_env, "systemd", "start", "none")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("run `jupyter hop systemd install none`")
    status = ok(hop(user_manager, unit_env, "systemd", "status", "none"))
    assert "not installed" in status
    stopped = hop(user_manager, unit_env, "systemd", "stop", "none")
    assert stopped.returncode == 1
    assert stopped.stderr.startswith("jupyter-hop: error: jupyter-hop-none.service is not installed, so there is")
    assert "Nothing to uninstall" in ok(hop(user_manager, unit_env, "systemd", "uninstall", "none"))


def test_socket_bound_unit(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    """bind = socket under the unit: the socket lives in XDG_RUNTIME_DIR (not the unit's private /tmp), where
    sshd can reach it, and the password login works over it."""
    env, name = unit_env, "sock"
    make_profile(user_manager, env, name)
    ok(hop(user_manager, env, "init", name, "--bind", "socket"))
    out = ok(hop(user_manager, env, "systemd", "install", name, "--now"))
    rec = record(env, name)
    assert rec is not None and str(rec["sock"]).startswith(str(user_manager.runtime_dir) + "/")
    assert f"-L 127.0.0.1:8888:{rec['sock']} " in out
    session = Session(str(rec["base_url"]), str(rec["sock"]))
    assert session.post_login(PASSWORD) == 302
    assert session.request("GET", "api/status")[0] == 200
    ok(hop(user_manager, env, "systemd", "stop", name))
    assert not Path(str(rec["sock"])).exists()


def test_no_manager_reachable(test_user: TestUser, user_home: dict[str, str], tmp_path: Path) -> None:
    """No XDG_RUNTIME_DIR (su, sudo), or no manager behind it: one line saying why and what to do."""
    env = {k: v for k, v in user_home.items() if k.startswith("XDG_")}
    result = test_user.run(["jupyter-hop", "systemd", "status", "x"], env)
    assert result.returncode == 1
    assert result.stderr == (
        "jupyter-hop: error: XDG_RUNTIME_DIR is not set, so systemctl --user cannot find your user manager "
        "(su and sudo do not set it): log in with ssh or on the console, or "
        f"`export XDG_RUNTIME_DIR=/run/user/{test_user.uid}`\n"
    )
    empty = tmp_path / "runtime"
    empty.mkdir(mode=0o700)
    os.chown(empty, test_user.uid, test_user.gid)
    tmp_path.chmod(0o755)
    result = test_user.run(["jupyter-hop", "systemd", "stop", "x"], {**env, "XDG_RUNTIME_DIR": str(empty)})
    assert result.returncode == 1
    assert result.stderr == (
        f"jupyter-hop: error: no systemd user manager runs for hoptest ({empty}/systemd/private does not exist): "
        "log in with ssh or on the console to start one, and `loginctl enable-linger hoptest` to keep it running "
        "after logout\n"
    )
    # a socket file left by a manager that is gone
    (empty / "systemd").mkdir()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(empty / "systemd" / "private"))
    dead.close()
    os.chown(empty / "systemd", test_user.uid, test_user.gid)
    os.chown(empty / "systemd" / "private", test_user.uid, test_user.gid)
    result = test_user.run(["jupyter-hop", "systemd", "uninstall", "x"], {**env, "XDG_RUNTIME_DIR": str(empty)})
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"jupyter-hop: error: systemctl --user cannot reach your user manager through {empty}/systemd/private: "
    ) and result.stderr.count("\n") == 1, result.stderr


def test_unit_without_user_namespaces_still_runs(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    """The variant for machines without user namespaces (no PrivateUsers=): systemd skips PrivateTmp= and the
    server still starts and answers."""
    env, name = unit_env, "nouserns"
    make_profile(user_manager, env, name)
    script = (
        "import sys; from pathlib import Path; from jupyter_hop.systemd import machine, ops, unit; "
        "from jupyter_hop.profile import store; "
        "from jupyter_hop.paths import Paths; p = Paths.from_env(); prof = store.load(p, sys.argv[1]); "
        "spec = machine.build(p, prof); "
        "spec = spec._replace(private_users=False); "
        "path = ops.installed_path(spec.unit); path.write_text(unit.render(spec))"
    )
    ok(user_manager.run(["python", "-c", script, name], env))
    unit = f"jupyter-hop-{name}.service"
    assert "PrivateUsers" not in (user_manager.unit_dir / unit).read_text()
    assert user_manager.systemctl("daemon-reload").returncode == 0
    out = ok(hop(user_manager, env, "systemd", "start", name))
    rec = record(env, name)
    assert rec is not None and answers(rec) and "Jupyter is ready" in out
    assert show(user_manager, unit, "ActiveState")["ActiveState"] == "active"
    ok(hop(user_manager, env, "systemd", "uninstall", name))


def test_failing_unit_is_given_up_and_explained(user_manager: UserManager, unit_env: dict[str, str]) -> None:
    """A unit that cannot start: `start` fails at once with systemd's reason, systemd stops retrying after
    its start limit, `status` says so, and a later `start` is not refused as "repeated too quickly"."""
    env, name = unit_env, "broken"
    root = make_profile(user_manager, env, name, root=Path(env["WORK_DIR"]) / "gone")
    ok(hop(user_manager, env, "systemd", "install", name))
    root.rmdir()  # WorkingDirectory= is missing now: every start fails with 200/CHDIR
    began = time.monotonic()
    failed = hop(user_manager, env, "systemd", "start", name)
    assert failed.returncode == 1 and time.monotonic() - began < 10
    assert failed.stderr.startswith("jupyter-hop: error: jupyter-hop-broken.service did not start: ")
    assert "status=200/CHDIR" in failed.stderr
    unit = f"jupyter-hop-{name}.service"
    wait_until(lambda: show(user_manager, unit, "ActiveState")["ActiveState"] == "failed", 30, "start limit")
    status = ok(hop(user_manager, env, "systemd", "status", name))
    assert status.startswith(f"{unit}: failed (failed)") and "last run ended with: " in status, status
    again = hop(user_manager, env, "systemd", "start", name)
    assert "status=200/CHDIR" in again.stderr and "repeated too quickly" not in again.stderr
    ok(hop(user_manager, env, "systemd", "uninstall", name))
    assert show(user_manager, unit, "LoadState")["LoadState"] == "not-found"

"""`jupyter hop connect WS PROFILE --systemd` from the laptop user, against a real `systemd --user` on the
compute node (reached as a workstation through the login node: `ProxyJump hpc`, one password prompt): the unit
started when it is not running, a verified tunnel, a password login through the URL, Ctrl-C leaving the unit
running and nothing of connect's, `--stop` stopping the unit."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import http_login
from labkit.laptoplab import WORKSTATION, LaptopLab
from labkit.sshlab import COMPUTE, SshLab, free_port
from labkit.systemdlab import UserManager, exclusive, hop, ok, start_manager, stop_manager
from labkit.user import LabError, TestUser, lab_lock
from test_connect_lab import PASSWORD, Connect, ours, sockets

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def user_manager(test_user: TestUser, ssh_lab: SshLab) -> Iterator[UserManager]:
    """systemdlab's manager, but on the compute node: its units listen in that node's network, where the
    workstation's sshd runs (systemdlab's unit_env uses this one in this module)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive())
            with lab_lock():
                manager = start_manager(test_user, netns=COMPUTE)
        except (LabError, OSError, subprocess.SubprocessError) as exc:
            pytest.fail(f"cannot start systemd --user for {test_user.name} on {COMPUTE}: {exc}")
        try:
            yield manager
        finally:
            stop_manager(manager)


@pytest.fixture
def hosts_toml(laptop_lab: LaptopLab) -> Iterator[Path]:
    config = laptop_lab.laptop.home / ".config" / "jupyter-hop"
    config.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (config.parent, config):
        os.chown(path, laptop_lab.laptop.uid, laptop_lab.laptop.gid)
    path = config / "hosts.toml"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def unit_state(manager: UserManager, unit: str) -> str:
    return manager.systemctl("show", "-p", "ActiveState", "--value", unit).stdout.strip()


def test_connect_systemd_starts_the_unit_leaves_it_on_ctrl_c_and_stops_it(
    laptop_lab: LaptopLab, user_manager: UserManager, unit_env: dict[str, str], hosts_toml: Path
) -> None:
    lab, env, name = laptop_lab, unit_env, "cs"
    unit = f"jupyter-hop-{name}.service"
    ok(hop(user_manager, env, "init", name, "--root-dir", env["WORK_DIR"], "--app", "server", "--local-port",
           str(free_port()), "--password-stdin", stdin=PASSWORD + "\n"))
    ok(hop(user_manager, env, "systemd", "install", name))  # installed once on the workstation, not started
    assert unit_state(user_manager, unit) == "inactive"
    # What a workstation's login shell has (sshd without PAM sets no XDG_RUNTIME_DIR), and the venv's jupyter-hop
    variables = [f"{k}={env[k]}" for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR",
                                           "DBUS_SESSION_BUS_ADDRESS")]
    command = shlex.join(["env", *variables, str(lab.remote_user.venv_bin / "jupyter-hop")])
    hosts_toml.write_text(f"[hosts.{WORKSTATION}]\nremote_command = {json.dumps(command)}\n", encoding="utf-8")
    os.chown(hosts_toml, lab.laptop.uid, lab.laptop.gid)

    askpass = lab.askpass("connect-systemd")
    run = Connect(lab, askpass, name, "--systemd", "--no-browser", host=WORKSTATION, start_new_session=True)
    try:
        url = run.wait_ready()
        assert url.startswith("http://127.0.0.1:"), url
        assert f"Jupyter is ready on {COMPUTE} (unit {unit})" in run.out, run.out
        assert unit_state(user_manager, unit) == "active"
        assert http_login.login(url, PASSWORD) == 200
        assert run.interrupt(group=True) == 0, run.stderr()
        said = run.stderr()
        assert f"The unit of profile {name} on {WORKSTATION} keeps running" in said, said
        assert f"`jupyter hop connect --systemd {WORKSTATION} {name}`" in said
        assert f"`jupyter hop connect --systemd --stop {WORKSTATION} {name}`" in said
        assert "Traceback" not in said
        assert ours(lab) == [] and sockets(lab) == []
        assert unit_state(user_manager, unit) == "active"
        assert len(askpass.prompts()) == 1, askpass.prompts()
    finally:
        run.close()

    # a second connect finds it running: the same unit, no restart
    pid = user_manager.systemctl("show", "-p", "MainPID", "--value", unit).stdout.strip()
    again = Connect(lab, lab.askpass("connect-systemd-again"), name, "--systemd", "--no-browser", host=WORKSTATION)
    try:
        url = again.wait_ready()
        assert http_login.login(url, PASSWORD) == 200
        assert user_manager.systemctl("show", "-p", "MainPID", "--value", unit).stdout.strip() == pid
        assert again.interrupt() == 0, again.stderr()
    finally:
        again.close()

    stop = lab.askpass("connect-systemd-stop")
    done = lab.run([str(lab.laptop.venv_bin / "jupyter-hop"), "connect", "--systemd", "--stop", WORKSTATION, name],
                   lab.env(stop), timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"Stopped the unit of profile {name} on {WORKSTATION}." in done.stdout
    assert unit_state(user_manager, unit) == "inactive"
    assert len(stop.prompts()) == 1
    assert ours(lab) == [] and sockets(lab) == []

"""The laptop's ssh foundation for `connect`, against real sshd's: one authentication on a key+password login
node for every command and forward, forwards through it to a compute node, and nothing left behind."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import labkit
import pytest
from labkit.laptoplab import ALIAS, LOGIN_ONLY_COMMAND, WRONG_PASSWORD, Askpass, LaptopLab
from labkit.sshlab import free_port, stop_process
from labkit.user import TestUser

from jupyter_hop.laptop.remote import remote_line

pytestmark = pytest.mark.lab

DRIVER = Path(labkit.__file__).parent / "laptopdriver.py"
# how long the watchdog may take to end the master after its owner was SIGKILLed (measured: well under 0.1 s)
TEARDOWN_BOUND = 5.0


class Driver:
    """jupyter_hop.laptop run as the laptop user (tests/labkit/laptopdriver.py), one step per call."""

    def __init__(self, lab: LaptopLab, askpass: Askpass, host: str = ALIAS) -> None:
        self.lab, self.askpass = lab, askpass
        self.stderr = open(askpass.directory / "driver.err", "w+")  # noqa: SIM115
        python = [str(lab.laptop.venv_bin / "python"), "-u", "-X", "faulthandler"]
        self.proc = lab.popen([*python, str(DRIVER), host], lab.env(askpass),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.pid = self._reply(30)["ready"]

    def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            if self.proc.poll() is None:  # faulthandler prints where it is stuck
                self.proc.send_signal(signal.SIGABRT)
                self.proc.wait(10)
            self.stderr.seek(0)
            raise AssertionError(f"the driver said nothing within {timeout} s (prompts: {self.askpass.prompts()}): "
                                 f"{self.stderr.read()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def __call__(self, op: str, timeout: float = 30, **args: object) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)

    def ok(self, op: str, **args: object) -> dict[str, Any]:
        reply = self(op, **args)
        assert "error" not in reply, reply
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            self("close")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)
        self.stderr.close()


@contextmanager
def driver(lab: LaptopLab, askpass: Askpass, host: str = ALIAS) -> Iterator[Driver]:
    d = Driver(lab, askpass, host)
    try:
        yield d
    finally:
        d.stop()


def processes_of(user: TestUser, needle: str) -> list[str]:
    """Command lines of the user's processes that mention `needle` (our ControlPath dir, or the watchdog)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != user.uid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def assert_nothing_left(lab: LaptopLab, control_path: str) -> None:
    control_dir = str(Path(control_path).parent)
    assert processes_of(lab.laptop, control_dir) == []
    assert processes_of(lab.laptop, "jupyter-hop-ssh-watchdog") == []
    assert not Path(control_path).exists()
    assert not Path(control_dir).exists()


@contextmanager
def http_server(lab: LaptopLab, ns: str, directory: Path, bind: str = "127.0.0.1") -> Iterator[int]:
    """python -m http.server as the cluster user in `ns`, bound on that node's 127.0.0.1 (or `bind`)."""
    proc = lab.ssh.popen_in(ns, ["python3", "-u", "-m", "http.server", "0", "--bind", bind],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(directory))
    try:
        assert proc.stdout is not None
        match = re.search(r"port (\d+)", proc.stdout.readline())
        assert match
        yield int(match.group(1))
    finally:
        stop_process(proc)


@pytest.fixture
def served(laptop_lab: LaptopLab, tmp_path: Path) -> Path:
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    (tmp_path / "hello.txt").write_text("hello through the master\n")
    (tmp_path / "hello.txt").chmod(0o644)
    return tmp_path


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10) as resp:
        return str(resp.read().decode())


def refused(port: int) -> bool:
    try:
        get(port)
    except OSError:
        return True
    return False


def test_one_prompt_for_commands_and_forwards(laptop_lab: LaptopLab, served: Path) -> None:
    askpass = laptop_lab.askpass("one-prompt")
    with driver(laptop_lab, askpass) as d:
        started = time.monotonic()
        login = d.ok("master")
        print(f"\nlogin master up in {time.monotonic() - started:.2f} s; ControlPath {login['control_path']} "
              f"({len(login['control_path'])} bytes)")
        assert askpass.prompts() == [f"{laptop_lab.remote_user.name}@login's password: "]
        # three commands, the last needing the login shell's PATH (not on the plain `sh -c` one)
        assert d.ok("run", line="hostname")["out"] == "login\n"
        assert d.ok("run", line="echo over the master")["out"] == "over the master\n"
        assert d.ok("run", line=LOGIN_ONLY_COMMAND)["rc"] == 127
        assert d.ok("run", line=remote_line([], LOGIN_ONLY_COMMAND))["out"] == "login-shell-ok\n"
        # a compute-node master through the login master: key only there, and no new login-node connection
        node = d.ok("master", target="compute")
        assert d.ok("run", target="compute", line="hostname")["out"] == "compute\n"
        with http_server(laptop_lab, "compute", served) as far, http_server(laptop_lab, "login", served) as near:
            on_node, on_login = free_port(), free_port()
            d.ok("forward", target="compute", local=on_node, remote=f"127.0.0.1:{far}")
            d.ok("forward", local=on_login, remote=f"127.0.0.1:{near}")
            assert d.ok("probe", url=f"http://127.0.0.1:{on_node}/hello.txt")["status"] == 200
            assert get(on_node) == get(on_login) == "hello through the master\n"
            d.ok("cancel", target="compute", local=on_node, remote=f"127.0.0.1:{far}")
            assert refused(on_node)
            d.ok("forward", target="compute", local=on_node, remote=f"127.0.0.1:{far}")  # re-opened
            assert get(on_node) == "hello through the master\n"
            assert "error" in d("cancel", local=on_node, remote=f"127.0.0.1:{far + 1}")  # never opened
            assert d.ok("check")["ok"] and d.ok("check", target="compute")["ok"]
        # a server bound on the node's own address is reached from the login master alone (bind = "node")
        compute = laptop_lab.ssh.addresses["compute"]
        with http_server(laptop_lab, "compute", served, bind=compute) as on_address:
            local = free_port()
            d.ok("forward", local=local, remote=f"compute:{on_address}")
            assert get(local) == "hello through the master\n"
        assert askpass.prompts() == [f"{laptop_lab.remote_user.name}@login's password: "], "one prompt in all"
        d.ok("close")
        assert_nothing_left(laptop_lab, login["control_path"])
        assert not Path(node["control_path"]).exists()
        assert refused(on_login)


def test_remote_words_through_the_login_shell(laptop_lab: LaptopLab) -> None:
    """Hostile words reach the remote command unchanged; a missing jupyter-hop names hosts.toml."""
    hostile = ["'; rm -rf ~", "$(id)", "`id`", "a b", "*", "$HOME", '"', "\\", "--json", ""]
    config = laptop_lab.laptop.home / ".config" / "jupyter-hop"
    hosts = config / "hosts.toml"
    with _hosts_toml(laptop_lab, hosts, "printf '<%s>\\n'"), driver(laptop_lab, laptop_lab.askpass("words")) as d:
        out = d.ok("hop", words=hostile)["out"]
        assert out == "".join(f"<{w}>\n" for w in hostile)
    missing = "no-such-jupyter-hop --json"
    with _hosts_toml(laptop_lab, hosts, missing), driver(laptop_lab, laptop_lab.askpass("gone")) as d:
        reply = d("hop", words=["slurm", "submit", "gpu", "--json"])
        assert reply["error"] == f"jupyter-hop not found on {ALIAS}; install it there or set remote_command in {hosts}"
    bin_dir = laptop_lab.laptop.venv_bin
    with _hosts_toml(laptop_lab, hosts, f"{bin_dir}/jupyter-hop"), driver(laptop_lab, laptop_lab.askpass("real")) as d:
        reply = d.ok("hop", words=["--help"])
        assert reply["rc"] == 0 and "Usage" in reply["out"], reply


@contextmanager
def _hosts_toml(lab: LaptopLab, path: Path, command: str) -> Iterator[None]:
    for directory in (path.parent.parent, path.parent):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chown(directory, lab.laptop.uid, lab.laptop.gid)
    path.write_text(f"[hosts.{ALIAS}]\nremote_command = {json.dumps(command)}\n")
    os.chown(path, lab.laptop.uid, lab.laptop.gid)
    try:
        yield
    finally:
        path.unlink()


def test_wrong_password(laptop_lab: LaptopLab) -> None:
    askpass = laptop_lab.askpass("wrong", WRONG_PASSWORD)
    with driver(laptop_lab, askpass) as d:
        reply = d("master")
        # the key was accepted; the password is what was denied
        assert reply["error"] == f"cannot connect to {ALIAS}: hoptest@login: Permission denied (password).", reply
        assert reply["auth"] is True
        assert "Permission denied, please try again." in reply["detail"]
        # ssh itself asks NumberOfPasswordPrompts (3) times before it gives up
        print(f"\nwrong password: {len(askpass.prompts())} prompts")
        assert len(askpass.prompts()) == 3
        assert processes_of(laptop_lab.laptop, "ControlPath=") == []
        assert processes_of(laptop_lab.laptop, "jupyter-hop-ssh-watchdog") == []


def test_unknown_host(laptop_lab: LaptopLab) -> None:
    askpass = laptop_lab.askpass("unknown")
    with driver(laptop_lab, askpass, host="nosuchhost.invalid") as d:
        reply = d("master")
        assert reply["error"].startswith("cannot connect to nosuchhost.invalid: ssh: Could not resolve hostname")
        assert "\n" not in reply["error"] and askpass.prompts() == []
        assert processes_of(laptop_lab.laptop, "ControlPath=") == []


def test_sigkill_of_the_owner_ends_its_masters(laptop_lab: LaptopLab) -> None:
    askpass = laptop_lab.askpass("sigkill")
    d = Driver(laptop_lab, askpass)
    try:
        login, node = d.ok("master"), d.ok("master", target="compute")
        os.kill(d.pid, signal.SIGKILL)
        killed = time.monotonic()
        d.proc.wait(10)
        pids = [login["pid"], node["pid"], login["watchdog"], node["watchdog"]]
        while any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in pids) or any(
                Path(m["control_path"]).exists() for m in (login, node)):
            assert time.monotonic() - killed < TEARDOWN_BOUND, processes_of(laptop_lab.laptop, "ssh")
            time.sleep(0.005)
        print(f"\nmasters and sockets gone {time.monotonic() - killed:.3f} s after SIGKILL of their owner")
        left = Path(login["control_path"]).parent
        assert processes_of(laptop_lab.laptop, str(left)) == []
        assert left.exists()  # only the dir and its logs stayed: the next run removes them
    finally:
        d.stderr.close()
    with driver(laptop_lab, laptop_lab.askpass("after-kill")) as again:
        again.ok("master")
        assert not left.exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


LISTENERS = """
import socket, sys
held = []
for port in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(port))); s.listen(); held.append(s)
print("listening", flush=True)
sys.stdin.read()
"""


def test_laptop_port_moves_past_another_users_listener(laptop_lab: LaptopLab, other_user: TestUser) -> None:
    wanted = free_port()
    while not 1024 <= wanted <= 65000:
        wanted = free_port()
    holder = other_user.popen(["python3", "-c", LISTENERS, str(wanted), str(wanted + 1), str(wanted + 2)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        with driver(laptop_lab, laptop_lab.askpass("ports")) as d:
            moved = d.ok("pick", wanted=wanted)["port"]
            assert moved > wanted + 2
            # what a forward on a port taken after the pick gets: ssh's reason, in one line
            reply = d("forward", local=wanted, remote="127.0.0.1:22")
            assert reply["error"] == (
                f"ssh could not open the forward 127.0.0.1:{wanted}:127.0.0.1:22 on {ALIAS}: mux_client_forward: "
                "forwarding request failed: Port forwarding failed; muxclient: master forward request failed")
            reply = d("pick", wanted=wanted, span=3)
            assert reply["error"] == (f"no free laptop port on 127.0.0.1 from {wanted} to {wanted + 2}: other "
                                      "programs hold them all; ask for another port")
    finally:
        _close(holder.stdin)
        holder.wait(10)


def _close(stream: IO[str] | None) -> None:
    if stream is not None:
        stream.close()

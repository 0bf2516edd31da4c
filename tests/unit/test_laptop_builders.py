"""The laptop side's pure parts: ssh command lines, remote quoting run through a real shell, hosts.toml, ssh -G
parsing, laptop ports and the HTTP probe (the real ssh runs are in tests/lab/test_laptop_ssh.py)."""

from __future__ import annotations

import http.server
import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_hop.errors import HopError
from jupyter_hop.laptop import argv, hosts, ports, probe, remote, sshconfig
from jupyter_hop.paths import Paths

HOSTILE = ["'; rm -rf ~", "$(id)", "`id`", "a b", "*", "$HOME", '"', "\\", "--json", "", "-l", "x\ny", "%C", "é"]
CONTROL = Path("/run/user/1000/jupyter-hop/ssh-abc/0c8bf5881fafa93589c2f2151698b888feaa4ba3")


def test_master_argv_shape() -> None:
    assert argv.master_argv("hpc", Path("/tmp/jupyter-hop-1000/ssh-x")) == [
        "ssh", "-M", "-N",
        "-o", "ControlPath=/tmp/jupyter-hop-1000/ssh-x/%C",
        "-o", "ControlMaster=yes",
        "-o", "ControlPersist=no",
        "-o", "ForkAfterAuthentication=no",
        "-o", "ClearAllForwardings=yes",
        "hpc",
    ]
    # a % of our own directory is not a token; the jump's options go before the host
    jump = argv.master_argv("c1", Path("/tmp/a%b"), options=["-o", "X=1"])
    assert jump[4] == "ControlPath=/tmp/a%%b/%C" and jump[-3:] == ["-o", "X=1", "c1"]


def test_nothing_weakens_the_users_ssh() -> None:
    words = " ".join([*argv.master_argv("hpc", Path("/d")), *argv.jump_options("hpc", CONTROL),
                      *argv.command_argv("hpc", CONTROL, "true"), *argv.mux_argv("hpc", CONTROL, "check")])
    for weaker in ("StrictHostKeyChecking", "UserKnownHostsFile", "GatewayPorts", "BatchMode", "0.0.0.0"):
        assert weaker not in words


def test_client_argv_shapes() -> None:
    client = ["ssh", "-F", "none", "-S", str(CONTROL), "-o", "ControlMaster=no", "-o", "ProxyCommand=false"]
    assert argv.mux_argv("hpc", CONTROL, "check") == [*client, "-O", "check", "hpc"]
    assert argv.mux_argv("hpc", CONTROL, "exit") == [*client, "-O", "exit", "hpc"]
    spec = argv.forward_spec(8888, "127.0.0.1:41237")
    assert spec == "127.0.0.1:8888:127.0.0.1:41237"
    assert argv.mux_argv("hpc", CONTROL, "forward", spec) == [*client, "-O", "forward", "-L", spec, "hpc"]
    assert argv.mux_argv("hpc", CONTROL, "cancel", spec) == [*client, "-O", "cancel", "-L", spec, "hpc"]
    assert argv.command_argv("hpc", CONTROL, "echo hi") == [*client, "-T", "-n", "hpc", "--", "echo hi"]
    with pytest.raises(ValueError):
        argv.mux_argv("hpc", CONTROL, "forward")
    with pytest.raises(ValueError):
        argv.mux_argv("hpc", CONTROL, "check", spec)


@pytest.mark.parametrize("remote_end", ["127.0.0.1:1", "c0412:65535", "[::1]:8888", "/run/user/1/j/s.sock"])
def test_forward_spec_accepts(remote_end: str) -> None:
    assert argv.forward_spec(9000, remote_end) == f"127.0.0.1:9000:{remote_end}"


@pytest.mark.parametrize("remote_end", ["127.0.0.1:0", "h:70000", "h", "relative.sock", "/", "a b:1", "-x:1",
                                        "/a b", "h:1:2", ""])
def test_forward_spec_refuses(remote_end: str) -> None:
    with pytest.raises(HopError) as err:
        argv.forward_spec(9000, remote_end)
    assert "\n" not in err.value.message and "ADDRESS:PORT" in err.value.message


def test_forward_spec_refuses_bad_laptop_ports() -> None:
    for port in (0, 65536):
        with pytest.raises(HopError, match="bad laptop port"):
            argv.forward_spec(port, "127.0.0.1:1")


def test_jump_proxy_command_survives_ssh_and_sh() -> None:
    """ssh expands %-tokens in ProxyCommand, then runs it with /bin/sh: a control path with a space, a quote
    and a % must reach the proxy ssh as one word."""
    control = Path("/tmp/odd dir/it's 100%/abc")
    (option,) = argv.jump_options("hpc", control)[1:]
    command = option.removeprefix("ProxyCommand=")
    expanded = command.replace("%h:%p", "compute:22").replace("%%", "%")  # what ssh does before sh
    assert shlex.split(expanded) == [
        "ssh", "-F", "none", "-S", str(control), "-o", "ControlMaster=no", "-o", "ProxyCommand=false",
        "-W", "compute:22", "hpc",
    ]


def _through_sh(line: str, tmp_path: Path) -> str:
    """Run `line` as sshd would: the login shell with -c (here /bin/sh, with a clean HOME)."""
    env = {"SHELL": "/bin/sh", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_remote_line_quotes_hostile_words(tmp_path: Path) -> None:
    line = remote.remote_line(HOSTILE, "printf '<%s>\\n'")
    assert _through_sh(line, tmp_path) == "".join(f"<{w}>\n" for w in HOSTILE)
    assert list(tmp_path.iterdir()) == []  # nothing ran: no file created, nothing removed


def test_remote_line_default_and_shape() -> None:
    assert remote.remote_line(["slurm", "submit", "gpu", "--json"]) == (
        'exec "${SHELL:-/bin/sh}" -l -c \'jupyter-hop "$@"\' jupyter-hop slurm submit gpu --json'
    )


def test_remote_command_is_shell_text_for_the_login_shell(tmp_path: Path) -> None:
    line = remote.remote_line(["a b"], "X=1 && printf '%s:%s\\n' \"$X\"")
    assert _through_sh(line, tmp_path) == "1:a b\n"


def test_remote_line_runs_a_login_shell(tmp_path: Path) -> None:
    (tmp_path / ".profile").write_text('PATH="$HOME/bin:$PATH"\n')
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "only-in-login").write_text("#!/bin/sh\necho login:$1\n")
    (tmp_path / "bin" / "only-in-login").chmod(0o755)
    assert _through_sh(remote.remote_line(["ok"], "only-in-login"), tmp_path) == "login:ok\n"


def test_not_found_message() -> None:
    err = remote.not_found("hpc", Path("/home/a/.config/jupyter-hop/hosts.toml"), "sh: 1: jupyter-hop: not found")
    assert err.message == ("jupyter-hop not found on hpc; install it there or set remote_command in "
                           "/home/a/.config/jupyter-hop/hosts.toml")
    assert "not found" in err.detail


def test_hosts_toml(tmp_path: Path) -> None:
    text = '[hosts.hpc]\nremote_command = "module load x && jupyter-hop"\n[hosts."a.b"]\n'
    assert hosts.parse(text) == {"hpc": hosts.HostSettings("module load x && jupyter-hop"),
                                 "a.b": hosts.HostSettings("jupyter-hop")}
    paths = Paths(config_dir=tmp_path / "cfg", state_dir=tmp_path / "s", runtime_base=tmp_path / "r")
    assert hosts.load(paths) == {}
    assert hosts.for_host(paths, "hpc") == hosts.HostSettings()
    (tmp_path / "cfg").mkdir()
    hosts.hosts_file(paths).write_text(text)
    assert hosts.for_host(paths, "hpc").remote_command == "module load x && jupyter-hop"
    assert hosts.for_host(paths, "login") == hosts.HostSettings()


@pytest.mark.parametrize(("text", "says"), [
    ("[hosts.hpc]\nremote_comand = 'x'\n", "[hosts.hpc] unknown key 'remote_comand'; allowed: remote_command"),
    ("[hosts.hpc]\nremote_command = 3\n", "[hosts.hpc] remote_command must be a non-empty string such as"),
    ("[hosts.hpc]\nremote_command = ''\n", "remote_command must be a non-empty string"),
    ("[hosts.hpc]\nremote_command = \"a\\nb\"\n", "remote_command must be one line"),
    ("[hpc]\nremote_command = 'x'\n", "unknown top-level key 'hpc'; only [hosts.NAME] tables are allowed"),
    ("hosts = 1\n", "hosts must be tables such as [hosts.hpc]"),
    ("[hosts]\nhpc = 'x'\n", "[hosts.hpc] must be a table with remote_command"),
    ("[hosts.hpc\n", "is not valid TOML"),
])
def test_hosts_toml_refuses(text: str, says: str) -> None:
    with pytest.raises(HopError) as err:
        hosts.parse(text, "/c/hosts.toml")
    assert err.value.message.startswith("/c/hosts.toml")
    assert says in err.value.message and "\n" not in err.value.message


G_OUTPUT = """host hpc
user alice
hostname login1.example.edu
port 2222
controlmaster auto
controlpath /home/alice/.ssh/cm-0c8bf5881fafa93589c2f2151698b888feaa4ba3
controlpersist 600
proxyjump gateway
batchmode no
identityfile ~/.ssh/id_ed25519
identityfile ~/.ssh/id_rsa
sendenv LANG
"""


def test_ssh_g_parse() -> None:
    settings = sshconfig.parse("hpc", G_OUTPUT)
    assert (settings.hostname, settings.user, settings.port) == ("login1.example.edu", "alice", 2222)
    assert (settings.control_master, settings.control_persist, settings.proxy_jump) == ("auto", "600", "gateway")
    assert settings.control_path.endswith("cm-0c8bf5881fafa93589c2f2151698b888feaa4ba3")
    assert settings.options["identityfile"] == ("~/.ssh/id_ed25519", "~/.ssh/id_rsa")
    assert settings.get("SendEnv") == "LANG" and not settings.batch_mode and settings.proxy_command == ""
    minimal = sshconfig.parse("h", "hostname h\n")
    assert (minimal.port, minimal.control_path, minimal.control_master) == (22, "none", "false")
    with pytest.raises(HopError, match="printed no hostname"):
        sshconfig.parse("h", "user x\n")
    with pytest.raises(HopError, match="port that is not a number"):
        sshconfig.parse("h", "hostname h\nport x\n")


def test_ssh_g_argv_carries_our_options() -> None:
    assert sshconfig.g_argv("hpc", ["-o", "ControlPath=/d/%C"]) == ["ssh", "-G", "-o", "ControlPath=/d/%C", "hpc"]


@pytest.mark.parametrize("host", ["hpc", "login1.example.edu", "alice@hpc", "10.0.0.1", "a_b-c", "[::1]"])
def test_check_host_accepts(host: str) -> None:
    assert sshconfig.check_host(host) == host


@pytest.mark.parametrize("host", ["", "-oProxyCommand=x", "a b", "a;b", "a\nb", "$(id)", "a@b@c", "@h"])
def test_check_host_refuses(host: str) -> None:
    with pytest.raises(HopError) as err:
        sshconfig.check_host(host)
    assert "\n" not in err.value.message and "alias" in err.value.message


def test_auth_failures_are_told_apart() -> None:
    from jupyter_hop.laptop.master import is_auth_failure

    assert is_auth_failure("alice@login: Permission denied (publickey,password).")
    assert is_auth_failure("Received disconnect from 10.0.0.1 port 22:2: Too many authentication failures")
    assert not is_auth_failure("ssh: Could not resolve hostname nosuch: Name or service not known")
    assert not is_auth_failure("Host key verification failed.")


@pytest.fixture
def held_ports() -> Iterator[list[int]]:
    """Three consecutive ports with listeners on them (as another program would hold them)."""
    for _ in range(50):
        with socket.socket() as probe_sock:
            probe_sock.bind(("127.0.0.1", 0))
            base = probe_sock.getsockname()[1]
        if base > 65000:
            continue
        socks = []
        try:
            for port in range(base, base + 3):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
                sock.listen()
        except OSError:
            for sock in socks:
                sock.close()
            continue
        yield list(range(base, base + 3))
        for sock in socks:
            sock.close()
        return
    pytest.fail("no three consecutive free ports")


def test_pick_moves_past_held_ports(held_ports: list[int]) -> None:
    first = held_ports[0]
    assert not ports.is_free(first)
    picked = ports.pick(first)
    assert picked > held_ports[-1] and ports.is_free(picked)
    assert ports.pick(picked) == picked
    assert ports.pick(picked, skip=frozenset({picked})) > picked


def test_pick_range_exhausted(held_ports: list[int]) -> None:
    with pytest.raises(HopError) as err:
        ports.pick(held_ports[0], span=3)
    assert err.value.message == (f"no free laptop port on 127.0.0.1 from {held_ports[0]} to {held_ports[2]}: "
                                 "other programs hold them all; ask for another port")


@pytest.mark.parametrize("port", [0, 80, 1023, 65536])
def test_pick_refuses_bad_ports(port: int) -> None:
    with pytest.raises(HopError, match="bad laptop port"):
        ports.pick(port)


def test_probe_status_and_deadline() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert probe.status(f"http://127.0.0.1:{port}/no-such-file") == 404
        assert probe.wait_answers(f"http://127.0.0.1:{port}/", timeout=5) == 200
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as sock:  # a port that accepts connections and never speaks HTTP: like a dead far end
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(HopError) as err:
            probe.wait_answers(f"http://127.0.0.1:{port}/lab", timeout=0.5, what="Jupyter")
    assert err.value.message == f"Jupyter did not answer at http://127.0.0.1:{port}/lab within 0.5 s through the tunnel"
    with pytest.raises(ValueError):
        probe.status("https://127.0.0.1/")


def test_portable_modules_import_without_posix_only_modules() -> None:
    """What connect uses on Windows must import there: fcntl, pwd, grp, termios and resource do not exist, nor
    os.getuid, os.setsid, os.killpg. On a (fake) win32, connect picks the one-ssh-per-step link and never imports
    the master's modules."""
    code = (
        "import os, sys\n"
        "for name in ('fcntl', 'pwd', 'grp', 'termios', 'resource'):\n"
        "    sys.modules[name] = None\n"
        "for name in ('getuid', 'geteuid', 'setsid', 'killpg', 'getpgid'):\n"
        "    if hasattr(os, name):\n"
        "        delattr(os, name)\n"
        "import jupyter_hop.laptop.sshconfig, jupyter_hop.laptop.argv, jupyter_hop.laptop.remote\n"
        "import jupyter_hop.laptop.hosts, jupyter_hop.laptop.ports, jupyter_hop.laptop.probe\n"
        "import jupyter_hop.laptop.objects, jupyter_hop.commands.connect\n"
        "import jupyter_hop.laptop.link, jupyter_hop.laptop.direct, jupyter_hop.laptop.follow\n"
        "import jupyter_hop.laptop.supervise, jupyter_hop.laptop.connect as flow\n"
        "sys.platform = 'win32'  # after the imports: typer's click would look for Windows' own modules\n"
        "link = flow.link('hpc', sys.stderr)\n"
        "assert type(link).__name__ == 'DirectSession', link\n"
        "assert link.hop_line(['list', '--json']).endswith('jupyter-hop list --json'), link.hop_line([])\n"
        "link.close()\n"
        "posix_only = [m for m in ('jupyter_hop.laptop.master', 'jupyter_hop.laptop.session') if m in sys.modules]\n"
        "assert not posix_only, posix_only\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_HOP_TEST_NO_CONTROL_MASTER"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr


def test_sweep_removes_only_dirs_of_dead_owners(tmp_path: Path) -> None:
    from jupyter_hop.laptop.session import OWNER, sweep

    dead = subprocess.Popen(["true"])
    dead.wait()
    dirs = {name: tmp_path / f"ssh-{name}" for name in ("dead", "alive", "unowned", "socket", "mine")}
    for directory in dirs.values():
        directory.mkdir()
    for name in ("dead", "socket", "mine"):
        (dirs[name] / OWNER).write_text(f"{dead.pid}\n")
        (dirs[name] / "x.log").write_text("")
    (dirs["alive"] / OWNER).write_text(f"{os.getpid()}\n")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(dirs["socket"] / "s"))
        sweep(tmp_path, keep=dirs["mine"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ssh-alive", "ssh-mine", "ssh-socket", "ssh-unowned"]


def test_a_control_path_too_long_for_a_socket_is_refused_before_ssh_starts(tmp_path: Path) -> None:
    from jupyter_hop.laptop import master

    long_dir = tmp_path / ("d" * 60)
    long_dir.mkdir()
    with pytest.raises(HopError) as err:
        master.start("localhost", long_dir)
    assert "longer than 86 bytes" in err.value.message and "XDG_RUNTIME_DIR" in err.value.message
    assert list(long_dir.iterdir()) == []  # no log, no master

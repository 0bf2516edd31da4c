"""Property tests: for validated hosts, users and ports, every printed command shlex-splits back to its argv, names
the exact addresses at both ends, and no value can become an option or leave its line; the launcher checks the
environment's values with the profile's rules."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_hop.errors import HopError
from jupyter_hop.profile.model import HOST_RE, USER_RE, Profile
from jupyter_hop.server import placement
from jupyter_hop.tracking import instructions
from jupyter_hop.tracking.records import Record

# "EOF" is a valid host and user name, and the heredoc's terminator: it must stay inside its line
HOST = st.just("EOF") | st.from_regex(HOST_RE.pattern, fullmatch=True).filter(lambda h: len(h) <= 60)
USER = st.sampled_from(["", "EOF"]) | st.from_regex(USER_RE.pattern, fullmatch=True)
# socket paths come from the runtime dir, which a user may have put anywhere (printable: see check_record)
SOCK = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    str.isprintable).map(lambda s: "/run/user/1000/jupyter-hop/" + s.replace("/", "_") + "/jupyter.sock")
# the node's cluster address (bind = node), IPv4 or IPv6
NODE_ADDRESS = st.ip_addresses(v=4).map(str).filter(lambda a: not a.startswith("127.")) | st.ip_addresses(v=6).map(
    str).filter(lambda a: a != "::1")


@st.composite
def records(draw: st.DrawFn) -> Record:
    kind = draw(st.sampled_from(["run", "unit", "job"]))
    bind = draw(st.sampled_from(["localhost", "socket", "node"]))
    sock = draw(SOCK) if bind == "socket" else ""
    login = draw(st.just("") | HOST) if kind == "job" else ""
    return Record(
        kind=kind,
        profile=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)),
        host=draw(HOST),
        bind=bind,
        address={"socket": "", "localhost": "127.0.0.1"}.get(bind) or draw(NODE_ADDRESS),
        port=0 if bind == "socket" else draw(st.integers(1024, 65535)),
        sock=sock,
        base_url="/",
        app=draw(st.sampled_from(["lab", "server", "notebook"])),
        pid=draw(st.integers(1, 4_000_000)),
        server_pid=draw(st.integers(1, 4_000_000)),
        started=time.time(),
        local_port=draw(st.integers(1, 65535)),
        login_host=login,
        ssh_host=draw(st.just("") | HOST) if kind != "job" else "",
        ssh_user=draw(USER),
        job_id=str(draw(st.integers(1, 10**9))) if kind == "job" else "",
        job_end=draw(st.none() | st.floats(1e9, 4e9)) if kind == "job" else None,
        unit=f"jupyter-hop@{draw(st.from_regex(r'[a-z]{1,8}', fullmatch=True))}.service" if kind == "unit" else "",
        token=draw(st.just("") | st.from_regex(r"[0-9a-f]{48}", fullmatch=True)),
    )


def indented_commands(text: str) -> list[str]:
    return [line[2:] for line in text.splitlines() if line.startswith("  ") and not line.startswith("   ")]


def expected_remote(record: Record) -> str:
    if record.bind == "socket":
        return record.sock
    return f"[{record.address}]:{record.port}" if ":" in record.address else f"{record.address}:{record.port}"


def check_tunnel_argv(record: Record, argv: list[str]) -> None:
    """The shapes proven in the lab, and no word an ssh would read as an option where a host belongs."""
    assert argv[:2] == ["ssh", "-N"]
    forward = argv[argv.index("-L") + 1]
    # the laptop end on 127.0.0.1 only, the far end the exact address (or socket) the server listens on
    local = f"127.0.0.1:{record.local_port}:"
    assert forward.startswith(local), forward
    assert forward.removeprefix(local) == expected_remote(record)
    assert "localhost" not in forward
    target = argv[-1]
    assert not target.startswith("-")
    if "-J" in argv:
        assert not argv[argv.index("-J") + 1].startswith("-")
    user = record.ssh_user
    if user:
        assert target.startswith(f"{user}@")
    if record.login_host and record.bind == "node":  # the login node connects to the address, not the name
        assert argv == ["ssh", "-N", "-L", forward, f"{user}@{record.login_host}" if user else record.login_host]


@settings(max_examples=400, deadline=None)
@given(record=records(), show_secret=st.booleans())
def test_command_style_round_trips(record: Record, show_secret: bool) -> None:
    text = instructions.render(record, style="command", show_secret=show_secret)
    t = instructions.tunnel(record, record.local_port)
    check_tunnel_argv(record, t.argv)
    commands = indented_commands(text)
    assert commands[0] == shlex.join(t.argv)
    assert shlex.split(commands[0]) == t.argv
    last = text.splitlines()[-1]
    assert last.startswith("Stop it: ")
    assert shlex.split(last.removeprefix("Stop it: ")) == ["jupyter", "hop", "stop", record.key]
    if record.token and not show_secret:
        assert record.token not in text
        assert shlex.split(commands[1]) == ["jupyter", "hop", "instructions", record.key]


@settings(max_examples=300, deadline=None)
@given(record=records().filter(lambda r: not any(c.isspace() or c in "\"'\\#" for c in r.sock)))
def test_config_style_block_is_a_clean_heredoc(record: Record) -> None:
    text = instructions.render(record, style="config")
    t = instructions.tunnel(record, record.local_port)
    block = instructions.ssh_config_block(t)
    assert block in text
    first, *body, last = block.splitlines()
    assert first == "mkdir -p -m 700 ~/.ssh && cat >> ~/.ssh/config <<'EOF'"
    assert last == "EOF" and "EOF" not in body
    assert body[0] == f"Host {t.config_host}"
    for line in body[1:]:
        key, _, value = line.strip().partition(" ")
        assert key and value and len(shlex.split(value)) >= 1
    assert f"  {shlex.join(['ssh', '-N', t.config_host])}" in text.splitlines()
    assert not t.config_host.startswith("-")
    forwards = [line.split()[1:] for line in body if line.strip().startswith("LocalForward ")]
    assert forwards == [[f"127.0.0.1:{record.local_port}", expected_remote(record)]]


@settings(max_examples=200, deadline=None)
@given(record=records())
def test_tunnel_is_pure(record: Record) -> None:
    before: dict[str, Any] = dict(record.__dict__)
    a = instructions.render(record, now=1.8e9)
    b = instructions.render(record, now=1.8e9)
    assert a == b and record.__dict__ == before


def test_stop_line_uses_how_this_shell_reaches_jupyter_hop(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`jupyter hop` only when PATH leads to this jupyter-hop; else its absolute path, which works when pasted."""
    import sys
    from pathlib import Path

    from jupyter_hop.tracking.instructions import invocation

    bin_dir = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert invocation() == "jupyter hop"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert invocation() == f"{bin_dir}/jupyter-hop"


@settings(max_examples=60, deadline=None)
@given(record=records().filter(lambda r: not any(c.isspace() or c in "\"'\\#" for c in r.sock)))
def test_config_block_pasted_into_bash_appends_exactly_its_lines(record: Record) -> None:
    """Render, then run the block as a user pastes it: the file gets the block's lines and nothing runs after."""
    t = instructions.tunnel(record, record.local_port)
    block = instructions.ssh_config_block(t)
    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(["bash", "-c", block + "\necho after-the-heredoc"], env=env, capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0 and done.stdout == "after-the-heredoc\n", done
        written = (Path(home) / ".ssh" / "config").read_text()
    assert written.splitlines() == [f"Host {t.config_host}", *(f"    {line}" for line in t.config_lines)]


JOB = Record(kind="job", profile="gpu", host="c0412", bind="node", address="10.1.4.12", port=47213, sock="",
             base_url="/", app="lab", pid=10, server_pid=11, started=1.0, local_port=8888,
             login_host="login1.example.edu", ssh_user="alice", job_id="81234")

# whatever a hand-edited record or a hostile environment could hold: newlines, a heredoc end, options, spaces
HOSTILE = st.sampled_from(["a\nEOF\ntouch /tmp/x", "EOF\n", "-oProxyCommand=touch /tmp/x", "a b", "a;b", "",
                           "x\r", "'", "$(id)", "c0412"]) | st.text(max_size=12)


@settings(max_examples=400, deadline=None)
@given(record=records(), field=st.sampled_from(["host", "login_host", "ssh_host", "ssh_user"]), value=HOSTILE,
       style=st.sampled_from(["command", "config"]))
def test_hostile_values_are_refused_or_harmless(record: Record, field: str, value: str, style: str) -> None:
    """A value the profile's rules refuse is refused here too, in one line naming it; any other renders safely."""
    record = dataclasses.replace(record, **{field: value})
    rule = USER_RE if field == "ssh_user" else HOST_RE
    if value and not rule.fullmatch(value):
        try:
            instructions.render(record, style=style)
        except HopError as exc:
            assert field in exc.message and repr(value) in exc.message and "\n" not in exc.message
            return
        raise AssertionError(f"{field} = {value!r} was printed")
    text = instructions.render(record, style=style)
    if style == "command":
        check_tunnel_argv(record, shlex.split(indented_commands(text)[0]))
    else:
        assert text.count("\nEOF\n") == 1


def test_non_printable_socket_path_is_refused() -> None:
    record = dataclasses.replace(JOB, bind="socket", address="", port=0, sock="/run/x\nEOF\n/jupyter.sock")
    with pytest.raises(HopError, match="sock"):
        instructions.render(record, style="config")


# ------------------------------------------------------------------ the launcher checks the environment's values

JOB_ENV = {"SLURM_JOB_ID": "81234", "SLURMD_NODENAME": "c0412", "SLURM_SUBMIT_HOST": "login1", "LOGNAME": "alice"}
BAD_ENV = [
    ("SLURM_SUBMIT_HOST", "login1\nEOF"),
    ("SLURM_SUBMIT_HOST", "-oProxyCommand=touch /tmp/x"),
    ("SLURM_SUBMIT_HOST", "login 1"),
    ("SLURMD_NODENAME", "c0412\nEOF\ntouch /tmp/x"),
    ("SLURMD_NODENAME", "-J"),
    ("SLURMD_NODENAME", "c 0412"),
    ("SLURM_JOB_ID", "../../x"),
    ("LOGNAME", "alice bob"),
    ("LOGNAME", "-oProxyCommand=x"),
    ("LOGNAME", "a\nEOF"),
]


def test_placement_takes_good_environment_values() -> None:
    where = placement.placement(Profile("p"), JOB_ENV)
    assert (where.kind, where.host, where.login_host, where.ssh_user, where.job_id) == (
        "job", "c0412", "login1", "alice", "81234")


@pytest.mark.parametrize(("var", "value"), BAD_ENV)
def test_placement_refuses_bad_environment_values(var: str, value: str) -> None:
    with pytest.raises(HopError) as caught:
        placement.placement(Profile("p"), {**JOB_ENV, var: value})
    message = caught.value.message
    assert message.startswith(f"{var} = {value!r} is not allowed: ") and "\n" not in message, message


def test_profile_values_take_precedence_over_the_environment() -> None:
    """ssh.login_host and ssh.user replace the environment's values, so a bad one there is never used."""
    profile = Profile("p")
    profile.ssh.login_host, profile.ssh.user = "login2", "bob"
    where = placement.placement(profile, {**JOB_ENV, "SLURM_SUBMIT_HOST": "-x", "LOGNAME": "a b"})
    assert (where.login_host, where.ssh_user) == ("login2", "bob")


def test_user_name_is_looked_up_in_getpass_order() -> None:
    """USER when LOGNAME is unset (as getpass.getuser() does), and it is checked too."""
    env = {k: v for k, v in JOB_ENV.items() if k != "LOGNAME"}
    assert placement.placement(Profile("p"), {**env, "USER": "carol"}).ssh_user == "carol"
    with pytest.raises(HopError, match=r"^USER = 'c d' is not allowed"):
        placement.placement(Profile("p"), {**env, "USER": "c d"})

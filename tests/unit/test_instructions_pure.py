"""Property tests: for validated hosts, users and ports, every printed command shlex-splits back to its argv."""

from __future__ import annotations

import shlex
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_hop.profile.model import HOST_RE, USER_RE
from jupyter_hop.tracking import instructions
from jupyter_hop.tracking.records import Record

HOST = st.from_regex(HOST_RE, fullmatch=True).filter(lambda h: len(h) <= 60)
USER = st.just("") | st.from_regex(USER_RE, fullmatch=True)
# socket paths come from the runtime dir, which a user may have put anywhere
SOCK = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).map(
    lambda s: "/run/user/1000/jupyter-hop/" + s.replace("/", "_") + "/jupyter.sock"
)


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
        address="" if bind == "socket" else "127.0.0.1",
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


def check_tunnel_argv(record: Record, argv: list[str]) -> None:
    """The shapes proven in the lab, and no word an ssh would read as an option where a host belongs."""
    assert argv[:2] == ["ssh", "-N"]
    remote = record.sock if record.bind == "socket" else None
    forward = argv[argv.index("-L") + 1]
    local, _, rest = forward.partition(":")
    assert local == str(record.local_port)
    if remote is not None:
        assert rest == remote
    else:
        assert rest.endswith(f":{record.port}")
    target = argv[-1]
    assert not target.startswith("-")
    if "-J" in argv:
        assert not argv[argv.index("-J") + 1].startswith("-")
    user = record.ssh_user
    if user:
        assert target.startswith(f"{user}@")


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
    assert f"  ssh -N {t.config_host}" in text.splitlines()
    assert shlex.split(f"ssh -N {t.config_host}") == ["ssh", "-N", t.config_host]


@settings(max_examples=200, deadline=None)
@given(record=records())
def test_tunnel_is_pure(record: Record) -> None:
    before: dict[str, Any] = dict(record.__dict__)
    a = instructions.render(record)
    b = instructions.render(record)
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

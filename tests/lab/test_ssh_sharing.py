"""Shared nodes: another user listens at our server's port on [::1] and on every other address it can get on the
node (the lab's nodes map `localhost` to ::1 as well, as Debian and RHEL do), and at the tunnel's laptop port on
[::1]; every printed shape (command and ~/.ssh/config block, workstation and job, each bind) still reaches our
server, and the other user receives nothing. With the old `localhost` form it would have got the browser."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from labkit import http_login
from labkit.squatter import Squatter, squatting
from labkit.sshlab import SshLab, free_port
from labkit.sshslurm import SshSlurm
from labkit.user import TestUser
from test_ssh_instructions import (
    BINDS,
    Running,
    job_profile,
    launched,
    run_command_form,
    run_config_form,
    submitted,
)
from test_ssh_instructions import ssh_config as ssh_config  # the fixture, re-exported for the tests below

pytestmark = pytest.mark.lab


def node_addresses(lab: SshLab, ns: str) -> list[str]:
    """Every address a line could name on `ns`: all of IPv6, the loopbacks, the node's own IPv4 addresses."""
    own = [lab.addresses["login"], lab.addresses["login-back"]] if ns == "login" else [lab.addresses["compute"]]
    return ["::", "127.0.0.1", "127.0.1.1", *own]


@contextmanager
def others_listening(lab: SshLab, other: TestUser, ns: str, run: Running) -> Iterator[list[Squatter]]:
    """The other user at our port on the node (as soon as it can read the port in /proc/net/tcp), and at our
    laptop port on the laptop's [::1]."""
    rec = run.record
    with ExitStack() as stack:
        squatters = [stack.enter_context(squatting(other, rec.local_port, ["::1"]))]
        assert squatters[0].holds == ["::1"]
        if rec.port:
            node = stack.enter_context(squatting(other, rec.port, node_addresses(lab, ns), prefix=lab.prefix(ns)))
            assert "::" in node.holds, (node.holds, node.refused)  # so [::1]:PORT is the other user's
            if rec.bind == "node":  # 127.0.0.1 is free: our server listens on the node address only
                assert "127.0.0.1" in node.holds, (node.holds, node.refused)
            squatters.append(node)
        yield squatters


def check_every_shape(
    lab: SshLab, other: TestUser, ns: str, run: Running, env: dict[str, str], config: Path, key: str
) -> None:
    """The printed command and the printed config block, each opened and logged in through; the other user got
    no connection at any address."""
    rec = run.record
    with others_listening(lab, other, ns, run) as squatters:
        command = run_command_form(lab, run.printed, rec.local_port)
        shown = lab.run_in("login", ["jupyter-hop", "instructions", key, "--ssh-config"], env)
        assert shown.returncode == 0, shown.stderr
        _, tunnel = run_config_form(lab, shown.stdout, rec.local_port, config)
        got = [(s.holds, s.connections) for s in squatters]
        assert all(not connections for _, connections in got), got
    print(f"\nshapes tried 2, reached our server 2, other user's connections 0 (holding {got}): {command!r}, "
          f"{tunnel!r}")


@pytest.mark.parametrize("bind", BINDS)
def test_workstation_shapes_reach_only_our_server(
    ssh_lab: SshLab, other_user: TestUser, user_home: dict[str, str], ssh_config: Path, bind: str
) -> None:
    with launched(ssh_lab, "login", user_home, bind, "--login-host", "login") as run:
        check_every_shape(ssh_lab, other_user, "login", run, user_home, ssh_config, run.record.key)


@pytest.mark.parametrize("bind", BINDS)
def test_job_shapes_reach_only_our_server(
    ssh_lab: SshLab, ssh_slurm: SshSlurm, other_user: TestUser, user_home: dict[str, str],
    ssh_config: Path, bind: str,
) -> None:
    job_profile(ssh_lab, user_home, "job", bind)
    with submitted(ssh_slurm, user_home, "job") as run:
        check_every_shape(ssh_lab, other_user, "compute", run, user_home, ssh_config, run.record.key)


def test_the_old_localhost_form_reached_the_other_user(
    ssh_lab: SshLab, other_user: TestUser, user_home: dict[str, str]
) -> None:
    """What the fix is for: `-L ...:localhost:PORT`, as printed before, lands on the other user's [::1]:PORT."""
    with launched(ssh_lab, "login", user_home, "localhost", "--login-host", "login") as run:
        rec = run.record
        assert f":127.0.0.1:{rec.port} " in run.printed
        local = free_port()
        with squatting(other_user, rec.port, ["::1"], prefix=ssh_lab.prefix("login")) as squatter, \
                ssh_lab.tunnel(f"ssh -N -L 127.0.0.1:{local}:localhost:{rec.port} hoptest@login", local):
            status, _, body = http_login.Session(f"http://127.0.0.1:{local}/").request("GET", "login")
            # every connection through it (the tunnel's readiness probe too) went to the other user's [::1]
            assert status == 200 and set(squatter.connections) == {"::1"}, (status, body, squatter.connections)
            assert b"a fake login page" in body  # where the browser would have typed the password

"""Connection instructions: a pure function from a record to lines a user pastes verbatim."""

from __future__ import annotations

import hashlib
import shlex
import time
from dataclasses import dataclass

from jupyter_hop.tracking.records import Record


@dataclass(frozen=True)
class Tunnel:
    """One ssh invocation that opens the tunnel, and its ~/.ssh/config equivalent."""

    argv: list[str]
    config_host: str  # the Host alias the config block defines
    config_lines: list[str]  # the block's option lines

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def _target(user: str, host: str) -> str:
    return f"{user}@{host}" if user else host


def _alias(name: str, record: Record) -> str:
    """A Host alias for this server only: ssh adds up the LocalForward lines of every block that matches, so a
    block pasted for an earlier launch (another port, same laptop port) under the same alias would win."""
    tag = str(record.port) if record.port else hashlib.sha256(record.sock.encode()).hexdigest()[:8]
    return f"{name}-jupyter-{tag}"


def tunnel(record: Record, local_port: int) -> Tunnel:
    """The only shapes proven in the lab, chosen by where the server runs and how it is bound."""
    user = record.ssh_user
    node = record.host
    if record.login_host:  # double hop: laptop -> login node -> compute node
        login = _target(user, record.login_host)
        if record.bind == "node":
            # the login node itself connects to the node's cluster address
            forward = f"{local_port}:{node}:{record.port}"
            return Tunnel(
                ["ssh", "-N", "-L", forward, login],
                _alias(node, record),
                [f"HostName {record.login_host}", *([f"User {user}"] if user else []),
                 f"LocalForward {local_port} {node}:{record.port}"],
            )
        remote = record.sock if record.bind == "socket" else f"localhost:{record.port}"
        return Tunnel(
            ["ssh", "-N", "-J", login, "-L", f"{local_port}:{remote}", _target(user, node)],
            _alias(node, record),
            [f"HostName {node}", *([f"User {user}"] if user else []), f"ProxyJump {login}",
             f"LocalForward {local_port} {remote}"],
        )
    host = record.ssh_host or node  # a workstation: what the user types after `ssh` to reach it
    if record.bind == "socket":
        remote = record.sock
    elif record.bind == "node":
        remote = f"{node}:{record.port}"
    else:
        remote = f"localhost:{record.port}"
    return Tunnel(
        ["ssh", "-N", "-L", f"{local_port}:{remote}", _target(user, host)],
        _alias(host, record),
        [f"HostName {host}", *([f"User {user}"] if user else []), f"LocalForward {local_port} {remote}"],
    )


def ssh_config_block(t: Tunnel) -> str:
    """Shell text that appends the block to ~/.ssh/config; pasting it runs as is (a laptop that never ran ssh
    has no ~/.ssh yet, and `cat >>` would fail there). No `SessionType none`: clients before OpenSSH 8.7 reject
    the whole file for one unknown option, and the printed `ssh -N` already opens no session."""
    body = "\n".join(f"    {line}" for line in t.config_lines)
    return f"mkdir -p -m 700 ~/.ssh && cat >> ~/.ssh/config <<'EOF'\nHost {t.config_host}\n{body}\nEOF"


def login_url(record: Record, local_port: int, *, show_secret: bool) -> str:
    path = {"lab": "lab", "notebook": "tree"}.get(record.app, "")
    url = f"http://localhost:{local_port}/{path}"
    if record.token and show_secret:
        url += f"?token={record.token}"
    return url


def where(record: Record) -> str:
    if record.kind == "job":
        end = ""
        if record.job_end:
            end = ", ends " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(record.job_end))
        return f"Jupyter is ready on {record.host} (Slurm job {record.job_id}{end})."
    if record.kind == "unit":
        return f"Jupyter is ready on {record.host} (systemd user unit {record.unit})."
    return f"Jupyter is ready on {record.host} (pid {record.pid})."


def render(
    record: Record,
    *,
    style: str = "command",
    show_secret: bool = False,
    hop: str = "jupyter hop",
) -> str:
    """Everything a user needs to reach the server, every command runnable as printed.

    `hop` is how this shell reaches jupyter-hop (see `invocation`), so the stop line works when pasted.
    """
    local_port = record.local_port
    t = tunnel(record, local_port)
    lines = [where(record), ""]
    if style == "config":
        lines.append("On your laptop, add this block for this server to ~/.ssh/config:")
        lines.append(ssh_config_block(t))
        lines.append("")
        lines.append("Then open the tunnel (it stays open; Ctrl-C closes it):")
        lines.append(f"  ssh -N {t.config_host}")
    else:
        lines.append("On your laptop, open the tunnel (it stays open; Ctrl-C closes it):")
        lines.append(f"  {t.command}")
    wanted = record.wanted_local_port
    if wanted and wanted != local_port:
        lines.append(f"  ({wanted} is used by another of your servers' tunnels, so this one uses {local_port}.)")
    lines.append("")
    url = login_url(record, local_port, show_secret=show_secret)
    if record.token and not show_secret:
        lines.append(f"Then open {url} and log in with the token that this shows on your own terminal:")
        lines.append(f"  {hop} instructions {record.key}")
    elif record.token:
        lines.append(f"Then open {url}")
    else:
        lines.append(f"Then open {url} and log in with your jupyter-hop password.")
    lines.append(f"Stop it: {hop} stop {record.key}")
    return "\n".join(lines) + "\n"


def invocation() -> str:
    """How the user's shell can run this same jupyter-hop: `jupyter hop` when PATH leads to it, else its path.

    A venv that is not activated (or a unit's or job's minimal PATH) would make `jupyter hop` fail when pasted.
    """
    import shutil
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "jupyter-hop"
    found = shutil.which("jupyter-hop")
    if found and Path(found) == script:
        return "jupyter hop" if shutil.which("jupyter") else "jupyter-hop"
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m jupyter_hop"

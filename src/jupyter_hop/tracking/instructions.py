"""Connection instructions: a pure function from a record to lines a user pastes verbatim."""

from __future__ import annotations

import hashlib
import ipaddress
import shlex
import time
from dataclasses import dataclass

from jupyter_hop import timetext
from jupyter_hop.errors import HopError
from jupyter_hop.profile.model import check_host, check_user
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


# The laptop end of every forward, and the URL's host. Never `localhost`: ssh would also bind [::1]:LOCAL (or fail
# to, when another laptop user holds it, and go on), and a browser tries ::1 first.
LAPTOP = "127.0.0.1"


def _target(user: str, host: str) -> str:
    return f"{user}@{host}" if user else host


def _alias(name: str, record: Record) -> str:
    """A Host alias for this server only: ssh adds up the LocalForward lines of every block that matches, so a
    block pasted for an earlier launch (another port, same laptop port) under the same alias would win."""
    tag = str(record.port) if record.port else hashlib.sha256(record.sock.encode()).hexdigest()[:8]
    return f"{name}-jupyter-{tag}"


def _remote(record: Record) -> str:
    """The far end of the forward: the socket, or the exact address the server listens on. Never a name that the
    far sshd resolves itself: `localhost` is ::1 first on Debian and RHEL nodes (and a node's own name may be
    127.0.1.1), where another user can listen on the same port."""
    if record.bind == "socket":
        return record.sock
    address = record.address or ("127.0.0.1" if record.bind == "localhost" else "")
    return f"[{address}]:{record.port}" if ":" in address else f"{address}:{record.port}"


def check_record(record: Record) -> None:
    """Every value that goes into a printed line, checked with the profile's rules (a record is a file that could
    have been edited): nothing can become an ssh option, leave its line or end the ~/.ssh/config heredoc."""
    for name in ("host", "login_host", "ssh_host"):
        if getattr(record, name):
            check_host(f"the record's {name}", getattr(record, name))
    if record.ssh_user:
        check_user("the record's ssh_user", record.ssh_user)
    if record.bind == "socket":
        if not record.sock.startswith("/") or not record.sock.isprintable():
            raise HopError(f"the record's sock = {record.sock!r} is not allowed: an absolute path on one line")
        return
    try:
        ipaddress.ip_address(record.address or "127.0.0.1")
    except ValueError:
        raise HopError(f"the record's address = {record.address!r} is not allowed: an IP address") from None
    if record.bind == "node" and not record.address:
        raise HopError("the record's address is empty: a server bound on the node's address must name it")


def tunnel(record: Record, local_port: int) -> Tunnel:
    """The only shapes proven in the lab, chosen by where the server runs and how it is bound; both ends are
    addresses, never names that sshd resolves (see `_remote` and `LAPTOP`)."""
    check_record(record)
    user = record.ssh_user
    node = record.host
    local = f"{LAPTOP}:{local_port}"
    remote = _remote(record)
    user_line = [f"User {user}"] if user else []
    if record.login_host:  # double hop: laptop -> login node -> compute node
        login = _target(user, record.login_host)
        if record.bind == "node":
            # the login node itself connects to the node's cluster address
            return Tunnel(
                ["ssh", "-N", "-L", f"{local}:{remote}", login],
                _alias(node, record),
                [f"HostName {record.login_host}", *user_line, f"LocalForward {local} {remote}"],
            )
        return Tunnel(
            ["ssh", "-N", "-J", login, "-L", f"{local}:{remote}", _target(user, node)],
            _alias(node, record),
            [f"HostName {node}", *user_line, f"ProxyJump {login}", f"LocalForward {local} {remote}"],
        )
    host = record.ssh_host or node  # a workstation: what the user types after `ssh` to reach it
    return Tunnel(
        ["ssh", "-N", "-L", f"{local}:{remote}", _target(user, host)],
        _alias(host, record),
        [f"HostName {host}", *user_line, f"LocalForward {local} {remote}"],
    )


def ssh_config_block(t: Tunnel) -> str:
    """Shell text that appends the block to ~/.ssh/config; pasting it runs as is (a laptop that never ran ssh
    has no ~/.ssh yet, and `cat >>` would fail there). No `SessionType none`: clients before OpenSSH 8.7 reject
    the whole file for one unknown option, and the printed `ssh -N` already opens no session.

    No line can end the heredoc early: the first starts with "Host ", the others are indented, and check_record
    lets no value hold a newline."""
    body = "\n".join(f"    {line}" for line in t.config_lines)
    return f"mkdir -p -m 700 ~/.ssh && cat >> ~/.ssh/config <<'EOF'\nHost {t.config_host}\n{body}\nEOF"


def login_url(record: Record, local_port: int, *, show_secret: bool) -> str:
    path = {"lab": "lab", "notebook": "tree"}.get(record.app, "")
    url = f"http://{LAPTOP}:{local_port}/{path}"
    if record.token and show_secret:
        url += f"?token={record.token}"
    return url


def where(record: Record, now: float) -> str:
    """The first line; a job's says when it ends, as a time (UTC, with the date when not today) and as time left:
    "(Slurm job 81234, ends 18:05 UTC, in 3 h 12 min)"."""
    if record.kind == "job":
        end = ""
        if record.job_end:
            end = f", ends {timetext.moment(record.job_end, now)}, {timetext.until(record.job_end, now)}"
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
    now: float | None = None,
) -> str:
    """Everything a user needs to reach the server, every command runnable as printed.

    `hop` is how this shell reaches jupyter-hop (see `invocation`), so the stop line works when pasted. `now`
    (epoch seconds, the current time when None) is what a job's time left is counted from.
    """
    local_port = record.local_port
    t = tunnel(record, local_port)
    lines = [where(record, time.time() if now is None else now), ""]
    if style == "config":
        lines.append("On your laptop, add this block for this server to ~/.ssh/config:")
        lines.append(ssh_config_block(t))
        lines.append("")
        lines.append("Then open the tunnel (it stays open; Ctrl-C closes it):")
        lines.append(f"  {shlex.join(['ssh', '-N', t.config_host])}")
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
        lines.append(f"  {hop} instructions {shlex.quote(record.key)}")
    elif record.token:
        lines.append(f"Then open {url}")
    else:
        lines.append(f"Then open {url} and log in with your jupyter-hop password.")
    lines.append(f"Stop it: {hop} stop {shlex.quote(record.key)}")
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

"""What `connect` reads from the remote jupyter-hop, as pure functions: its one object, its progress events, its
list of servers, and the laptop's URL. Everything arrives as the JSON protocol (jupyter_hop/protocol.py)."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyter_hop.errors import HopError
from jupyter_hop.laptop.argv import LOCAL_ADDRESS
from jupyter_hop.slurm import statustext

SCHEMA = 1  # the protocol version this laptop speaks (jupyter_hop.protocol.SCHEMA of the same release)
LIVE = ("pending", "starting", "ready")  # rows of `list --json` that a connect may reattach to
TAIL = 10  # remote stderr lines kept as evidence of a failure


def _schema_error(host: str, found: object, version: object) -> HopError:
    from jupyter_hop import __version__

    newer = isinstance(found, int) and found > SCHEMA
    upgrade = "this laptop's (pip install -U jupyter-hop)" if newer else f"the one on {host}"
    return HopError(f"the jupyter-hop on {host} (version {version}) speaks protocol schema {found}, this laptop's "
                    f"(version {__version__}) speaks {SCHEMA}: upgrade {upgrade}")


def the_object(host: str, stdout: str) -> dict[str, Any]:
    """The one object of a `--json` command; a schema this laptop does not speak says what to upgrade."""
    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        obj = json.loads(line)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise HopError(f"the jupyter-hop on {host} printed no JSON object; is it older than the --json protocol? "
                       "Upgrade it there (pip install -U jupyter-hop)", detail=stdout)
    if obj.get("schema") != SCHEMA:
        raise _schema_error(host, obj.get("schema"), obj.get("version", "unknown"))
    return obj


def event(line: str) -> dict[str, Any] | None:
    """A stderr line as a progress event, or None for a line meant for people (an error, a warning)."""
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) and "event" in found else None


def moment(text: object) -> float | None:
    """Epoch seconds of the protocol's UTC date-time (YYYY-MM-DDTHH:MM:SSZ), None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def progress_text(found: dict[str, Any], now: float | None = None, *, since: float = 0.0,
                  width: int | None = None) -> str:
    """The live status line for one event, in the words of the remote's own status line (statustext): state,
    the reason in the remote's words and its code, the expected start, the node, the time waited. `since`:
    seconds since the event arrived (the clock keeps counting between events); `width`: a terminal's."""
    job_id = str(found.get("job_id"))
    if found.get("event") == "submitted":
        return f"Slurm job {job_id} submitted; waiting for it to start"
    now = time.time() if now is None else now
    state, reason = str(found.get("state") or "?"), str(found.get("reason") or "")
    start, node = moment(found.get("expected_start")), str(found.get("node") or "")

    def text(said: str) -> str:
        return statustext.state_text(state, reason=reason, said=said, expected_start=start, node=node,
                                     ready=found.get("ready_on_node") is True, now=now)

    elapsed = found.get("elapsed")
    waited = (float(elapsed) if isinstance(elapsed, (int, float)) else 0.0) + since
    return statustext.line(job_id, text(str(found.get("reason_text") or "")), text(""), waited, width=width)


def progress_key(found: dict[str, Any]) -> str:
    """What a log gets a new line for: any field of the event but the time waited."""
    return json.dumps({k: v for k, v in found.items() if k != "elapsed"}, sort_keys=True)


def failure_lines(stderr: str) -> list[str]:
    """The remote's lines for people (its error, a log tail), without the progress events."""
    return [line for line in stderr.splitlines() if line.strip() and event(line) is None][-TAIL:]


def too_old(stderr: str) -> bool:
    """A remote that predates the protocol refuses --json as a usage error."""
    return lacks_option(stderr.splitlines(), "--json")


def reattach_row(host: str, listing: str, profile: str) -> dict[str, Any] | None:
    """The newest live Slurm job of `profile` in `list --json`'s output, if any."""
    try:
        data = json.loads(listing)
        rows: Sequence[dict[str, Any]] = data["servers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise HopError(f"`jupyter-hop list --json` on {host} printed no list of servers", detail=listing) from exc
    found = [row for row in rows if row.get("kind") == "job" and row.get("profile") == profile
             and row.get("state") in LIVE and row.get("job_id")]
    return max(found, key=lambda row: row.get("started") or 0.0, default=None)


def laptop_url(url: str, port: int) -> str:
    """The object's URL with the laptop port chosen here, on 127.0.0.1 (never a name another user may bind)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{LOCAL_ADDRESS}:{port}"))


def plain_url(url: str) -> str:
    """The URL without its query (a token is never on a command line: not the browser's either)."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


def ends_at(obj: dict[str, Any], now: float | None = None) -> float | None:
    """Epoch seconds of the job's end, from `ends_in` (the remote's clock only counts the difference)."""
    ends_in = obj.get("ends_in")
    if not isinstance(ends_in, (int, float)):
        return None
    return (time.time() if now is None else now) + ends_in


def left(seconds: float) -> str:
    """Time left as people read it: 1h05m, 12m, 40s."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours}h{rest // 60:02d}m"
    return f"{rest // 60}m" if rest >= 60 else f"{rest}s"


def lacks_option(stderr_lines: Sequence[str], option: str) -> bool:
    """The remote's usage error for an option its release does not have (Click: `No such option: --x`)."""
    return any(option in line and "no such option" in line.lower() for line in stderr_lines)

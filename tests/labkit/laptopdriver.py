"""Drives jupyter_hop.laptop as the laptop user, one JSON request per stdin line, one JSON reply per line.

Run as `python laptopdriver.py HOST`; the lab test sends steps and checks the prompt count between them. The
process owns the ssh masters, as `connect` will: killing it is how a test kills "connect".
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from jupyter_hop.errors import HopError
from jupyter_hop.laptop import argv, ports, probe
from jupyter_hop.laptop.session import SshSession


def _master_info(session: SshSession, target: str | None) -> dict[str, Any]:
    master = session.login() if target is None else session.node(target)
    return {"pid": master.process.pid, "control_path": str(master.control_path),
            "watchdog": master.watchdog.pid, "log": str(master.log)}


def handle(session: SshSession, request: dict[str, Any]) -> dict[str, Any]:
    op, target = request["op"], request.get("target")
    if op == "master":
        return _master_info(session, target)
    master = session.login() if target is None else session.node(target)
    if op == "run":
        result = master.run(request["line"], timeout=60, what="a lab command")
        return {"rc": result.returncode, "out": result.stdout, "err": result.stderr}
    if op == "hop":
        result = session.jupyter_hop(request["words"], timeout=60, what="the remote jupyter-hop")
        return {"rc": result.returncode, "out": result.stdout, "err": result.stderr}
    if op in ("forward", "cancel"):
        spec = argv.forward_spec(request["local"], request["remote"])
        (master.forward if op == "forward" else master.cancel)(spec)
        return {"spec": spec}
    if op == "check":
        return {"ok": master.check()}
    if op == "probe":
        return {"status": probe.wait_answers(request["url"], timeout=request.get("timeout", 10))}
    if op == "pick":
        return {"port": ports.pick(request["wanted"], span=request.get("span", ports.SPAN))}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    session = SshSession(sys.argv[1])
    print(json.dumps({"ready": os.getpid()}), flush=True)
    try:
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "close":
                session.close()
                print(json.dumps({"closed": True}), flush=True)
                continue
            try:
                reply = handle(session, request)
            except HopError as exc:
                reply = {"error": exc.message, "detail": exc.detail, "auth": getattr(exc, "auth", None)}
            print(json.dumps(reply), flush=True)
    finally:
        session.close()


if __name__ == "__main__":
    main()

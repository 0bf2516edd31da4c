"""Another user squatting on a server's port, and a real Jupyter held open in the window where that can happen."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from labkit.user import TestUser

# A convincing fake: answers GET /api with 200 and Jupyter's body, says so on stdout for the test to read.
SQUATTER = '''
import http.server, sys

class Fake(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"version": "2.21.1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("answered", self.path, flush=True)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Fake)
print("listening", flush=True)
server.serve_forever()
'''

# A Jupyter server extension that holds the server where the race is: Jupyter has checked that its port is
# free (_find_http_port, during initialize) and written its runtime json (start_app), but it binds only in an
# io-loop callback queued after this one. The hold ends when the test creates `release` (or on SIGTERM, which
# Jupyter's own handler could not act on while its loop is blocked here).
WINDOW = '''
import os, signal, time
from pathlib import Path


def _jupyter_server_extension_points():
    return [{"module": "hop_window"}]


def _load_jupyter_server_extension(app):
    gate = Path(os.environ["HOP_WINDOW_DIR"])

    def hold():
        before = signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
        (gate / "held").touch()
        deadline = time.monotonic() + 120
        while not (gate / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.signal(signal.SIGTERM, before)

    app.io_loop.add_callback(hold)
'''


def _readable_dir(path: Path) -> Path:
    """`path`, created 0755, with every directory above it traversable by other users (as user_home does)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    for parent in path.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    return path


@contextlib.contextmanager
def squatter(user: TestUser, address: str, port: int, directory: Path) -> Iterator[subprocess.Popen[str]]:
    """`user` listening on (address, port) and answering 200 on /api, until the block ends."""
    script = _readable_dir(directory) / "squatter.py"
    script.write_text(SQUATTER)
    script.chmod(0o644)
    proc = user.popen(["/usr/bin/python3", str(script), address, str(port)], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, cwd="/")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        why = "" if line == "listening\n" or proc.stderr is None else proc.stderr.read()
        assert line == "listening\n", f"the squatter did not start: {line!r} {why}"
        yield proc
    finally:
        proc.kill()
        proc.wait()


class Window:
    """Environment for a launcher whose Jupyter child stops in the window between its port check and its bind."""

    def __init__(self, directory: Path) -> None:
        self.gate = _readable_dir(directory / "gate")
        os.chmod(self.gate, 0o777)  # the child (the test user) marks `held` here
        code = _readable_dir(directory / "code")
        (code / "hop_window.py").write_text(WINDOW)
        config = _readable_dir(directory / "jupyter" / "jupyter_server_config.d")
        (config / "hop_window.json").write_text('{"ServerApp": {"jpserver_extensions": {"hop_window": true}}}')
        for path in [code / "hop_window.py", config / "hop_window.json"]:
            path.chmod(0o644)
        _readable_dir(directory / "jupyter")
        self.env = {"PYTHONPATH": str(code), "JUPYTER_CONFIG_PATH": str(directory / "jupyter"),
                    "HOP_WINDOW_DIR": str(self.gate)}

    def wait_held(self, launcher: subprocess.Popen[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not (self.gate / "held").exists():
            assert launcher.poll() is None, "the launcher exited before its server reached the window"
            assert time.monotonic() < deadline, f"the server did not reach the window within {timeout} s"
            time.sleep(0.01)

    def release(self) -> None:
        (self.gate / "release").touch()

"""Launch-to-ready cases: `jupyter-hop run` until its instructions, against a bare `jupyter server` until its
first 200 on /api, and how long after the server first answers the launcher prints (its polling delay)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from run import Bench, Case
from timing import http_status, time_until_ready

READY_LINE = "Jupyter is ready"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_user(bench: Bench) -> tuple[Callable[[Sequence[str], dict[str, str]], list[str]], int, int]:
    """Jupyter refuses to run as root: as root, run everything as the lab's test user (tests/labkit/user.py)."""
    if os.getuid() != 0:
        return (lambda argv, env: ["env", "-i", *[f"{k}={v}" for k, v in env.items()], *argv]), os.getuid(), -1
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from labkit.user import ensure_user

    user = ensure_user()
    return (lambda argv, env: user.argv(argv, env)), user.uid, user.gid


def time_run_until_printed(argv: list[str], url: str, cwd: Path, timeout: float = 120) -> tuple[float, float] | None:
    """Seconds from spawn until the launcher prints its instructions, and the delay between the server's first
    200 on `url` (polled every 5 ms from here) and that line. Stops the launcher with SIGTERM, as a user would."""
    first_200: list[float] = []
    stop_polling = threading.Event()

    def poll() -> None:
        while not stop_polling.is_set():
            if http_status(url, timeout=1.0) == 200:
                first_200.append(time.perf_counter())
                return
            time.sleep(0.005)

    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    printed: float | None = None
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the launcher flushes each line
            if READY_LINE in line:
                printed = time.perf_counter()
                break
            if time.monotonic() > deadline:
                break
    finally:
        stop_polling.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the launcher's clean stop: it stops its server
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        poller.join(timeout=5)
    if printed is None:
        print("  ! jupyter-hop run printed no instructions")
        return None
    delay = printed - first_200[0] if first_200 else float("nan")
    return printed - start, delay


def cases(bench: Bench) -> list[Case]:
    wrap, uid, gid = as_user(bench)
    area = bench.base / "launch"
    for sub in ("", "config", "state", "work", "runtime"):
        (area / sub).mkdir(exist_ok=True)
        if os.getuid() == 0:
            os.chown(area / sub, uid, gid)
    bench.base.chmod(0o755)
    port = free_port()
    env = {
        "HOME": str(area),
        "XDG_CONFIG_HOME": str(area / "config"),
        "XDG_STATE_HOME": str(area / "state"),
        "JUPYTER_RUNTIME_DIR": str(area / "runtime"),
        "PATH": f"{bench.bin_dir}:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    init = [bench.exe("jupyter-hop"), "init", "launch", "--password-stdin", "--app", "server"]
    init += ["--root-dir", str(area / "work"), "--port", str(port)]
    made = subprocess.run(wrap(init, env), input="bench\n", capture_output=True, text=True, cwd=area, timeout=60)
    if made.returncode != 0:
        raise RuntimeError(f"cannot create the launch profile: {made.stderr.strip()}")
    config = area / "config" / "jupyter-hop" / "servers" / "launch" / "jupyter_server_config.py"
    url = f"http://127.0.0.1:{port}/api"
    bare = wrap(
        [
            bench.exe("jupyter"),
            "server",
            f"--config={config}",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
        ],
        env,
    )
    run = wrap([bench.exe("jupyter-hop"), "run", "launch"], env)
    delays: list[float] = []

    def measure_run() -> float | None:
        result = time_run_until_printed(run, url, area)
        if result is None:
            return None
        delays.append(result[1])
        return result[0]

    def last_delay() -> float | None:
        # reported as its own row: the polling delay of the run measured just before, in the same round
        return delays[-1] if delays and delays[-1] == delays[-1] else None

    bare_name = "bare jupyter server to first 200 on /api"
    return [
        Case(bare_name, lambda: time_until_ready(bare, url, {"PATH": "/usr/bin:/bin"}, area), against=None),
        Case("jupyter-hop run to printed instructions", measure_run, against=bare_name),
        Case("  of which: printed after first 200", last_delay, against=None),
    ]

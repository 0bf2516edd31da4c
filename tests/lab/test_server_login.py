"""A real jupyter server and jupyter lab load the generated config: password login works, tokens do not."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit.hoptree import all_files
from labkit.http_login import Session, login, wrong_password_status
from labkit.user import TestUser

PASSWORD = "s3cret 'quote\" \\ ünï"  # quotes, a backslash, unicode: must survive hashing and stdin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hop(test_user: TestUser, area: dict[str, str], args: list[str], stdin: str | None = None) -> str:
    done = test_user.run([str(test_user.venv_bin / "jupyter-hop"), *args], env=area, input=stdin)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


class Server:
    def __init__(self, proc: subprocess.Popen[str], base_url: str, log: Path, area: dict[str, str]) -> None:
        self.proc, self.base_url, self.log, self.area = proc, base_url, log, area

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text(errors="replace")


def start(test_user: TestUser, area: dict[str, str], app: str, config: Path) -> Server:
    """Start the app as the test user on a port chosen here; another port if that one was taken meanwhile."""
    work = Path(area["WORK_DIR"])
    runtime = work / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.chown(runtime, test_user.uid, test_user.gid)
    env = {**area, "JUPYTER_RUNTIME_DIR": str(runtime)}
    for attempt in range(3):
        port = free_port()
        log = work.parent / f"{app}-{attempt}.log"
        argv = [
            str(test_user.venv_bin / "jupyter"),
            app,
            f"--config={config}",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
        ]
        with log.open("w") as out:
            proc = test_user.popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        srv = Server(proc, f"http://127.0.0.1:{port}/", log, area)
        deadline = time.monotonic() + 120  # lab needs ~3 s alone, much more when other test runs load the machine
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if Session(srv.base_url, timeout=2.0).request("GET", "api")[0] == 200:
                    return srv
            except OSError:
                pass
            time.sleep(0.05)
        text = srv.stop()
        if "already in use" not in text:
            pytest.fail(f"jupyter {app} did not answer on /api within the deadline:\n{text[-3000:]}")
    pytest.fail(f"jupyter {app}: three free ports were taken before the server bound them")


@pytest.fixture(scope="module", params=["server", "lab"])
def server(
    request: pytest.FixtureRequest, test_user: TestUser, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real `jupyter server` / `jupyter lab` as the test user, with --config=<the generated .py>."""
    area = make_area(test_user, tmp_path_factory.mktemp(f"login-{request.param}"))
    hop(test_user, area, ["init", "p", "--password-stdin", "--root-dir", area["WORK_DIR"]], PASSWORD + "\n")
    srv = start(test_user, area, request.param, server_config(area))
    try:
        yield srv
    finally:
        srv.stop()


def make_area(test_user: TestUser, base: Path) -> dict[str, str]:
    """XDG config and state dirs and a work dir owned by the test user, under a base it can reach."""
    for parent in [base, *base.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    area = {}
    for sub, key in (("config", "XDG_CONFIG_HOME"), ("state", "XDG_STATE_HOME"), ("work", "WORK_DIR")):
        (base / sub).mkdir()
        os.chown(base / sub, test_user.uid, test_user.gid)
        area[key] = str(base / sub)
    return area


def server_config(area: dict[str, str], name: str = "p") -> Path:
    return Path(area["XDG_CONFIG_HOME"]) / "jupyter-hop" / "servers" / name / "jupyter_server_config.py"


@pytest.mark.lab
def test_password_login(server: Server) -> None:
    assert login(server.base_url, PASSWORD) == 200


@pytest.mark.lab
def test_wrong_password_is_401(server: Server) -> None:
    assert wrong_password_status(server.base_url, PASSWORD + "x") == 401
    assert wrong_password_status(server.base_url, "") == 401


@pytest.mark.lab
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("api/status?token=", {}),
        ("api/status?token=anything", {}),
        ("api/status", {"Authorization": "token anything"}),
        ("api/status", {"Authorization": "token "}),
        ("api/status", {"Authorization": "Bearer anything"}),
    ],
    ids=["empty-query", "query", "header", "empty-header", "bearer"],
)
def test_token_login_refused(server: Server, path: str, headers: dict[str, str]) -> None:
    status, _, _ = Session(server.base_url).request("GET", path, headers=headers)
    assert status in (401, 403), f"GET {path} {headers} answered {status}: a token got in"
    # and a token on a page URL does not log in either (no session cookie set)
    session = Session(server.base_url)
    session.request("GET", "lab?token=anything")
    assert not any(name.startswith("username-") for name in session.cookies)


@pytest.mark.lab
def test_server_log_has_no_deprecation(server: Server) -> None:
    assert login(server.base_url, PASSWORD) == 200
    log = server.log.read_text(errors="replace")
    assert "http://" in log or "Jupyter Server" in log, f"the log is not the server's:\n{log[-2000:]}"
    bad = [line for line in log.splitlines() if re.search(r"deprecat", line, re.IGNORECASE)]
    assert not bad, "deprecation warnings in the server log:\n" + "\n".join(bad)


@pytest.mark.lab
def test_modes_and_no_clear_password(server: Server, test_user: TestUser) -> None:
    assert login(server.base_url, PASSWORD) == 200
    user_home = server.area
    hop_config = Path(user_home["XDG_CONFIG_HOME"]) / "jupyter-hop"
    for path in [hop_config, *hop_config.rglob("*")]:
        info = path.lstat()
        assert info.st_uid == test_user.uid, f"{path} is not owned by the test user"
        want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        assert stat.S_IMODE(info.st_mode) == want, f"{path} has mode {oct(stat.S_IMODE(info.st_mode))}"
    secret = PASSWORD.encode()
    base = Path(user_home["XDG_CONFIG_HOME"]).parent  # config, state, work (runtime files) and the server log
    files = all_files(base)
    assert len(files) >= 4
    leaks = [str(f) for f in files if secret in f.read_bytes()]
    assert not leaks, f"the clear password is in {leaks}"
    config = (hop_config / "servers" / "p" / "jupyter_server_config.py").read_text()
    assert "c.PasswordIdentityProvider.hashed_password = 'argon2:$argon2" in config
    assert "ServerApp.password" not in config and "ServerApp.token" not in config
    assert not (hop_config / "servers" / "p" / "jupyter_server_config.json").exists()


@pytest.mark.lab
def test_changed_password_is_the_one_a_restarted_server_takes(test_user: TestUser, tmp_path: Path) -> None:
    area = make_area(test_user, tmp_path)
    hop(test_user, area, ["init", "q", "--password-stdin", "--root-dir", area["WORK_DIR"]], "old one\n")
    hop(test_user, area, ["password", "q", "--password-stdin"], "new one\n")
    srv = start(test_user, area, "server", server_config(area, "q"))
    try:
        assert wrong_password_status(srv.base_url, "old one") == 401
        assert login(srv.base_url, "new one") == 200
    finally:
        srv.stop()

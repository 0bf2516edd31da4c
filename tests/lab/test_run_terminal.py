"""`jupyter-hop run` on a real terminal: Jupyter's chatter goes to a log file, its warnings and errors still show,
and the instructions are the last thing on the screen; without a terminal everything passes through as before."""

from __future__ import annotations

import http.client
import json
import re
import stat
import time
from pathlib import Path

import pytest
from labkit.launch import init_profile, start_launcher
from labkit.terminal import Terminal
from labkit.user import TestUser

pytestmark = pytest.mark.lab

JUPYTER_LINE = re.compile(r"^\[([A-Z]) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.MULTILINE)
# traitlets warns about a trait ServerApp does not have, at start-up, before the server is ready
UNKNOWN_OPTION = '"ServerApp.quiet_test_no_such_option" = 1'
UNKNOWN_WARNING = "Config option `quiet_test_no_such_option` not recognized by `ServerApp`"


def add_options(env: dict[str, str], name: str, *lines: str) -> None:
    path = Path(env["XDG_CONFIG_HOME"]) / "jupyter-hop" / "profiles" / f"{name}.toml"
    text = path.read_text()
    assert "\n[ssh]\n" in text
    path.write_text(text.replace("\n[ssh]\n", "\n[server.options]\n" + "\n".join(lines) + "\n\n[ssh]\n", 1))


def record(env: dict[str, str]) -> dict[str, object]:
    files = list((Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "records").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())  # type: ignore[no-any-return]


def run_log(env: dict[str, str], name: str, host: str) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "jupyter-hop" / "logs" / f"run-{name}@{host}.log"


def wait_ready(term: Terminal, env: dict[str, str]) -> tuple[str, dict[str, object]]:
    """The screen once the instructions' last line is complete, and the server's record."""
    term.wait_for("Stop it: jupyter hop stop ")
    rec = record(env)
    return term.wait_for(f"Stop it: jupyter hop stop {rec['host']}-{rec['pid']}\n"), rec


def get(port: object, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", int(str(port)), timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def wait_for_file_text(path: Path, wanted: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while wanted not in (text := path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{wanted!r} not in {path}:\n{text}"
        time.sleep(0.05)
    return text


def jupyter_levels(text: str) -> list[str]:
    return JUPYTER_LINE.findall(text)


def test_lab_on_a_terminal_shows_warnings_and_ends_with_the_instructions(
    test_user: TestUser, user_home: dict[str, str]
) -> None:
    init_profile(test_user, user_home, "p", "--app", "lab")
    add_options(user_home, "p", UNKNOWN_OPTION)
    term = Terminal(test_user, ["jupyter-hop", "run", "p"], user_home)
    try:
        screen, rec = wait_ready(term, user_home)
        log = run_log(user_home, "p", str(rec["host"]))
        assert screen.startswith(f"jupyter-hop: starting Jupyter; its whole log: {log}\n"), screen
        before, block = screen.split("Jupyter is ready on ", 1)
        # a warning from before ready reaches the terminal (once per extension app that loads the config)
        warnings = [line for line in before.splitlines() if JUPYTER_LINE.match(line)]
        assert warnings and all(line.startswith("[W ") and UNKNOWN_WARNING in line for line in warnings), screen
        assert jupyter_levels(block) == [], screen
        # After ready: a redirect is logged as INFO (log file only), a 404 as a WARNING (terminal too).
        assert get(rec["port"], "/") == 302
        assert get(rec["port"], "/api/quiet-test-missing") == 404
        wait_for_file_text(log, "Skipped non-installed server(s)")  # jupyter_lsp's INFO line, just after ready
        text = wait_for_file_text(log, "404 GET /api/quiet-test-missing")
        screen = term.wait_for("404 GET /api/quiet-test-missing")
        assert "302 GET / " in text
        after = screen.split(block, 1)[1]
        assert jupyter_levels(after) == ["W"] and "404 GET /api/quiet-test-missing" in after, screen
        # The log file holds all of it, privately.
        assert stat.S_IMODE(log.stat().st_mode) == 0o600 and stat.S_IMODE(log.parent.stat().st_mode) == 0o700
        assert log.stat().st_uid == test_user.uid
        assert UNKNOWN_WARNING in text and "is running at" in text and "extension was successfully loaded" in text
        assert jupyter_levels(text).count("I") >= 10, text
        term.interrupt()
        assert term.wait_exit() == 0
        assert "I" not in jupyter_levels(term.text), term.text
    finally:
        term.close()


def test_verbose_shows_the_whole_log_live_and_no_token_is_logged(
    test_user: TestUser, user_home: dict[str, str]
) -> None:
    init_profile(test_user, user_home, "p", "--app", "server", password=None)
    term = Terminal(test_user, ["jupyter-hop", "run", "p", "--verbose"], user_home)
    try:
        screen, rec = wait_ready(term, user_home)
        before = screen.split("Jupyter is ready on ", 1)[0]
        assert "is running at" in before and jupyter_levels(before).count("I") >= 3, screen
        token = str(rec["token"])
        assert len(token) >= 32
        assert token in screen.split("Jupyter is ready on ", 1)[1], "on a terminal, the instructions show the token"
        assert all(token not in line for line in screen.splitlines() if JUPYTER_LINE.match(line)), screen
        log = run_log(user_home, "p", str(rec["host"]))
        text = wait_for_file_text(log, "is running at")
        assert token not in text, "the token reaches Jupyter through a file, never its log"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        term.close()
    assert token not in log.read_text()


def test_a_failed_start_shows_the_tail_and_names_the_log(test_user: TestUser, user_home: dict[str, str]) -> None:
    init_profile(test_user, user_home, "p", "--app", "server")
    add_options(user_home, "p", '"ServerApp.max_body_size" = "not a number"')
    term = Terminal(test_user, ["jupyter-hop", "run", "p"], user_home)
    try:
        assert term.wait_exit() != 0
        screen = term.text
        logs = list((Path(user_home["XDG_STATE_HOME"]) / "jupyter-hop" / "logs").glob("run-p@*.log"))
        assert len(logs) == 1, logs
        assert "jupyter-hop: error: the Jupyter server exited with code" in screen, screen
        assert "Last lines of the server log:" in screen
        assert screen.rstrip("\n").endswith(f"The whole server log: {logs[0]}"), screen
        assert "max_body_size" in logs[0].read_text()
    finally:
        term.close()


def test_without_a_terminal_everything_passes_through(test_user: TestUser, user_home: dict[str, str]) -> None:
    """What a unit's journal or a job's log gets: the whole server log on stderr, and no second copy in a file."""
    init_profile(test_user, user_home, "p", "--app", "server")
    launcher = start_launcher(test_user, user_home, "p")
    try:
        launcher.wait_ready()
        err = launcher.err
        assert "is running at" in err and jupyter_levels(err).count("I") >= 3, err
        assert "its whole log" not in err
        assert not (Path(user_home["XDG_STATE_HOME"]) / "jupyter-hop" / "logs").exists()
    finally:
        launcher.stop()

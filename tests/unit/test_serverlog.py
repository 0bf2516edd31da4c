"""The server's output on a terminal: which lines are chatter, which are news, and where the whole log goes."""

from __future__ import annotations

import io
import logging
import os
import stat
import sys
from pathlib import Path

import pytest
from tornado.log import LogFormatter

from jupyter_hop.paths import Paths
from jupyter_hop.server import serverlog
from jupyter_hop.server.serverlog import ServerOutput, level, shown

# What `jupyter lab` printed on start-up here, then a warning, as the launcher's pipe gets it (no colours).
START = """\
[I 2026-12-01 22:10:25.444 ServerApp] jupyter_lsp | extension was successfully linked.
[I 2026-12-01 22:10:25.559 LabApp] JupyterLab application directory is /opt/venv/share/jupyter/lab
[W 2026-12-01 22:10:25.560 ServerApp] Config option `bogus` not recognized by `ServerApp`.
[I 2026-12-01 22:10:25.644 ServerApp] Jupyter Server 2.21.1 is running at:
[I 2026-12-01 22:10:25.644 ServerApp] http://127.0.0.1:35067/lab
[I 2026-12-01 22:10:25.919 ServerApp] Skipped non-installed server(s): basedpyright, bash-language-server
[C 2026-12-01 22:10:29.727 ServerApp] received signal 15, stopping
"""
# tornado's own colours, as it writes them when its stderr is a terminal (TERM=xterm, captured from a pty).
COLOURED_WARNING = "\x1b[33m[W 2026-12-01 22:49:20.573 ServerApp]\x1b(B\x1b[m a warning\n"
COLOURED_INFO = "\x1b[32m[I 2026-12-01 22:49:20.574 ServerApp]\x1b(B\x1b[m info\n"
JUPYTER_FORMAT = "%(color)s[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s]%(end_color)s %(message)s"


def levels(text: str) -> list[str]:
    found, previous = [], ""
    for line in text.splitlines(keepends=True):
        previous = level(line, previous)
        found.append(previous)
    return found


def test_levels_of_jupyter_log_lines() -> None:
    assert levels(START) == ["I", "I", "W", "I", "I", "I", "C"]
    assert [shown(x) for x in "DIWEC"] == [False, False, True, True, True]
    assert level("[D 2026-12-01 22:10:25.444 ServerApp] 200 GET /api\n", "") == "D"


def test_colour_codes_do_not_hide_the_level() -> None:
    assert level(COLOURED_WARNING, "I") == "W"
    assert level(COLOURED_INFO, "W") == "I"


def test_continuations_belong_to_the_line_before() -> None:
    text = (
        "[E 2026-12-01 22:00:00.123 ServerApp] Uncaught exception\n"
        "    Traceback (most recent call last):\n"
        '      File "x.py", line 1, in <module>\n'
        "    ZeroDivisionError: division by zero\n"
        "\n"
        "[I 2026-12-01 22:00:01.000 ServerApp] Kernel started\n"
        "    with a second line\n"
        "\n"
    )
    assert levels(text) == ["E", "E", "E", "E", "E", "I", "I", "I"]


def test_lines_that_are_not_jupyters_log_are_shown() -> None:
    text = (
        "[I 2026-12-01 22:00:01.000 ServerApp] something\n"
        "/opt/venv/lib/python3.11/site-packages/ext.py:12: DeprecationWarning: old API\n"
        "  warnings.warn(\n"
        "Segmentation fault\n"
    )
    assert levels(text) == ["I", "?", "?", "?"]
    assert shown("?")
    # indented, or blank, at the very start: there is no line to belong to
    assert level("    File x\n", "") == "?" and level("\n", "") == "?"


def test_real_tornado_records_classify() -> None:
    """Records formatted by tornado's LogFormatter with Jupyter's format, as the server writes them to a pipe."""
    # color=False: what tornado does when the server's stderr is not a terminal (the launcher's pipe never is)
    formatter = LogFormatter(fmt=JUPYTER_FORMAT, datefmt="%Y-%m-%d %H:%M:%S", color=False)
    try:
        1 / 0
    except ZeroDivisionError:
        error = logging.LogRecord("ServerApp", logging.ERROR, "x.py", 1, "failed\nsecond line", None, sys.exc_info())
    info = logging.LogRecord("LabApp", logging.INFO, "x.py", 1, "loaded", None, None)
    text = formatter.format(error) + "\n" + formatter.format(info) + "\n"
    found = levels(text)
    assert found[0] == "E" and set(found[:-1]) == {"E"} and len(found) >= 5, text
    assert found[-1] == "I"


def test_terminal_gets_news_and_the_log_gets_everything() -> None:
    terminal, log = io.StringIO(), io.StringIO()
    output = ServerOutput(terminal, log, None, everything=False)
    for line in START.splitlines(keepends=True):
        output.write(line)
    assert log.getvalue() == START
    assert terminal.getvalue() == (
        "[W 2026-12-01 22:10:25.560 ServerApp] Config option `bogus` not recognized by `ServerApp`.\n"
        "[C 2026-12-01 22:10:29.727 ServerApp] received signal 15, stopping\n"
    )
    verbose = io.StringIO()
    output = ServerOutput(verbose, io.StringIO(), None, everything=True)
    for line in START.splitlines(keepends=True):
        output.write(line)
    assert verbose.getvalue() == START


def paths_in(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path / "config", state_dir=tmp_path / "state", runtime_base=tmp_path / "run")


def test_not_a_terminal_passes_everything_and_writes_no_file(tmp_path: Path) -> None:
    """A unit's journal or a job's log keeps the whole server log, as before: nothing filtered, no extra file."""
    err = io.StringIO()
    output = serverlog.for_launch(paths_in(tmp_path), "p", "ws1", err, verbose=False)
    for line in START.splitlines(keepends=True):
        output.write(line)
    assert err.getvalue() == START
    assert output.path is None and output.log_path is None
    assert not (tmp_path / "state").exists()


@pytest.fixture
def terminal() -> io.TextIOWrapper:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    handle = os.fdopen(slave, "w", encoding="utf-8")
    yield handle
    handle.close()
    os.close(master)


def test_on_a_terminal_a_private_log_file_replaced_per_launch(tmp_path: Path, terminal: io.TextIOWrapper) -> None:
    paths = paths_in(tmp_path)
    first = serverlog.for_launch(paths, "p", "ws1", terminal, verbose=False)
    expected = tmp_path / "state" / "logs" / "run-p@ws1.log"
    assert first.path == expected and first.log_path == expected and not first.everything
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600
    assert stat.S_IMODE(expected.parent.stat().st_mode) == 0o700
    first.write("[I 2026-12-01 22:10:25.444 ServerApp] first launch\n")
    assert expected.read_text() == "[I 2026-12-01 22:10:25.444 ServerApp] first launch\n"
    second = serverlog.for_launch(paths, "p", "ws1", terminal, verbose=True)
    assert second.everything and expected.read_text() == ""
    assert first.log_path is None, "the first launch's file was replaced: its errors must not name the path"
    assert second.log_path == expected
    assert [p.name for p in expected.parent.iterdir()] == ["run-p@ws1.log"]  # no temp file left
    first.close()
    second.close()
    second.write("after close: dropped, no exception\n")


class FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


def test_a_log_that_cannot_be_written_sends_the_rest_to_the_terminal() -> None:
    terminal = io.StringIO()
    output = ServerOutput(terminal, FullDisk(), Path("/state/logs/run-p@ws1.log"), everything=False)
    output.write("[I 2026-12-01 22:10:25.444 ServerApp] one\n")
    output.write("[I 2026-12-01 22:10:25.445 ServerApp] two\n")
    assert terminal.getvalue() == (
        "jupyter-hop: warning: cannot write /state/logs/run-p@ws1.log (No space left on device); "
        "the rest of the server log shows here\n"
        "[I 2026-12-01 22:10:25.444 ServerApp] one\n"
        "[I 2026-12-01 22:10:25.445 ServerApp] two\n"
    )

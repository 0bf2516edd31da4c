"""The systemctl/loginctl edges on literal tool output: parsing, lingering advice, where units go."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jupyter_hop.systemd import systemctl

SHOW = """LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
FragmentPath=/home/alice/.config/systemd/user/jupyter-hop-lab.service
MainPID=4242
NRestarts=1
ActiveEnterTimestamp=@1795671798
Result=success
Environment=A=b=c
"""


def test_parse_show() -> None:
    state = systemctl.parse_show(SHOW)
    assert state["MainPID"] == "4242" and state["Environment"] == "A=b=c"
    assert systemctl.since_epoch(state) == 1795671798.0
    assert systemctl.format_since(1795671798.0) == "2026-11-26 05:43:18 UTC"


@pytest.mark.parametrize("stamp", ["", "n/a", "@0", "Thu 2026-11-26 05:43:18 UTC"])
def test_since_when_never_active(stamp: str) -> None:
    assert systemctl.since_epoch({"ActiveEnterTimestamp": stamp}) is None


def test_unit_dir_follows_the_manager() -> None:
    home = Path("/home/alice")
    assert systemctl.unit_dir({}, home) == home / ".config/systemd/user"
    assert systemctl.unit_dir({"HOME": "/h"}, home) == Path("/h/.config/systemd/user")
    assert systemctl.unit_dir({"XDG_CONFIG_HOME": "/cfg", "HOME": "/h"}, home) == Path("/cfg/systemd/user")


def _no_logind(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert argv[:2] == ["loginctl", "show-user"]
        return subprocess.CompletedProcess(argv, 1, "", "Failed to connect to bus: No such file or directory\n")

    monkeypatch.setattr(systemctl.subprocess, "run", fake_run)


def test_linger_from_logind(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "no\n", "")

    monkeypatch.setattr(systemctl.subprocess, "run", fake_run)
    linger = systemctl.linger("alice")
    assert linger == systemctl.Linger("no", "loginctl")
    assert linger.advice("alice") == (
        "alice does not linger, so the server stops when you log out; keep it running: loginctl enable-linger alice"
    )


def test_linger_from_the_linger_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_logind(monkeypatch)
    monkeypatch.setattr(systemctl, "LINGER_DIR", tmp_path)
    assert systemctl.linger("alice").state == "no"
    (tmp_path / "alice").touch()
    linger = systemctl.linger("alice")
    assert linger.state == "yes" and linger.advice("alice") == ""


def test_linger_unknown_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_logind(monkeypatch)
    monkeypatch.setattr(systemctl, "LINGER_DIR", tmp_path / "missing")
    advice = systemctl.linger("alice").advice("alice")
    assert advice == (
        "cannot tell whether alice lingers (loginctl: Failed to connect to bus: No such file or directory); "
        "without lingering the server stops at logout: loginctl enable-linger alice"
    )


def test_no_runtime_dir_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_hop.errors import HopError

    with pytest.raises(HopError, match=r"^XDG_RUNTIME_DIR is not set, so systemctl --user cannot find"):
        systemctl.require_manager({})

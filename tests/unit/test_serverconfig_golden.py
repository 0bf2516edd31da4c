"""The generated jupyter_server_config.py per variant, compared with golden files (JUPYTER_HOP_UPDATE_GOLDEN=1
rewrites them), and the file jupyter-hop writes: 0600 in a 0700 dir, rewritten only when it changes."""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.profile import model as prof
from jupyter_hop.server import serverconfig

GOLDEN = Path(__file__).parent / "golden" / "serverconfig"
UPDATE = os.environ.get("JUPYTER_HOP_UPDATE_GOLDEN") == "1"
HASH = "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
ROOT = Path("/home/alice/notebooks")

VARIANTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "password": ({}, HASH),
    "token": ({}, None),
    "idle-options": (
        {
            "idle_timeout": 3600,
            "options": {
                "ServerApp.max_body_size": 1073741824,
                "ContentsManager.allow_hidden": True,
                "ServerApp.terminado_settings": {"shell_command": ["/bin/bash", "-l"]},
                "FileContentsManager.delete_to_trash": False,
            },
        },
        HASH,
    ),
    "weird-root": ({"root_dir": '/home/alice/it\'s "x" \\ ünï'}, HASH),
}


def rendered(variant: str) -> str:
    server, hashed = VARIANTS[variant]
    profile = prof.from_dict("alice", {"server": {"root_dir": str(ROOT), **server}})
    return serverconfig.render(profile, hashed, Path(profile.server.root_dir))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_golden(variant: str) -> None:
    text = rendered(variant)
    path = GOLDEN / f"{variant}.py.txt"  # not .py: linters would check the generated text
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "golden", "rendered"))
    assert text == expected, "rendered config differs from the golden file:\n" + diff


def test_no_deprecated_names_in_any_variant() -> None:
    for variant in VARIANTS:
        text = rendered(variant)
        for name in ("ServerApp.password", "ServerApp.token", "NotebookApp.", "ServerApp.allow_root"):
            assert name not in text, f"{variant}: {name}"


def test_write_is_private_and_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "nb"
    root.mkdir()
    paths = Paths(tmp_path / "config" / "jupyter-hop", tmp_path / "state" / "jupyter-hop", tmp_path / "run")
    profile = prof.from_dict("p", {"server": {"root_dir": str(root)}})
    written = serverconfig.write(paths, profile)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    for directory in (written.parent, written.parent.parent, paths.config_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    before = written.stat()
    serverconfig.write(paths, profile)
    after = written.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns), "unchanged config rewritten"
    assert sorted(p.name for p in written.parent.iterdir()) == ["jupyter_server_config.py"]  # no temp files left


def test_write_refuses_a_stray_json(tmp_path: Path) -> None:
    root = tmp_path / "nb"
    root.mkdir()
    paths = Paths(tmp_path / "config" / "jupyter-hop", tmp_path / "state" / "jupyter-hop", tmp_path / "run")
    profile = prof.from_dict("p", {"server": {"root_dir": str(root)}})
    written = serverconfig.write(paths, profile)
    stray = written.with_suffix(".json")
    stray.write_text("{}")
    before = written.read_bytes()
    with pytest.raises(HopError, match=r"jupyter_server_config\.json"):
        serverconfig.write(paths, prof.from_dict("p", {"server": {"root_dir": str(root), "idle_timeout": 60}}))
    assert written.read_bytes() == before

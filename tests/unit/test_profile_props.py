"""Property tests: values written into a profile by `init` (tomlkit) read back exactly (tomllib), or are
refused with a one-line error; the user's own lines survive every update."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_hop import fields
from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.profile import store

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
UPDATES = st.fixed_dictionaries(
    {},
    optional={
        "root_dir": TEXT,
        "app": st.sampled_from(fields.APPS) | TEXT,
        "bind": st.sampled_from(fields.BINDS) | TEXT,
        "port": st.integers(-(2**63), 2**63 - 1),
        "local_port": st.integers(-5, 70000),
    },
)
SSH = st.fixed_dictionaries({}, optional={"login_host": TEXT, "user": TEXT})


def paths_in(base: str) -> Paths:
    return Paths(Path(base) / "config", Path(base) / "state", Path(base) / "run")


@settings(max_examples=300, deadline=None)
@given(server=UPDATES, ssh=SSH)
def test_updates_read_back_exactly_or_are_refused(server: dict[str, Any], ssh: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as base:
        paths = paths_in(base)
        try:
            text, profile = store.updated(paths, "p", {"server": server, "ssh": ssh})
        except HopError as exc:
            assert "\n" not in exc.message and exc.message
            return
        again = store.parse("p", text)
        assert again == profile
        for key, value in server.items():
            assert getattr(profile.server, key) == value and type(getattr(profile.server, key)) is type(value)
        for key, value in ssh.items():
            assert getattr(profile.ssh, {"user": "user"}.get(key, key)) == value


@settings(max_examples=150, deadline=None)
@given(comment=TEXT.filter(lambda s: "\n" not in s and "\r" not in s), root=TEXT)
def test_user_lines_survive_updates(comment: str, root: str) -> None:
    with tempfile.TemporaryDirectory() as base:
        paths = paths_in(base)
        text, _ = store.updated(paths, "p", {"server": {"local_port": 9000}})
        own = f"# {comment}\n"
        if 'partition = ""' in text:  # init writes every section with its defaults
            text = text.replace('partition = ""', 'partition = "gpu" # keep me', 1)
        else:
            text += '\n[slurm]\npartition = "gpu" # keep me\n'
        store.write(paths, "p", own + text)
        try:
            new_text, profile = store.updated(paths, "p", {"server": {"root_dir": root}})
        except HopError as exc:  # a comment with control characters is not TOML: refused in one line
            assert "\n" not in exc.message
            return
        assert new_text.startswith(own)
        assert 'partition = "gpu" # keep me' in new_text
        assert profile.slurm.partition == "gpu" and profile.server.local_port == 9000
        assert profile.server.root_dir == root

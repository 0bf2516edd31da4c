"""Profiles through the real CLI: updates keep the user's comments, passwords are hashed, values round-trip."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from labkit.hoptree import HopTree, all_files

from jupyter_hop import fields
from jupyter_hop.errors import HopError
from jupyter_hop.paths import Paths
from jupyter_hop.profile import store
from jupyter_hop.server import password as pw


@pytest.fixture
def tree(tmp_path: Path) -> HopTree:
    return HopTree.make(tmp_path)


def ok(tree: HopTree, args: list[str], stdin: str | None = None) -> str:
    done = tree.hop(args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def stored_hash(tree: HopTree, name: str) -> str:
    return (tree.server_dir(name) / "password").read_text().strip()


def test_init_creates_private_files_and_a_verifiable_hash(tree: HopTree) -> None:
    out = ok(tree, ["init", "--password-stdin", "--root-dir", str(tree.work)], stdin="pa ss\n")
    assert "Created profile 'default'" in out
    hashed = stored_hash(tree, "default")
    assert hashed.startswith("argon2:$argon2id$")
    assert pw.verify(hashed, "pa ss") and not pw.verify(hashed, "pa ss\n") and not pw.verify(hashed, "pass")
    for path in all_files(tree.base / "config"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert b"pa ss" not in path.read_bytes()


def test_password_stdin_strips_exactly_one_line_ending(tree: HopTree) -> None:
    ok(tree, ["init", "a", "--password-stdin", "--root-dir", "."], stdin="x y \r\n")
    assert pw.verify(stored_hash(tree, "a"), "x y ")
    ok(tree, ["init", "b", "--password-stdin", "--root-dir", "."], stdin="no newline")
    assert pw.verify(stored_hash(tree, "b"), "no newline")


def test_update_keeps_comments_order_and_password(tree: HopTree) -> None:
    ok(tree, ["init", "p", "--password-stdin", "--root-dir", str(tree.work)], stdin="first\n")
    path = tree.profile("p")
    text = path.read_text()
    text = "# my own notes\n" + text
    if "[slurm]" in text:  # init writes every section with its defaults
        text = re.sub(r"(?m)^partition = .*$", 'partition = "gpu"  # the fast one', text)
        text = text.replace("[slurm]", "[slurm]  # cluster bits")
    else:
        text += '\n[slurm]  # cluster bits\npartition = "gpu"  # the fast one\n'
    path.write_text(text)
    hashed = stored_hash(tree, "p")
    ok(tree, ["init", "p", "--local-port", "9999", "--login-host", "login1"])
    after = path.read_text()
    for kept in ("# my own notes", "# cluster bits", 'partition = "gpu"  # the fast one'):
        assert kept in after
    assert after.index("[server]") < after.index("[slurm]")
    assert stored_hash(tree, "p") == hashed, "an update without --password-stdin changed the password"
    loaded = store.load(Paths.from_env(tree.env()), "p")
    assert (loaded.server.local_port, loaded.ssh.login_host, loaded.slurm.partition) == (9999, "login1", "gpu")


def test_password_command_replaces_hash_and_config(tree: HopTree) -> None:
    ok(tree, ["init", "p", "--password-stdin", "--root-dir", str(tree.work)], stdin="old\n")
    old = stored_hash(tree, "p")
    ok(tree, ["password", "p", "--password-stdin"], stdin="new\n")
    new = stored_hash(tree, "p")
    assert new != old and pw.verify(new, "new") and not pw.verify(new, "old")
    config = (tree.server_dir("p") / "jupyter_server_config.py").read_text()
    assert repr(new) in config and old not in config


def test_no_password_then_password(tree: HopTree) -> None:
    ok(tree, ["init", "t", "--no-password", "--root-dir", str(tree.work)])
    config = (tree.server_dir("t") / "jupyter_server_config.py").read_text()
    assert "hashed_password" not in config and "IdentityProvider.token" not in config
    assert not (tree.server_dir("t") / "password").exists()
    ok(tree, ["password", "t", "--password-stdin"], stdin="later\n")
    config = (tree.server_dir("t") / "jupyter_server_config.py").read_text()
    assert "c.IdentityProvider.token = ''" in config


def test_config_json_shows_paths_and_modes(tree: HopTree) -> None:
    import json

    ok(tree, ["init", "p", "--password-stdin", "--root-dir", str(tree.work)], stdin="pw\n")
    info = json.loads(ok(tree, ["config", "p", "--json"]))
    assert info["password_set"] is True
    assert info["profile"]["path"] == str(tree.profile("p"))
    assert info["server_config"]["mode"] == "0o600"
    assert "pw" not in json.dumps(info["profile"])


def test_config_shows_that_a_password_is_set_never_the_hash(tree: HopTree) -> None:
    """`config` output ends up in bug reports: text and JSON say "set (argon2)" and hold no part of the hash."""
    import json

    ok(tree, ["init", "p", "--password-stdin", "--root-dir", str(tree.work)], stdin="pw\n")
    hashed = stored_hash(tree, "p")
    assert repr(hashed) in (tree.server_dir("p") / "jupyter_server_config.py").read_text()  # the file keeps it
    # argon2:$argon2id$v=19$m=...,t=...,p=...$SALT$DIGEST: the whole, the parameters+salt+digest, each of them
    salt, digest = hashed.split("$")[-2:]
    parts = [hashed, hashed.split("$", 2)[2], salt, digest, salt[:8], digest[:8], digest[-8:]]
    text = ok(tree, ["config", "p"])
    shown = ok(tree, ["config", "p", "--json"])
    info = json.loads(shown)
    for output in (text, shown):
        leaks = [part for part in parts if part in output]
        assert not leaks, f"hash parts shown: {leaks}"
        assert "c.PasswordIdentityProvider.hashed_password = '(argon2 hash, not shown)'" in output
    assert "Password: set (argon2); the hash is in " in text
    assert (info["password"], info["password_set"]) == ("set (argon2)", True)
    print(f"hash parts looked for in text and JSON output: {len(parts)}, found: 0")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nport = 1\nport = 2\n", "not valid TOML"),
        ("[server]\nport = 8888.0\n", "server.port"),
        ("[server]\noptions = 3\n", "server.options"),
        ('[ssh]\nuser = "root;id"\n', "ssh.user"),
        ('[systemd]\nenvironment = {"1X" = "a"}\n', "systemd.environment"),
        ('[slurm]\nsetup = "module load x"\n', "slurm.setup"),
        ('[server.options]\n"ServerApp.ip" = "0.0.0.0"\n', "ServerApp.ip"),
        ('[server.options]\n"ServerApp.x" = nan\n', "ServerApp.x"),
    ],
)
def test_parse_errors_name_the_key(text: str, needle: str) -> None:
    with pytest.raises(HopError) as caught:
        store.parse("x", text, "x.toml")
    assert needle in caught.value.message and "\n" not in caught.value.message


def test_defaults_round_trip() -> None:
    profile = store.parse("d", "")
    assert profile.server.bind == "localhost" and profile.server.port == 0 and profile.server.local_port == 8888
    assert profile.server.app in fields.APPS


def test_relative_root_dir_is_stored_absolute(tree: HopTree) -> None:
    (tree.work / "sub").mkdir()
    ok(tree, ["init", "r", "--no-password", "--root-dir", "sub/../sub"])
    profile = store.load(Paths.from_env(tree.env()), "r")
    assert profile.server.root_dir == str(tree.work / "sub")
    ok(tree, ["init", "h", "--no-password", "--root-dir", "~"])
    assert store.load(Paths.from_env(tree.env()), "h").server.root_dir == "~"  # expanded when rendered


def test_relative_root_dir_in_a_profile_is_refused() -> None:
    with pytest.raises(HopError, match="absolute path"):
        store.parse("x", '[server]\nroot_dir = "notebooks"\n')


def test_jupyter_subcommand_lookup_finds_hop(tree: HopTree) -> None:
    """`jupyter hop ...` is `jupyter-hop ...` through Jupyter's own subcommand lookup on PATH."""
    import subprocess
    import sys

    ok(tree, ["init", "p", "--no-password", "--root-dir", str(tree.work)])
    jupyter = str(Path(sys.executable).parent / "jupyter")
    done = subprocess.run(
        [jupyter, "hop", "config", "p"], capture_output=True, text=True, env=tree.env(), cwd=tree.work, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ok(tree, ["config", "p"])


def test_parsed_profiles_are_cached_by_content(tmp_path: Path) -> None:
    """A profile read again comes from the parsed cache (no TOML parser), one changed is parsed anew, and the
    cache is private."""
    paths = Paths(tmp_path / "config", tmp_path / "state", tmp_path / "runtime")
    profile_file = paths.profile_file("c")
    profile_file.parent.mkdir(parents=True)
    profile_file.write_text('[server]\nroot_dir = "/srv/a" # here\n[slurm]\ntime = "1:00:00"\n')
    first = store.load(paths, "c")
    cache = paths.runtime_base / store.PARSED_CACHE
    (entry,) = cache.glob("*.json")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and stat.S_IMODE(entry.stat().st_mode) == 0o600
    entry.write_text('{"server": {"root_dir": "/srv/from-the-cache"}}')  # proves the next load reads the cache
    assert store.load(paths, "c").server.root_dir == "/srv/from-the-cache"
    profile_file.write_text('[server]\nroot_dir = "/srv/b"\n')
    assert store.load(paths, "c").server.root_dir == "/srv/b" and first.server.root_dir == "/srv/a"
    assert len(list(cache.glob("*.json"))) == 2
    entry.write_text('{"server": {"root_dir": "relative"}}')  # what the cache holds is checked like a file
    profile_file.write_text('[server]\nroot_dir = "/srv/a" # here\n[slurm]\ntime = "1:00:00"\n')
    with pytest.raises(HopError, match=r"server\.root_dir"):
        store.load(paths, "c")
    entry.write_text("not json")  # a damaged entry is no entry
    assert store.load(paths, "c").server.root_dir == "/srv/a"

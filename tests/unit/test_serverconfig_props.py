"""Property tests: for any root_dir and server.options, the generated config is plain literal assignments that
set exactly the expected traits to exactly the given values, and nothing else."""

from __future__ import annotations

import ast
import keyword
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_hop.errors import HopError
from jupyter_hop.profile import model as prof
from jupyter_hop.server import serverconfig

# file names: anything a directory entry can hold (no '/', no NUL); newlines are refused by the profile check
DIR_NAME = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=30
).filter(lambda s: s not in (".", "..") and len(s.encode()) <= 255)
TRAIT = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}\.[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda k: k not in prof.OWNED_TRAITS and not any(keyword.iskeyword(part) for part in k.split("."))
)
SCALAR = st.text(max_size=20) | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans()
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
OPTIONS = st.dictionaries(TRAIT, VALUE, max_size=5)
HASH = st.none() | st.text(min_size=1, max_size=60) | st.just("argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA")


class Section:
    """c.<Class>: records every trait set on it; reading a trait back is not something the config may do."""

    def __init__(self, name: str, store: dict[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_store", store)

    def __setattr__(self, trait: str, value: Any) -> None:
        self._store[f"{self._name}.{trait}"] = value

    def __getattr__(self, trait: str) -> Any:
        raise AssertionError(f"the config reads {self._name}.{trait}")


class Recorder:
    """A stand-in for traitlets' config object returned by get_config()."""

    def __init__(self) -> None:
        self.store: dict[str, Any] = {}
        self.sections: dict[str, Section] = {}

    def __getattr__(self, name: str) -> Section:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.sections.setdefault(name, Section(name, self.store))


def expected(root: Path, hashed: str | None, idle: int, options: dict[str, Any]) -> dict[str, Any]:
    """The contract of issue 2: current trait names only, password-only login, then the profile's options."""
    want: dict[str, Any] = {
        "ServerApp.open_browser": False,
        "ServerApp.root_dir": str(root),
        "ServerApp.ip": "127.0.0.1",
    }
    if hashed:
        want["PasswordIdentityProvider.hashed_password"] = hashed
        want["PasswordIdentityProvider.password_required"] = True
        want["PasswordIdentityProvider.allow_password_change"] = False
        want["IdentityProvider.token"] = ""
    else:
        want["PasswordIdentityProvider.allow_password_change"] = False
    if idle:
        want["ServerApp.shutdown_no_activity_timeout"] = idle
        want["MappingKernelManager.cull_idle_timeout"] = idle
        want["MappingKernelManager.cull_interval"] = 60
    want.update(options)
    return want


def check_only_literal_assignments(text: str) -> None:
    """Besides `c = get_config()`, every statement assigns a literal to c.Class.trait: no code can run."""
    tree = ast.parse(text)
    first, *rest = tree.body
    assert ast.unparse(first) == "c = get_config()"
    for node in rest:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.unparse(node)
        target = node.targets[0]
        assert isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute), ast.unparse(node)
        assert isinstance(target.value.value, ast.Name) and target.value.value.id == "c", ast.unparse(node)
        ast.literal_eval(node.value)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (True is not 1, -0.0 is not 0.0); repr is exact for these."""
    return repr(a) == repr(b)


def render(root_value: str, options: dict[str, Any], idle: int, hashed: str | None) -> tuple[str, Path] | None:
    """The rendered config, or None for a clean rejection (a HopError whose message is one line)."""
    try:
        profile = prof.from_dict("p", {"server": {"root_dir": root_value, "options": options, "idle_timeout": idle}})
        root = serverconfig.resolved_root(profile)
        return serverconfig.render(profile, hashed, root), root
    except HopError as exc:
        assert "\n" not in exc.message
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=DIR_NAME, options=OPTIONS, idle=st.integers(0, 10**6), hashed=HASH)
def test_config_sets_exactly_the_values(name: str, options: dict[str, Any], idle: int, hashed: str | None) -> None:
    with tempfile.TemporaryDirectory() as base:
        root = Path(base) / name
        root.mkdir()
        result = render(str(root), options, idle, hashed)
        if "\n" in name:  # refused: a root_dir on two lines is not what anyone meant
            assert result is None
            return
        assert result is not None, f"a valid profile was refused: root {root!r} options {options!r}"
        text, resolved = result
        assert resolved == root
        compile(text, "jupyter_server_config.py", "exec")
        check_only_literal_assignments(text)
        recorder = Recorder()
        exec(compile(text, "jupyter_server_config.py", "exec"), {"get_config": lambda: recorder})
        want = expected(root, hashed, idle, options)
        assert set(recorder.store) == set(want), f"keys differ: {set(recorder.store) ^ set(want)}"
        for key, value in want.items():
            assert same(recorder.store[key], value), f"{key}: {recorder.store[key]!r} != {value!r}"
        assert not any(k.startswith("ServerApp.") and k.split(".")[1] in ("password", "token") for k in recorder.store)


@settings(max_examples=100, deadline=None)
@given(name=DIR_NAME.filter(lambda s: "\n" not in s))
def test_tilde_root_dir_is_expanded(name: str) -> None:
    """`~` in root_dir becomes the absolute home path: Jupyter does not expand it inside config files."""
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / name).mkdir()
        old = os.environ.get("HOME")
        os.environ["HOME"] = home
        try:
            result = render("~/" + name, {}, 0, None)
        finally:
            if old is None:
                del os.environ["HOME"]
            else:
                os.environ["HOME"] = old
        assert result is not None
        text, _ = result
        recorder = Recorder()
        exec(compile(text, "cfg", "exec"), {"get_config": lambda: recorder})
        assert recorder.store["ServerApp.root_dir"] == str(Path(home) / name)
        assert "~" not in recorder.store["ServerApp.root_dir"].replace(name, "")


REAL_TRAIT = st.from_regex(r"[A-Z][A-Za-z]{0,10}\.[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda k: k not in prof.OWNED_TRAITS and not keyword.iskeyword(k.split(".")[1])
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=DIR_NAME.filter(lambda s: "\n" not in s), options=st.dictionaries(REAL_TRAIT, VALUE, max_size=4))
def test_traitlets_loads_the_same_values(name: str, options: dict[str, Any]) -> None:
    """The real loader Jupyter uses (traitlets' PyFileConfigLoader) sees the same values."""
    from traitlets.config.loader import PyFileConfigLoader

    with tempfile.TemporaryDirectory() as base:
        root = Path(base) / name
        root.mkdir()
        result = render(str(root), options, 0, "argon2:x'\"\\")
        assert result is not None
        text, _ = result
        config_file = Path(base) / "jupyter_server_config.py"
        config_file.write_text(text, encoding="utf-8")
        loaded = PyFileConfigLoader(config_file.name, path=base).load_config()
        want = expected(root, "argon2:x'\"\\", 0, options)
        for key, value in want.items():
            cls, trait = key.split(".")
            assert loaded[cls][trait] == value, key
        got = {f"{cls}.{trait}" for cls in loaded for trait in loaded[cls]}
        assert got == set(want)


@pytest.mark.parametrize(
    "value",
    ["'; import os; os.system('id') #", '"""', "\\", "a\\nb", "\u2028", "\x85", "é", "\U0001f600", "{0}", "%s"],
)
def test_nasty_strings_stay_strings(value: str) -> None:
    result = render("/", {"ServerApp.custom_display_url": value}, 0, value)
    assert result is not None
    recorder = Recorder()
    exec(compile(result[0], "cfg", "exec"), {"get_config": lambda: recorder})
    assert recorder.store["ServerApp.custom_display_url"] == value
    assert recorder.store["PasswordIdentityProvider.hashed_password"] == value


@pytest.mark.parametrize(
    "key", ["if.x", "ServerApp.class", "None.x", "ServerApp.True", "ServerApp.__class__", "_A.b", "A._b"]
)
def test_keyword_option_names_are_refused(key: str) -> None:
    with pytest.raises(HopError, match="option names look like"):
        prof.from_dict("p", {"server": {"root_dir": "/", "options": {key: 1}}})

"""The one Jinja environment for unit and batch templates, with the quoting filters that keep values inert."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_hop.errors import HopError
from jupyter_hop.patterns import lazy
from jupyter_hop.systemd.settings import unit_path

if TYPE_CHECKING:
    import jinja2

PACKAGE_DIR = Path(__file__).resolve().parent
# Characters no quoting can carry through a one-line directive or shell line: control characters, including
# the C1 ones and the Unicode line separators, which some readers of a script or unit take for a line break.
_UNCARRIABLE = lazy(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def template_root() -> Path:
    """Where `units/` and `slurm/` live: in this package of the installed wheel (force-included here, clear of
    the `slurm` subpackage), or at the top of the source tree for an editable install."""
    if (PACKAGE_DIR / "slurm").is_dir() or (PACKAGE_DIR / "units").is_dir():
        return PACKAGE_DIR
    source_root = PACKAGE_DIR.parents[2]
    if (source_root / "slurm").is_dir() or (source_root / "units").is_dir():
        return source_root
    raise HopError(f"the templates are missing from {PACKAGE_DIR}: reinstall jupyter-hop")


_SAFE_WORD = lazy(r"[A-Za-z0-9_@%+=:,./-]+")
# outside single quotes and backslash-escaped: a quote cannot be inside single quotes, and `$` and backquote
# are escaped so that ShellCheck does not mistake a literal value for an expansion meant to happen
_SPLIT = lazy(r"(['$`])")


def sh(value: object) -> str:
    """One shell word that bash reads back as exactly `value`.

    Control characters are refused: single quotes would carry a newline, but a rendered script with a value
    spread over two lines is not what anyone meant to write.
    """
    text = str(value)
    if _UNCARRIABLE.search(text):
        raise HopError(f"{text!r} cannot go into a shell script: it contains a control character")
    if _SAFE_WORD.fullmatch(text):
        return text
    if not text:
        return "''"
    return "".join("\\" + part if part in ("'", "$", "`") else f"'{part}'" for part in _SPLIT.split(text) if part)


def systemd(value: object, *, exec_arg: bool = True) -> str:
    """One double-quoted word for a unit file that systemd reads back as exactly `value`.

    `%` starts a specifier everywhere in a unit, so it is doubled; in Exec lines `$` starts variable
    expansion, so it is doubled there too (exec_arg=False for settings such as Environment= where `$` is
    plain). Backslash and double quote are escaped because the word is double-quoted.
    """
    text = str(value)
    if _UNCARRIABLE.search(text):
        raise HopError(f"{text!r} cannot go into a systemd unit: it contains a control character")
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if exec_arg:
        text = text.replace("$", "$$")
    return f'"{text}"'


def systemd_path(path: str, home: str = "") -> str:
    """Jinja filter: an absolute path for a path setting (WorkingDirectory=, append:), `%` escaped.

    Path settings are not unquoted by systemd (quotes and backslashes are literal), so `%%` is the only
    escape; a path in the home directory becomes %h/....
    """
    text = unit_path("path", path).replace("%", "%%")
    if home and home != "/":
        home_text = unit_path("HOME", home).replace("%", "%%")
        if text == home_text:
            return "%h"
        if text.startswith(home_text + "/"):
            return "%h" + text[len(home_text):]
    return text


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept in the node-local runtime dir, so a render command does not compile the template
    again each time (about 10 ms, a third of what rendering adds to starting Python). The dir is private (0700):
    the cache is code that Jinja loads. Jinja checks each entry against the template's source and its own
    version. Where the dir cannot be had, templates are compiled as before."""
    import jinja2

    from jupyter_hop.fsutil import private_dir
    from jupyter_hop.paths import Paths, own_runtime_base

    base = own_runtime_base(Paths.from_env())
    if base is None:
        return None
    try:
        directory = private_dir(base / "templates")
    except HopError:
        return None
    return jinja2.FileSystemBytecodeCache(str(directory))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """StrictUndefined so a missing value fails loudly; no autoescape because nothing here is HTML."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root())),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - shell scripts and unit files, quoted by the filters below
    )
    env.filters["sh"] = sh
    env.filters["systemd"] = systemd
    env.filters["systemd_path"] = systemd_path
    return env


def render(name: str, **values: object) -> str:
    """Render template `name` (e.g. "slurm/jupyter-hop.sbatch.j2") with exactly `values`."""
    return environment().get_template(name).render(**values)

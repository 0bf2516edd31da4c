"""The command line sent to the remote jupyter-hop: through the user's login shell, every word quoted once.

sshd runs what we send with the user's login shell as `$SHELL -c LINE`, which is not a login shell: module
systems, conda and ~/.profile PATH entries are missing there. LINE therefore starts the login shell again
(`exec "$SHELL" -l -c SCRIPT jupyter-hop WORD...`): SCRIPT is the host's remote command (from hosts.toml, shell
text the user wrote for their own shell, default `jupyter-hop`) followed by "$@", and our words arrive as the
positional parameters. They are parsed exactly once, by the outer shell, as shlex quoted them, and never by the
login shell, whose startup files may change its options. The outer shell must be POSIX (sh, bash, zsh, dash,
ksh); csh, tcsh and fish login shells are not supported.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from jupyter_hop.errors import HopError

DEFAULT_REMOTE_COMMAND = "jupyter-hop"
NOT_FOUND = 127  # what a POSIX shell exits with when the command is not found
LOGIN_SHELL = 'exec "${SHELL:-/bin/sh}" -l -c'


def remote_line(words: Sequence[str], remote_command: str = DEFAULT_REMOTE_COMMAND) -> str:
    """The line for the remote shell that runs `remote_command WORD...` in a login shell."""
    script = f'{remote_command} "$@"'
    return f"{LOGIN_SHELL} {shlex.join([script, 'jupyter-hop', *words])}"


def not_found(host: str, hosts_path: object, stderr: str = "") -> HopError:
    """Exit 127 from the remote: its login shell found no jupyter-hop (or the remote command's first word)."""
    return HopError(
        f"jupyter-hop not found on {host}; install it there or set remote_command in {hosts_path}",
        detail=stderr,
    )

"""The one edge where jupyter-hop runs other programs (all but the Jupyter child): failures become a HopError."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from jupyter_hop.errors import HopError


def run(
    argv: Sequence[str],
    *,
    timeout: float | None,
    what: str,
    env: Mapping[str, str] | None = None,
    umask: int = -1,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end and return what it did, whatever its exit code; the caller judges that.

    A program that is missing, cannot start or does not finish within `timeout` seconds is a HopError that
    names the command and `what` it was for. `capture=False` lets the output through to the terminal (for
    commands whose output is the answer, such as journalctl). Under --debug each call is traced to stderr.
    """
    argv = list(argv)
    started = time.monotonic()
    code: int | str = "not run"
    try:
        result = subprocess.run(
            argv, capture_output=capture, text=True, timeout=timeout, umask=umask,
            env=None if env is None else dict(env), stdin=subprocess.DEVNULL if capture else None,
        )
        code = result.returncode
        return result
    except FileNotFoundError as exc:
        raise HopError(f"cannot run {argv[0]} ({what}): it is not installed here, or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        code = "timed out"
        raise HopError(f"`{_join(argv)}` did not finish within {exc.timeout:g} s ({what})") from exc
    except OSError as exc:
        raise HopError(f"cannot run {argv[0]} ({what}): {exc.strerror}") from exc
    finally:
        if os.environ.get("JUPYTER_HOP_DEBUG"):
            print(f"+ {_join(argv)} ({code}, {time.monotonic() - started:.2f} s)", file=sys.stderr)


def output(argv: Sequence[str], *, timeout: float, what: str) -> str:
    """The standard output of a command that must succeed; a failure names the command and says why."""
    result = run(argv, timeout=timeout, what=what)
    if result.returncode != 0:
        reason = (result.stderr.strip() or result.stdout.strip() or f"exit code {result.returncode}").splitlines()
        raise HopError(f"`{_join(argv)}` failed ({what}): {reason[-1]}", detail=result.stderr)
    return result.stdout


def _join(argv: Sequence[str]) -> str:
    """The command as a shell line, for messages: shlex is imported only when one is written."""
    import shlex

    return shlex.join(argv)

"""Private directories and atomic file writes: nothing half-written, nothing readable by others."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from jupyter_hop.errors import HopError


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700 and make sure the leaf is ours and 0700."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise HopError(f"{path} is not a directory; move it away and try again")
        if info.st_uid != os.getuid():
            raise HopError(f"{path} belongs to uid {info.st_uid}, not to you; refusing to use it")
        if stat.S_IMODE(info.st_mode) != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        raise HopError(f"cannot create directory {path}: {exc.strerror}") from exc
    return path


def atomic_write(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write `text` to `path` through a temp file and a rename, so readers see the old or the new file."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise HopError(f"cannot write {path}: {exc.strerror}; the old file, if any, is unchanged") from exc


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HopError(f"cannot read {path}: {exc.strerror}") from exc

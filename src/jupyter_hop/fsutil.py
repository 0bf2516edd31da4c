"""Private directories and atomic file writes: nothing half-written, nothing readable by others."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from jupyter_hop.errors import HopError


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents as 0700, and make sure the leaf is ours and 0700."""
    try:
        # mkdir(parents=True) would give missing parents the umask's mode (often 0755): create each one 0700
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for directory in reversed(missing):
            directory.mkdir(mode=0o700, exist_ok=True)
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
    atomic_write_all([(path, text)], mode=mode)


def atomic_write_all(files: Sequence[tuple[Path, str]], *, mode: int = 0o600) -> None:
    """Write several files so that either all of them change or none does.

    Every temp file is written and synced before the first rename, so a full disk or a read-only dir fails
    before anything visible changes; only the renames themselves (which do not need space) come after.
    """
    temps: list[tuple[str, Path]] = []
    target = files[0][0] if files else Path()
    try:
        for path, text in files:
            target = path
            private_dir(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, path in temps:
            target = path
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            message = f"cannot write {target}: {exc.strerror}; the old files, if any, are unchanged"
            raise HopError(message) from exc
        raise


# How many lines of a log an error message shows.
LOG_TAIL_LINES = 30


def tail(path: Path, count: int = LOG_TAIL_LINES) -> str:
    """The last `count` lines of a text file; "" when it does not exist or cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "".join(text.splitlines(keepends=True)[-count:])


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HopError(f"cannot read {path}: {exc.strerror}") from exc


def private_file(path: Path) -> Path:
    """Make sure `path` exists as a 0600 file of ours (in a 0700 dir) before another program appends to it.

    systemd creates a missing StandardOutput=append: file with its own umask (0644); created here first, the
    server's output stays private.
    """
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError as exc:
        raise HopError(f"cannot create {path}: {exc.strerror}") from exc
    return path


@contextlib.contextmanager
def exclusive(path: Path, *, unlocked_if_read_only: bool = False) -> Iterator[None]:
    """Hold a POSIX write lock on the lock file `path` (created 0600, ours) while the block runs.

    fcntl locks, not flock: they are what NFS implements between clients (NLM, or NFSv4 itself), and Linux
    emulates flock with them there anyway, unless the mount says local_lock=flock, which would make flock
    silently lock this node only. The file is opened for writing because NFS grants write locks only on a
    file opened for writing; an flock on a directory opened read-only excludes nobody on another node.
    POSIX locks belong to the process, not the fd: nothing else here opens a lock file, and none is nested.
    `unlocked_if_read_only`: on a read-only file system nobody on this node can write what the lock guards,
    so a reader goes ahead without it (and a writer fails at its write, naming the file it could not write).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # a read-only or full dir, or a symlink planted there: say which file
        if exc.errno == errno.ELOOP:
            raise HopError(f"{path} is a symbolic link; move it away and try again") from exc
        if not (unlocked_if_read_only and exc.errno == errno.EROFS):
            raise HopError(f"cannot write {path}: {exc.strerror}") from exc
        fd = -1
    if fd < 0:
        yield
        return
    try:
        _check_lock_file(path, fd)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise HopError(_lock_failure(path, exc)) from exc
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def _check_lock_file(path: Path, fd: int) -> None:
    """Refuse a lock file someone else made: its owner could hold the lock forever or swap the file."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise HopError(f"{path} is not a regular file; move it away and try again")
    if info.st_uid != os.getuid():
        raise HopError(f"{path} belongs to uid {info.st_uid}, not to you; refusing to use it")
    if stat.S_IMODE(info.st_mode) != 0o600:
        os.fchmod(fd, 0o600)


def _lock_failure(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOLCK:
        return (
            f"cannot lock {path}: {exc.strerror} (NFS without lockd?); ask the admins to enable NFS file "
            "locking (rpc.statd/lockd) on this node"
        )
    return f"cannot lock {path}: {exc.strerror}"

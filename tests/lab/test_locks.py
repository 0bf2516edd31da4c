"""The profile and records locks: a POSIX write lock on a lock file of ours, and a clear line when locks fail."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit.hoptree import HopTree, snapshot
from labkit.launch import init_profile
from labkit.user import TestUser

from jupyter_hop.errors import HopError
from jupyter_hop.fsutil import exclusive

NOLOCKS = [sys.executable, str(Path(__file__).parents[1] / "labkit" / "nolocks.py")]
ENOLCK_LINE = "No locks available (NFS without lockd?)"

HOLD = """
import sys
from pathlib import Path
from jupyter_hop.fsutil import exclusive
with exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""

COUNT = """
import os, sys
from pathlib import Path
from jupyter_hop.fsutil import exclusive
lock, counter = Path(sys.argv[1]), Path(sys.argv[2])
for _ in range(int(sys.argv[3])):
    with exclusive(lock):
        value = int(counter.read_text())
        os.sched_yield()  # give a process without the lock every chance to read the same value
        counter.write_text(str(value + 1))
"""


def lock_lines(path: Path) -> list[tuple[bool, str, str, int]]:
    """/proc/locks entries on `path`: the kernel's own view of who holds (False) and who waits (True)."""
    info = path.stat()
    where = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    rows = []
    for line in Path("/proc/locks").read_text().splitlines():
        # "N: POSIX ADVISORY WRITE PID MAJ:MIN:INODE START END", a waiter with "->" after "N:"
        fields = line.split()
        waiting = fields[1] == "->"
        kind, _, mode, pid, target = fields[2 if waiting else 1:][:5]
        if target == where:
            rows.append((waiting, kind, mode, int(pid)))
    return rows


def wait_for(predicate, what: str, timeout: float = 20):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.01)
    return found


def test_a_second_process_waits_for_the_lock_and_gets_it_when_released(tmp_path: Path) -> None:
    """Two real processes, one real file: the second blocks in F_SETLKW on a POSIX write lock until released."""
    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    waiter = None
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        waiter = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        wait_for(lambda: any(row[0] for row in lock_lines(lock)), "the second process waits for the lock")
        # Holder and waiter: POSIX (fcntl) write locks, the kind NFS enforces between clients.
        assert sorted(lock_lines(lock)) == [(False, "POSIX", "WRITE", holder.pid), (True, "POSIX", "WRITE", waiter.pid)]
        assert waiter.poll() is None
        holder.communicate("\n", timeout=20)
        out, _ = waiter.communicate("\n", timeout=20)
        assert out == "held\nreleased\n"
        assert oct(lock.stat().st_mode & 0o777) == "0o600"
        print(f"waiter pid {waiter.pid} blocked on the POSIX write lock of pid {holder.pid}, then got it")
    finally:
        for process in (holder, waiter):
            if process and process.poll() is None:
                process.kill()
                process.wait()


def test_racing_increments_under_the_lock_lose_nothing(tmp_path: Path) -> None:
    lock, counter = tmp_path / ".lock", tmp_path / "counter"
    counter.write_text("0")
    processes, rounds = 4, 200
    racers = [subprocess.Popen([sys.executable, "-c", COUNT, str(lock), str(counter), str(rounds)])
              for _ in range(processes)]
    assert [r.wait(timeout=120) for r in racers] == [0] * processes
    assert int(counter.read_text()) == processes * rounds
    print(f"{processes} processes x {rounds} locked read-increment-writes: {counter.read_text()}")


def test_a_lock_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    """Run as root: a lock file owned by another uid (or a symlink planted there) is refused, not used."""
    assert os.getuid() == 0, "run the tests as root"
    foreign = tmp_path / "foreign.lock"
    foreign.write_text("")
    os.chown(foreign, 4242, 4242)
    with pytest.raises(HopError, match=r"belongs to uid 4242, not to you"), exclusive(foreign):
        raise AssertionError("locked a file of another user")
    link = tmp_path / "link.lock"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(HopError, match=r"is a symbolic link"), exclusive(link):
        raise AssertionError("followed a symlink")
    assert not (tmp_path / "elsewhere").exists()


def test_enolck_is_one_line_through_the_real_cli(tmp_path: Path) -> None:
    """ENOLCK injected by a seccomp filter (tests/labkit/nolocks.py) into the real CLI's real fcntl lock call,
    as an NFS client without lockd answers it: one line naming the lock file, exit 1, nothing changed."""
    tree = HopTree.make(tmp_path)
    done = tree.hop(["init", "p", "--no-password", "--root-dir", str(tree.work)])
    assert done.returncode == 0, done.stderr
    before = snapshot(tree.base)
    for args in (["init", "p", "--local-port", "9999"], ["init", "q", "--no-password", "--root-dir", "."]):
        result = tree.hop(args, prefix=NOLOCKS)
        assert result.returncode == 1, result
        assert result.stderr == f"jupyter-hop: error: cannot lock {tree.config / '.lock'}: {ENOLCK_LINE}; " \
            "ask the admins to enable NFS file locking (rpc.statd/lockd) on this node\n"
        assert snapshot(tree.base) == before


@pytest.mark.lab
def test_enolck_in_run_is_one_line_and_starts_nothing(test_user: TestUser, user_home: dict[str, str]) -> None:
    """The same injected ENOLCK for `run` as the test user: one line, and no server was started."""
    init_profile(test_user, user_home, "p", "--app", "server")
    argv = [*NOLOCKS, *test_user.argv(["jupyter-hop", "run", "p"], user_home)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd=str(test_user.home))
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("jupyter-hop: error: cannot lock ") and ENOLCK_LINE in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    config = Path(user_home["XDG_CONFIG_HOME"]) / "jupyter-hop" / "servers" / "p" / "jupyter_server_config.py"
    assert subprocess.run(["pgrep", "-u", str(test_user.uid), "-f", str(config)]).returncode == 1, "a server started"
    assert not list((Path(user_home["XDG_STATE_HOME"]) / "jupyter-hop" / "records").glob("*.json"))

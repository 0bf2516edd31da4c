"""Run a command whose POSIX lock calls fail with ENOLCK, as they do on an NFS mount without lockd.

This machine's kernel has no NFS, and no local file system here refuses locks. A seccomp filter makes the
kernel itself answer fcntl(F_SETLK/F_SETLKW) with ENOLCK for the command and everything it execs (setpriv,
the CLI, Jupyter), while every other fcntl call and every other syscall runs as usual: the code under test
sees exactly the error a lockd-less NFS client returns, through its real lock call.

    python tests/labkit/nolocks.py COMMAND [ARGS...]
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
NR, ARCH, ARG1_LOW = 0, 4, 24
AUDIT_ARCH = {"x86_64": (0xC000003E, 72), "aarch64": (0xC00000B7, 25)}  # (audit arch, __NR_fcntl)
F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW = 6, 7, 37, 38
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def program() -> bytes:
    arch, nr_fcntl = AUDIT_ARCH[platform.machine()]
    set_cmds = (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW)
    insns = [
        _insn(BPF_LD_W_ABS, ARCH),
        _insn(BPF_JEQ_K, arch, 0, 3 + len(set_cmds)),  # another ABI: allow
        _insn(BPF_LD_W_ABS, NR),
        _insn(BPF_JEQ_K, nr_fcntl, 0, 1 + len(set_cmds)),  # not fcntl: allow
        _insn(BPF_LD_W_ABS, ARG1_LOW),  # the command (little-endian low word of args[1])
    ]
    for index, cmd in enumerate(set_cmds):
        insns.append(_insn(BPF_JEQ_K, cmd, len(set_cmds) - index, 0))  # a lock command: jump to ENOLCK
    insns.append(_insn(BPF_RET_K, RET_ALLOW))
    insns.append(_insn(BPF_RET_K, RET_ERRNO | errno.ENOLCK))
    return b"".join(insns)


def install() -> None:
    code = program()
    filters = ctypes.create_string_buffer(code, len(code))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Fprog(len(code) // 8, ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    calls = ((PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0))
    for args in calls:
        if libc.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


if __name__ == "__main__":
    install()
    os.execvp(sys.argv[1], sys.argv[1:])

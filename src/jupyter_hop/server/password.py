"""Asking for a password without echo or argv, and hashing it the way jupyter_server checks it."""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from jupyter_hop.errors import HopError

# jupyter_server's passwd_check strips this prefix and verifies with the parameters stored in the hash;
# without the prefix every login fails silently.
PREFIX = "argon2:"
MAX_LENGTH = 1024


def hash_password(password: str) -> str:
    """An argon2 hash with jupyter_server's own parameters, prefixed so the server recognises it."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(memory_cost=10240, time_cost=10, parallelism=8)
    return PREFIX + hasher.hash(password)


def verify(hashed: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    if not hashed.startswith(PREFIX):
        return False
    try:
        return PasswordHasher().verify(hashed[len(PREFIX) :], password)
    except (VerificationError, InvalidHashError):
        return False


def looks_hashed(text: str) -> bool:
    return text.startswith(PREFIX + "$argon2")


def read_new_password(*, from_stdin: bool, stdin: TextIO | None = None) -> str:
    """The new password: from standard input when asked, else from the terminal, typed twice."""
    stdin = sys.stdin if stdin is None else stdin
    if from_stdin:
        text = stdin.read()
        password = text[:-1] if text.endswith("\n") else text
        password = password[:-1] if password.endswith("\r") else password
        return _checked(password)
    if not stdin.isatty():
        raise HopError("no terminal to ask for a password: type it at a terminal, or pipe it with --password-stdin")
    try:
        first = getpass.getpass("New Jupyter password: ")
        _checked(first)
        second = getpass.getpass("Repeat the password: ")
    except (EOFError, KeyboardInterrupt):
        raise HopError("no password entered; nothing was changed") from None
    if first != second:
        raise HopError("the two passwords do not match; nothing was changed")
    return first


def _checked(password: str) -> str:
    if not password:
        raise HopError("the password is empty; nothing was changed")
    if "\n" in password or "\x00" in password:
        raise HopError("the password has a newline or NUL byte in it; use one line of text")
    if len(password) > MAX_LENGTH:
        raise HopError(f"the password is longer than {MAX_LENGTH} characters")
    return password

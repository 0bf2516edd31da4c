"""The effective ssh settings for a host, as `ssh -G` prints them: ssh reads the user's config, we never do."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jupyter_hop import proc
from jupyter_hop.errors import HopError

# What a user types after `ssh`: an alias or a host name, optionally user@ in front. No option (leading -), no
# whitespace or control character: it becomes one argv word and is printed in commands to paste.
HOST_RE = re.compile(r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9_.:\[\]%-]+")

# Options whose value ssh -G prints once per entry (all kept, in order); every other key keeps its one value.
MULTI = frozenset({
    "identityfile", "certificatefile", "localforward", "remoteforward", "dynamicforward", "sendenv", "setenv",
})


def check_host(host: str) -> str:
    """HOST as given on the command line, refused when ssh could take it for an option or split it."""
    if not HOST_RE.fullmatch(host) or host.startswith("-"):
        raise HopError(
            f"bad host {host!r}: give what you type after `ssh`, such as an alias from ~/.ssh/config (hpc), "
            "a host name (login1.example.edu) or user@host"
        )
    return host


@dataclass(frozen=True)
class SshSettings:
    """What `connect` needs from the effective config; `options` holds every key ssh -G printed."""

    host: str  # as the user typed it
    hostname: str
    user: str
    port: int
    control_master: str  # the user's own setting ("false", "true", "auto", ...): kept off our master
    control_path: str  # expanded by ssh (tokens such as %C resolved); "none" when unset
    control_persist: str
    proxy_jump: str  # "" when unset
    proxy_command: str  # "" when unset
    batch_mode: bool
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        values = self.options.get(key.lower())
        return values[0] if values else default


def parse(host: str, text: str) -> SshSettings:
    """Settings from the text of `ssh -G HOST` (lowercase keys, one "key value" per line)."""
    options: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        key = key.lower()
        if key in MULTI:
            options[key] = (*options.get(key, ()), value)
        else:
            options.setdefault(key, (value,))

    def one(key: str, default: str = "") -> str:
        values = options.get(key)
        return values[0] if values else default

    try:
        port = int(one("port", "22"))
    except ValueError as exc:
        raise HopError(f"`ssh -G {host}` printed a port that is not a number: {one('port')!r}") from exc
    if not one("hostname"):
        raise HopError(f"`ssh -G {host}` printed no hostname; is ssh OpenSSH 6.8 or newer?", detail=text)
    return SshSettings(
        host=host,
        hostname=one("hostname"),
        user=one("user"),
        port=port,
        control_master=one("controlmaster", "false"),
        control_path=one("controlpath", "none"),
        control_persist=one("controlpersist", "no"),
        proxy_jump=one("proxyjump"),
        proxy_command=one("proxycommand"),
        batch_mode=one("batchmode", "no") == "yes",
        options=options,
    )


def g_argv(host: str, options: Sequence[str] = (), *, ssh: str = "ssh") -> list[str]:
    """`ssh -G` with the -o options the real call will carry, so tokens such as %C expand the same way."""
    return [ssh, "-G", *options, check_host(host)]


def effective(host: str, options: Sequence[str] = (), *, ssh: str = "ssh", timeout: float = 15.0,
              env: Mapping[str, str] | None = None) -> SshSettings:
    """Run `ssh -G HOST` (it reads the config, resolves Match blocks and tokens, and connects nowhere)."""
    argv = g_argv(host, options, ssh=ssh)
    result = proc.run(argv, timeout=timeout, what=f"reading the ssh settings for {host}", env=env)
    if result.returncode != 0:
        said = (result.stderr.strip() or f"exit code {result.returncode}").splitlines()[-1]
        raise HopError(f"ssh cannot read its settings for {host}: {said}", detail=result.stderr)
    return parse(host, result.stdout)

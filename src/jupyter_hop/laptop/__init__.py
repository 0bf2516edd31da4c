"""The laptop side of `jupyter hop connect`: the user's own OpenSSH, driven through one private master.

Portable (no POSIX-only import, safe on Windows): sshconfig, argv, remote, hosts, ports, probe, objects.
POSIX only (imported by the connect command only where ssh has ControlMaster): master, session, connect,
supervise.
"""

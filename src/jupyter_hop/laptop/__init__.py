"""The laptop side of `jupyter hop connect`: the user's own OpenSSH, driven through one private master, or, where
ssh has no ControlMaster (Windows), one ssh per step (direct.py).

Portable (no POSIX-only import, safe on Windows): sshconfig, argv, remote, hosts, ports, probe, objects, link,
direct, follow, supervise, connect.
POSIX only (imported by connect.link() only where ssh has ControlMaster): master, session.
"""

"""The laptop side of `jupyter hop connect`: the user's own OpenSSH, driven through one private master.

Portable (no POSIX-only import, safe on Windows): sshconfig, argv, remote, hosts, ports, probe. POSIX only
(imported by connect only where ssh has ControlMaster): master, session.
"""

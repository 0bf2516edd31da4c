"""Shared fixtures: the lab modules under tests/lab are loaded as plugins."""

pytest_plugins = ["lab.user", "lab.sshlab", "lab.sshslurm", "lab.slurmlab", "lab.systemdlab"]

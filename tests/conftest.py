"""Shared fixtures: the lab kit (tests/labkit) loaded as plugins; tests/unit needs none of it, tests/lab all."""

pytest_plugins = [
    "labkit.user", "labkit.sshlab", "labkit.laptoplab", "labkit.sshslurm", "labkit.slurmlab", "labkit.systemdlab",
]

"""The test lab: real users, sshd's in network namespaces, Slurm and systemd --user, set up by the tests."""

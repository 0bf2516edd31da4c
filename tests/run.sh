#!/usr/bin/env bash
# Install everything the whole test suite needs on a fresh Debian 12 machine, then run it.
# Run as root: the lab creates a test user, network namespaces, sshd's, a Slurm and a systemd --user.
# Arguments are passed to pytest (e.g. `bash tests/run.sh -k slurm`).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${JUPYTER_HOP_TEST_VENV:-/opt/jupyter-hop-ci/venv}

# Debian packages. policy-rc.d keeps the daemons from starting on install: the tests start their own.
if ! dpkg -s openssh-server slurmctld slurmd slurm-client munge shellcheck python3-venv >/dev/null 2>&1; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3-venv openssh-server openssh-client iproute2 util-linux procps \
        slurmctld slurmd slurm-client munge shellcheck systemd dbus-user-session >/dev/null
fi

# The system Python, not root's own: the test user must be able to run the same environment.
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check ".[lab,test]"
chmod -R a+rX "$(dirname "$venv")"

"$venv/bin/python" -m pytest "$@"
"$venv/bin/python" tests/bench/run.py --quick

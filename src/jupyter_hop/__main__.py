"""Allow `python -m jupyter_hop`, which is what units and batch scripts run."""

from jupyter_hop.cli import main

main()

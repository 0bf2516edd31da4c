"""jupyter-hop: Jupyter servers on machines you do not sit at, with instructions that work verbatim."""

__version__ = "0.1.0"

"""Slurm batch jobs: settings and their checks, the batch script, the Slurm tools, and operations on jobs."""

"""Experiment runner for the flamo benchmark / reproducibility suite.

Run ``python -m experiments list`` from the repository root to see the registered
experiments. The suite runs from a checkout; it is not installed with ``pip install .``.
Importing it has no side effects: the command line selects matplotlib's Agg backend for
the figures it writes, and leaves the environment alone.
"""

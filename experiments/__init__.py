"""Experiment runner for the flamo benchmark / reproducibility suite.

Run ``python -m experiments list`` to see the registered experiments.
"""

import os

# Headless plotting everywhere; must be set before matplotlib is imported.
os.environ.setdefault("MPLBACKEND", "Agg")

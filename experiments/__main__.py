"""Entry point for ``python -m experiments``."""

import sys
import warnings

from experiments.cli import main

if __name__ == "__main__":
    # the runner's warnings (a stale lock taken over, partial outputs removed) as one line each
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    sys.exit(main())

#!/usr/bin/env bash
# Build the documentation site offline into docs/_build/html (git-ignored): the README, the
# design doc, the module catalogue, the API reference generated from the docstrings and the
# results gallery generated from results/. Warnings (and unresolved cross-references) are
# errors. Open docs/_build/html/index.html in a browser; tests/test_docs_site.py checks it.
# Installs the docs extra into the virtual environment first, as scripts/test.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh docs
rm -rf docs/_build/html docs/_generated   # nothing stale survives a rebuild
start=$SECONDS
"${FLAMO_VENV:-.venv}/bin/python" -m sphinx -b html -E -n -W --keep-going -q docs docs/_build/html
echo "docs: built docs/_build/html/index.html in $((SECONDS - start)) s"

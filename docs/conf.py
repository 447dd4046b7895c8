"""Sphinx configuration of the flamo documentation site.

Build it with ``scripts/docs.sh`` (the output, docs/_build/html, is git-ignored). The API
reference, the module catalogue and the results gallery are generated at build time by
the local extension ``docs/_ext/flamo_docs.py`` from the code's ``__all__`` lists and
numpydoc docstrings and from ``results/*/`` (headline.json, meta.json, the PNG figures).
Every page is offline: no fonts, scripts or math from the internet.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document the checkout's flamo, not an installed copy
sys.path.insert(0, str(DOCS / "_ext"))

import flamo  # noqa: E402

project = "flamo"
author = "the flamo contributors"
copyright = "2026, the flamo contributors"
release = version = flamo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "flamo_docs",  # generated pages and the offline math renderer (docs/_ext)
]

root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []
nitpicky = True  # every cross-reference in a docstring must resolve
# ... except into other projects: their inventories (intersphinx) are not fetched offline.
nitpick_ignore_regex = [(r"py:.*", r"(torch|numpy|np|scipy|pandas|matplotlib|pathlib|typing|"
                                   r"collections|dataclasses|os)(\..*)?")]

# autodoc / numpydoc: the API pages are written by flamo_docs, one per public module.
autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # no torch.nn.Module docstrings on every forward()
autosummary_generate = False  # summary tables only; the pages themselves are generated
numpydoc_show_class_members = False  # members are documented by autodoc's :members:
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False  # "array_like", "float, default 48000": prose, not links

# MyST (the design doc, the README, the generated catalogue and gallery)
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # the README starts below a level-1 title

# Math is rendered to MathML at build time (flamo_docs), which browsers display natively:
# no MathJax download.
html_math_renderer = "mathml"

html_theme = "pydata_sphinx_theme"
html_title = f"flamo {version}"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"  # else browsers ask for /favicon.ico and log a 404
html_context = {"default_mode": "auto"}  # light/dark from the reader's system setting
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
html_copy_source = False

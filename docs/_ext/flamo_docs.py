"""Local Sphinx extension of the flamo site: generated pages and offline math.

At ``builder-inited`` it writes reStructuredText into ``docs/_generated/`` (git-ignored):

- ``api/``: one page per public module of ``flamo``, found by walking the package. Each
  page shows the module docstring, a summary table of its ``__all__`` and the full
  documentation (autodoc + numpydoc) of the names whose *public home* it is: the
  outermost module that exports the object, so ``flamo.Grid`` is documented once, on the
  ``flamo`` page, and linked from ``flamo.grid`` (autodoc's canonical names make both
  spellings resolve).
- ``catalogue.rst``: every module and system class (the ``DSPModule`` registry).
- ``gallery.md``: every committed experiment in ``results/*/`` with its description, its
  headline numbers (``headline.json``, read at build time) and its figures (``*.png``).

It also registers the math renderer ``mathml``: LaTeX is converted to MathML by docutils
at build time, which browsers render natively, so no math library is downloaded.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.utils.math import latex2mathml

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
OUT = DOCS / "_generated"


# -- writing only what changed, so incremental builds stay incremental ---------------------
def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * len(text)}\n"


# -- the API reference ---------------------------------------------------------------------
def public_modules(package: str = "flamo") -> dict:
    """{dotted name: module} of the package and every submodule without a private part."""
    root = importlib.import_module(package)
    found = {package: root}
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found[info.name] = importlib.import_module(info.name)
    return dict(sorted(found.items()))


def _exports(module) -> list[str]:
    return list(getattr(module, "__all__", []))


def public_homes(modules: dict) -> dict:
    """{(module name, object name): True} for every object on the page that documents it.

    An object's home is the outermost module whose ``__all__`` exports it; among modules
    of equal depth, the one the object's defining module lies in, then the first by name.
    Modules themselves (``flamo.functional`` in ``flamo.__all__``) have their own page.
    """
    candidates = {}
    for modname, module in modules.items():
        for name in _exports(module):
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                continue
            candidates.setdefault(id(obj), []).append((modname, name, obj))
    homes = {}
    for entries in candidates.values():
        defined_in = getattr(entries[0][2], "__module__", None) or ""

        def rank(entry):
            modname = entry[0]
            return (modname.count("."), not defined_in.startswith(modname), modname)

        modname, name, _ = min(entries, key=rank)
        homes[(modname, name)] = True
    return homes


def _directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "autofunction"
    return "autodata"


def api_page(modname: str, module, homes: dict) -> str:
    lines = [_title(modname), f".. automodule:: {modname}", "   :no-members:", ""]
    exported = _exports(module)
    if exported:
        lines += [".. rubric:: Contents", "", ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in exported]  # relative to the page's module
        lines.append("")
    for name in exported:
        if not homes.get((modname, name)):
            continue
        obj = getattr(module, name)
        directive = _directive(obj)
        lines.append(f".. {directive}:: {modname}.{name}")
        if directive in ("autoclass", "autoexception"):
            lines.append("   :members:")
        lines.append("")
    return "\n".join(lines)


#: id(object) -> the dotted name it is documented under, filled by :func:`write_api`.
DOCUMENTED = {}


def write_api() -> None:
    modules = public_modules()
    homes = public_homes(modules)
    for modname, name in homes:
        DOCUMENTED[id(getattr(modules[modname], name))] = f"{modname}.{name}"
    pages = {OUT / "api" / f"{modname}.rst": api_page(modname, module, homes)
             for modname, module in modules.items()}
    for stale in set((OUT / "api").glob("flamo*.rst")) - set(pages):  # a module removed
        stale.unlink()
    for path, text in pages.items():
        _write(path, text)
    index = [_title("API reference"),
             "Every public module of ``flamo``; each name is documented once, in the outermost",
             "module that exports it (``flamo.Grid``, ``flamo.functional.sos_response``), and",
             "listed in the summary of the module that defines it.", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {modname}" for modname in modules]
    _write(OUT / "api" / "index.rst", "\n".join(index) + "\n")


# -- the module catalogue ------------------------------------------------------------------
def write_catalogue() -> None:
    import flamo
    from flamo.modules import DSPModule

    classes = [cls for cls in DSPModule.registry.values() if getattr(flamo, cls.__name__, None) is cls]
    systems = [c for c in classes if c.__module__ == "flamo.system"]
    parts = sorted((c for c in classes if c not in systems and c is not DSPModule),
                   key=lambda c: (c.__module__, c.__name__))
    lines = [_title("Module catalogue"),
             "Every module and system class of the library (the registry that presets use),",
             "with the first line of its docstring. Each evaluates on a :class:`flamo.Grid` to",
             "an (M, out, in) response; see the :doc:`design <../design>` for the conventions.",
             "", _title("Systems", "-"), ".. autosummary::", "   :nosignatures:", ""]
    lines += [f"   flamo.{c.__name__}" for c in systems]
    by_module = {}
    for c in parts:
        by_module.setdefault(c.__module__, []).append(c)
    for modname, group in by_module.items():
        doc = (inspect.getdoc(importlib.import_module(modname)) or modname).splitlines()[0]
        lines += ["", _title(doc.rstrip("."), "-"), f"Defined in :mod:`{modname}`.", "",
                  ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   flamo.{c.__name__}" for c in group]
    _write(OUT / "catalogue.rst", "\n".join(lines) + "\n")


# -- the results gallery -------------------------------------------------------------------
def write_gallery() -> None:
    from experiments.summary import experiment_dirs, format_value, provenance

    lines = ["# Results gallery", "",
             "The committed experiment results (`results/`), read at build time: each",
             "experiment's description, its headline numbers (`headline.json`) and its figures.",
             "Every figure is produced by `python -m experiments run NAME`; the provenance line",
             "comes from the run's `meta.json`.", ""]
    for folder in experiment_dirs(ROOT / "results"):
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        headline_path = folder / "headline.json"
        headline = json.loads(headline_path.read_text(encoding="utf-8")) if headline_path.exists() else {}
        lines += [f"## {folder.name}", "", meta.get("description", ""), "",
                  f"*Provenance: {provenance(meta)}.*", ""]
        if headline:
            lines += ["| headline number | value |", "|---|---|"]
            lines += [f"| `{key}` | {format_value(headline[key]).replace('|', chr(92) + '|')} |"
                      for key in sorted(headline)]
            lines.append("")
        for png in sorted(folder.glob("*.png")):
            rel = png.relative_to(ROOT).as_posix()
            lines += [f"```{{figure}} ../../{rel}", f":alt: {folder.name}: {png.name}",
                      ":width: 100%", "", f"`{rel}`", "```", ""]
    _write(OUT / "gallery.md", "\n".join(lines) + "\n")


def generate(app) -> None:
    if str(ROOT) not in sys.path:  # the suite (experiments.summary) runs from the checkout
        sys.path.insert(0, str(ROOT))
    write_api()
    write_catalogue()
    write_gallery()


# -- docstrings: | is a character -------------------------------------------------------
_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")  # inline literals and roles: left as written


def _escape_bars(line: str) -> str:
    parts = _LITERAL.split(line)
    return "".join(part if i % 2 else part.replace("|", "\\|") for i, part in enumerate(parts))


def escape_bars(app, what, name, obj, options, lines):
    """``autodoc-process-docstring`` handler: docstrings write magnitudes and norms as plain
    text (``|H(z)|``, ``||F B||_2``), and the project uses no reST substitutions, so every
    ``|`` outside literals, roles, literal blocks and math blocks is escaped."""
    verbatim_indent = None  # indentation of the directive or '::' paragraph being skipped
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if verbatim_indent is not None:
            if not line.strip() or indent > verbatim_indent:
                continue
            verbatim_indent = None
        stripped = line.strip()
        if stripped.startswith((">>>", "...")):
            continue
        if stripped.startswith(".. math::") or stripped.endswith("::"):
            verbatim_indent = indent
            if stripped.startswith(".."):
                continue
        lines[i] = _escape_bars(line)


# -- math as MathML ------------------------------------------------------------------------
def _mathml(latex: str, block: bool) -> str:
    return latex2mathml.tex2mathml(latex, as_block=block)


def visit_math_html(self, node):
    self.body.append(_mathml(node.astext(), block=False))
    raise nodes.SkipNode


def visit_displaymath_html(self, node):
    latex = node.astext()
    self.body.append(self.starttag(node, "div", CLASS="math"))
    if node.get("number"):
        self.body.append(f'<span class="eqno">({node["number"]})</span>')
    self.body.append(_mathml(latex, block=True))
    self.body.append("</div>\n")
    raise nodes.SkipNode


# -- one documented home, every spelling resolves ----------------------------------------
def _lookup(dotted: str):
    """The object named by a dotted path, or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _documented_name(dotted: str):
    """Documented spelling of ``dotted`` (e.g. flamo.functional.sos.sos_response ->
    flamo.functional.sos_response), also for members (...DSPModule.config)."""
    if _lookup(dotted) is None:
        return None
    parts = dotted.split(".")
    for i in range(len(parts), 1, -1):
        head, rest = _lookup(".".join(parts[:i])), parts[i:]
        if inspect.isclass(head) and len(rest) == 1:  # a member: the class that defines it
            head = next((k for k in head.__mro__ if rest[0] in vars(k)), head)
        home = DOCUMENTED.get(id(head))
        if home is not None:
            return ".".join([home, *rest])
    return None


def resolve_alias(app, env, node, contnode):
    """``missing-reference`` handler: a Python reference to a public object under another
    spelling (its defining module, a relative name in a module docstring) is sent to the
    page that documents the object."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    # Relative names in a docstring are written for the module that defines it, which is
    # not the page's module when the object is documented under its public home.
    source = str(node.source or "")
    owner = source.split("docstring of ", 1)[1].split(":")[0] if "docstring of " in source else ""
    scopes = [".".join(owner.split(".")[:i]) for i in range(owner.count(".") + 1, 0, -1)]
    module, cls = node.get("py:module"), node.get("py:class")
    scopes += [f"{module}.{cls}" if module and cls else None, module]
    candidates = [f"{scope}.{target}" for scope in scopes if scope] + [target]
    # A summary line in a table has no owner: a bare name documented exactly once.
    if "." not in target:
        matches = [name for name in DOCUMENTED.values() if name.rsplit(".", 1)[-1] == target]
        candidates += matches if len(matches) == 1 else []
    domain = env.domains["py"]
    for candidate in candidates:
        home = _documented_name(candidate)
        if home is not None and home != node["reftarget"]:
            resolved = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                           home, node, contnode)
            if resolved is not None:
                return resolved
    return None


def setup(app):
    app.connect("builder-inited", generate)
    app.connect("missing-reference", resolve_alias)
    app.connect("autodoc-process-docstring", escape_bars, priority=400)  # before numpydoc
    app.add_html_math_renderer("mathml", (visit_math_html, None), (visit_displaymath_html, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}

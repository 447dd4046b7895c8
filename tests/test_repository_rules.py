"""Two of the repository's conventions, checked on its own source: no module imports another
file's private (``_name``) names, and nothing in the code or docs refers to files outside the
repository (a checkout must run and read as it is)."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("flamo", "experiments", "baselines", "benchmarks", "tests", "examples", "scripts")
#: Built or generated folders, not sources.
SKIP_DIRS = {"_build", "_generated", "__pycache__", ".venv"}


def _files(roots, suffixes):
    for root in roots:
        path = REPO / root
        if path.is_file():
            yield path
            continue
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in suffixes and not SKIP_DIRS & set(f.relative_to(REPO).parts):
                yield f


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _project_module(module, level):
    return level > 0 or (module or "").split(".")[0] in PACKAGES + ("conftest",)


def private_imports(source: str) -> list[str]:
    """``from m import _x`` and ``m._x`` (m an imported project module) in one file's source."""
    tree = ast.parse(source)
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _project_module(node.module, node.level):
            for alias in node.names:
                modules.add(alias.asname or alias.name)
                if _private(alias.name):
                    found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} "
                                 f"import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _project_module(alias.name, 0):
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_private_import_check_finds_both_forms():
    src = "from flamo.grid import _z_values\nimport flamo\nflamo.functional._blocks(1)\nx._y\n"
    assert private_imports(src) == ["line 1: from flamo.grid import _z_values",
                                    "line 3: flamo.functional._blocks"]
    assert private_imports("from .._common import as_real_tensor\nimport torch\ntorch._C\n") == []


@pytest.mark.parametrize("root", PACKAGES)
def test_no_private_name_is_imported_across_files(root):
    offences = {str(f.relative_to(REPO)): hits for f in _files([root], {".py"})
                if (hits := private_imports(f.read_text(encoding="utf-8")))}
    assert not offences, f"private names imported from another file: {offences}"


#: Paths and documents of the machine the project was written on, which a checkout lacks.
OUTSIDE = re.compile(r"/work/|references\.md|issue target|\bissues? #?\d+")

def test_nothing_refers_outside_the_repository():
    roots = PACKAGES + ("docs", "README.md", "pyproject.toml", "asv.conf.json", ".ci")
    offences = [f"{f.relative_to(REPO)}:{n}: {line.strip()}"
                for f in _files(roots, {".py", ".md", ".sh", ".toml", ".json", ".txt", ".rst", ""})
                if f.name != Path(__file__).name
                for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
                if OUTSIDE.search(line)]
    assert not offences, "references to files outside the repository:\n" + "\n".join(offences)

"""Packaging: what ``pip install .`` puts into site-packages.

The wheel is built once, by setuptools' own build backend on a clean copy of the working
tree (tracked and untracked-but-not-ignored files, so no stale ``build/`` folder leaks in),
and inspected as a file list. The slow half, a fresh virtual environment with only torch
and the wheel that imports every subpackage and runs the README's fitting example from an
empty folder, is ``scripts/check_install.sh``, which CI runs once (``.ci/run``).
"""

from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    int(importlib.metadata.version("setuptools").split(".")[0]) < 77,
    reason="building the wheel offline needs setuptools >= 77 in this environment "
           "(the dev extra requires it)")

BUILD = """
import sys, warnings
from setuptools import build_meta
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    name = build_meta.build_wheel(sys.argv[1])
for w in caught:
    print(f"python warning: {w.category.__name__}: {w.message}")
print("wheel:", name)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel path, build log): the wheel built from a clean copy of the working tree."""
    root = tmp_path_factory.mktemp("packaging")
    src, out = root / "src", root / "out"
    src.mkdir()
    out.mkdir()
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in map(os.fsdecode, filter(None, files)):
        if (REPO / name).is_file():  # not a file deleted in the working tree
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run([sys.executable, "-c", BUILD, str(out)], cwd=src, env=env,
                          capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    (wheel,) = out.glob("*.whl")
    return wheel, log


def _source_version() -> str:
    tree = ast.parse((REPO / "flamo" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__"
                                                for t in node.targets):
            return node.value.value
    raise AssertionError("flamo/__init__.py assigns no __version__ literal")


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_build_has_no_warnings(built):
    _, log = built
    warnings = [line for line in log.splitlines() if re.search(r"(?i)warn|deprecat", line)]
    assert not warnings, "\n".join(warnings)


def test_wheel_holds_only_the_library(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        top = {name.split("/", 1)[0] for name in zf.namelist()}
    version = _source_version()
    assert top == {"flamo", f"flamo-{version}.dist-info"}, top


def test_license_and_single_sourced_version(built):
    wheel, _ = built
    meta = _metadata(wheel)
    assert meta["Version"] == _source_version()
    assert meta["License-Expression"] == "MIT"
    with zipfile.ZipFile(wheel) as zf:
        (license_name,) = [n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        text = zf.read(license_name).decode()
    assert text.startswith("MIT License") and "2026 the flamo contributors" in text
    assert (REPO / "LICENSE").read_text() == text
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


def _module_level_imports(source: str):
    """Top-level names imported when the module is imported (not inside functions)."""
    def walk(body):
        for node in body:
            if isinstance(node, ast.Import):
                yield from (alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                yield node.module.split(".")[0]
            elif isinstance(node, (ast.If, ast.Try)):
                yield from walk(node.body)
                yield from walk(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    yield from walk(handler.body)
    yield from walk(ast.parse(source).body)


def test_import_time_dependencies_are_core(built):
    """Every module-level import of the installed package is the standard library, flamo
    itself or a core dependency (extras may only be imported inside functions)."""
    wheel, _ = built
    requires = _metadata(wheel).get_all("Requires-Dist")
    core = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requires if "extra ==" not in r}
    assert core == {"torch", "numpy", "scipy", "tqdm"}, core
    allowed = core | set(sys.stdlib_module_names) | {"flamo"}
    bad = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.endswith(".py"):
                extra = set(_module_level_imports(zf.read(name).decode())) - allowed
                if extra:
                    bad[name] = sorted(extra)
    assert not bad, f"module-level imports outside the core dependencies: {bad}"


def test_import_experiments_leaves_the_environment_alone():
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    code = ("import os, experiments, experiments.io, experiments.cli, experiments.runner; "
            "print(repr(os.environ.get('MPLBACKEND')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None"

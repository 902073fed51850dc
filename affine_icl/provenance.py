"""Which code made a result: the library's version in every output's metadata, and the source
each rule's script runs, so an edit to the library reruns the rules that import it.

Two measures, both SHA-256 of source text (16 hex digits):

* :func:`code_version`: the git commit of the checkout (``unknown`` outside git, ``+dirty``
  with uncommitted changes to tracked files) and :func:`library_hash`, the hash of every module
  of the package. Written into the metadata of weights, snapshots, Parquet files, the export and
  the report.
* :func:`script_code_hash`: the hash of a rule's script and of every library module it imports,
  directly or through other modules (function-local imports included, as
  ``tests/test_imports.py`` reads them). The Snakefile gives each analysis rule this hash as its
  ``library_code`` param, so Snakemake reruns it when one of those modules changes, and only
  then. Training rules do not get it: an edit to the training code that changes the weights
  bumps :data:`affine_icl.config.TRAINING_ARITHMETIC` instead (README "What is checked").
"""

from __future__ import annotations

import ast
import functools
import hashlib
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE.parent


def _digest(parts: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:16]


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``analysis.heads``; ``""`` the package)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(p for p in parts if p != "__init__")] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> set[str]:
    """The modules ``name`` (dotted, within the package) loads: itself, or the nearest package
    that exists, and the packages above it (their ``__init__``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    parts = name.split(".") if name else []
    return {".".join(parts[:i]) for i in range(len(parts) + 1)}


def _imports(path: Path, package: list[str], modules: dict[str, Path]) -> set[str]:
    """The package modules imported anywhere in the file at ``path`` (``package``: the dotted
    package the file belongs to, for relative imports; the scripts' is none). A package's
    ``__init__`` counts with its module-level imports only: what it imports lazily (the
    package's ``__getattr__``) runs only for whoever asks for that name."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if path.name == "__init__.py" else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == "affine_icl":
                module = node.module.removeprefix("affine_icl").strip(".")
            else:
                continue
            targets = [f"{module}.{a.name}".strip(".") for a in node.names] + [module]
        elif isinstance(node, ast.Import):
            targets = [
                a.name.removeprefix("affine_icl").strip(".")
                for a in node.names
                if a.name.split(".")[0] == "affine_icl"
            ]
        for target in targets:
            found |= _resolve(target, modules)
    return found


@functools.cache
def _graph() -> dict[str, frozenset[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
        package = [p for p in package if p]
        graph[name] = frozenset(_imports(path, package, modules))
    return graph


def imported_modules(script: Path | str) -> list[str]:
    """Every package module the file ``script`` imports, directly or transitively, sorted."""
    graph, modules = _graph(), _modules()
    todo = list(_imports(Path(script), [], modules))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return sorted(seen)


@functools.cache
def script_code_hash(script: Path | str) -> str:
    """Hash of ``script`` and of every library module it imports (:func:`imported_modules`)."""
    modules = _modules()
    parts = [("script", Path(script).read_bytes())]
    parts += [(name, modules[name].read_bytes()) for name in imported_modules(script)]
    return _digest(parts)


@functools.cache
def library_hash() -> str:
    """Hash of every module of the package."""
    return _digest([(name, path.read_bytes()) for name, path in _modules().items()])


@functools.cache
def git_commit() -> str:
    """The checkout's commit, ``+dirty`` when tracked files differ from it; ``unknown`` when
    this is no git checkout (an installed copy) or git is missing."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def code_version() -> dict[str, str]:
    """``code_commit`` and ``code_hash`` (:func:`library_hash`), for an output's metadata."""
    return {"code_commit": git_commit(), "code_hash": library_hash()}

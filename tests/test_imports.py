"""The library's imports flow one way: config -> data -> model -> (stacked, train) -> activations
-> analysis -> figures / claims -> render -> aggregate -> glue. Checked on the source (function-local imports
included), so a hidden cycle or an analysis rule that loads the trainer fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "affine_icl"

#: Layer of each top-level module (a subpackage counts as one module). A module may import only
#: modules of a lower layer, or its own subpackage; FORBIDDEN names the side branches that a
#: lower layer still may not reach.
LAYERS = {
    "paper": 0,
    "errors": 0,
    "provenance": 0,
    "families": 0,
    "config": 1,
    "validation": 1.1,
    "rule_settings": 1.1,
    "protocol": 1.2,
    "tasks": 1.5,
    "costs": 2,
    "data": 2,
    "batches": 2,
    "model": 3,
    "stacked": 4,
    "checkpoints": 5,
    "steps": 5,
    "train": 6,
    "activations": 7,
    "analysis": 8,
    "measure": 8.5,
    "figures": 9,
    "claims": 9,
    "render": 9.2,
    "margins": 9.5,
    "aggregate": 10,
    "sensitivity": 10,
    "over_training": 10,
    "atlas": 10,
    "views": 9,
    "export": 10,
    "readme": 11,
    "rules": 12,
}
FORBIDDEN = {
    "activations": {"stacked", "checkpoints", "train"},
    "analysis": {"checkpoints", "train"},
    "figures": {"data", "model", "stacked", "checkpoints", "train", "activations", "analysis"},
    "claims": {"model", "stacked", "checkpoints", "train", "activations"},
    "sensitivity": {"model", "stacked", "checkpoints", "train", "activations", "analysis"},
    "margins": {"model", "stacked", "checkpoints", "train", "activations", "analysis"},
    "render": {"model", "stacked", "checkpoints", "train", "activations", "analysis", "config"},
    "over_training": {"stacked", "train"},
    "measure": {"stacked", "checkpoints", "train"},
    "views": {"data", "model", "stacked", "checkpoints", "train", "activations", "analysis"},
    "export": {"stacked", "checkpoints", "train", "activations", "analysis"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def package_imports() -> dict[str, set[str]]:
    """``{importing module: {imported top-level module}}`` for every module of the package."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against the module's package
                    base = package[: len(package) - node.level + 1]
                    target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                    if not node.module:
                        found |= {f"{target}.{a.name}".strip(".") for a in node.names}
                    else:
                        found.add(target)
                elif node.module and node.module.split(".")[0] == "affine_icl":
                    found.add(node.module.removeprefix("affine_icl").strip("."))
            elif isinstance(node, ast.Import):
                found |= {
                    a.name.removeprefix("affine_icl").strip(".")
                    for a in node.names
                    if a.name.split(".")[0] == "affine_icl"
                }
        graph[name] = {t.split(".")[0] for t in found if t}
    return graph


def test_every_module_has_a_layer():
    unknown = {m.split(".")[0] for m in package_imports()} - set(LAYERS) - {""}
    assert not unknown, f"add {sorted(unknown)} to LAYERS in tests/test_imports.py"


def test_imports_go_one_way():
    wrong = []
    for module, targets in package_imports().items():
        top = module.split(".")[0]
        if not top:
            continue
        for target in targets - {top}:
            if LAYERS[target] >= LAYERS[top] or target in FORBIDDEN.get(top, ()):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "; ".join(sorted(wrong))


def test_the_checker_sees_relative_and_local_imports():
    graph = package_imports()
    assert "config" in graph["data"]  # from .config import DataConfig
    assert "population" not in graph["analysis.heads"]  # sibling in the subpackage
    assert "analysis" in graph["analysis.heads"]


def test_the_figure_registry_imports_only_the_standard_library():
    """workflow/rules/common.smk imports it while Snakemake builds the DAG (every Slurm job
    builds it again): no matplotlib, pandas or torch, and the figures package's __init__ none."""
    import sys

    for path in (PACKAGE / "figures/registry.py", PACKAGE / "figures/__init__.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported.add("." if node.level else node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, (path.name, imported)
